"""Attention that cannot go to the accelerator says which node and why; a keep ratio with no kernel warns."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import sofa_compiler
from sofa_compiler.bundle import bundle_bytes, load_bundle
from sofa_compiler.driver import CompileWarning
from sofa_compiler.frontend import FrontendWarning
from sofa_compiler.tools.sofa_run import main as sofa_run
from tests.fp16_tolerance import assert_close_to_fp32_reference
from tests.frontend.frontend_harness import FIXTURES, run_onnxruntime


def compile_recording(name: str, keep: float) -> tuple[sofa_compiler.CompiledModel, list[str], list[str]]:
    """The compiled fixture, its front-end warnings and its compile warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = sofa_compiler.compile(onnx.load(str(FIXTURES / f"{name}.onnx")), keep=keep)
    front = [str(w.message) for w in caught if issubclass(w.category, FrontendWarning)]
    driver = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
    return compiled, front, driver


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("torch_sdpa_mask", "the attention pattern ending at MatMul node '/MatMul_1'"),
        ("attn24_float_mask_3d", "Attention node 'attention'"),
    ],
)
def test_runtime_additive_mask_runs_on_the_accelerator_without_warnings(name: str, subject: str) -> None:
    """An additive mask computed at run time (it may hold a bias) runs on a biased kernel: no host warning."""
    compiled, front, driver = compile_recording(name, keep=0.5)
    assert compiled.programs
    assert not any(subject in message for message in front)
    assert driver == []


@pytest.mark.parametrize("name", ["torch_gpt2", "torch_bert", "torch_sdpa_causal"])
def test_accelerated_attention_warns_nothing(name: str) -> None:
    compiled, front, driver = compile_recording(name, keep=0.5)
    assert compiled.programs
    assert front == []
    assert driver == []


def attention_model(*, probabilities_out: bool = False, transposed: bool = False) -> onnx.ModelProto:
    """softmax(q k^T) v; its probabilities also a model output, or transposed before the product with V."""
    shape = [1, 2, 4, 8]
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["p"], name="probabilities", axis=-1),
    ]
    if transposed:
        nodes.append(helper.make_node("Transpose", ["p"], ["pt"], name="swap", perm=[0, 1, 3, 2]))
    nodes.append(helper.make_node("MatMul", ["pt" if transposed else "p", "v"], ["y"]))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)]
    if probabilities_out:
        outputs.append(helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 2, 4, 4]))
    graph = helper.make_graph(
        nodes, "attention", [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in "qkv"], outputs
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_unmatched_softmax_warns_with_reason() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = sofa_compiler.compile(attention_model(transposed=True), keep=0.5)
    messages = [str(w.message) for w in caught]
    assert not compiled.programs
    assert (
        "Softmax node 'probabilities' is not part of a recognised attention core; it runs on the host: "
        "its probabilities feed Transpose node 'swap', not a MatMul with V"
    ) in messages
    assert any("keep=0.5 has no effect" in message for message in messages)


def test_probabilities_read_elsewhere_are_computed_beside_the_kernel() -> None:
    """A model output P does not keep attention off the accelerator: the host computes P as well, and says so."""
    model = attention_model(probabilities_out=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = sofa_compiler.compile(model, keep=1.0)
    note = "host ops also compute p, which the model reads elsewhere"
    assert [str(w.message) for w in caught if issubclass(w.category, FrontendWarning)] == [
        f"the attention pattern ending at MatMul node 'y': {note} (the accelerator never materialises the scores)"
    ]
    (placement,) = compiled.placements
    assert placement.host_reason is None
    assert placement.note == note
    assert placement.line() == f"attention probabilities: accelerator (kernel {placement.kernel}); {note}"
    feeds = {name: np.random.default_rng(0).standard_normal([1, 2, 4, 8]).astype(np.float32) for name in "qkv"}
    outputs, report = compiled.run(feeds)
    assert len(report.kernels) == 1
    expected = run_onnxruntime(model, feeds)
    np.testing.assert_allclose(outputs["p"], expected[1], rtol=1e-6, atol=1e-7)  # the host's own Softmax
    assert_close_to_fp32_reference(outputs["y"], expected[0])


@pytest.mark.parametrize("name", ["torch_sdpa_mask", "attn24_float_mask_3d"])
def test_runtime_additive_mask_is_placed_on_the_accelerator(name: str) -> None:
    compiled, _, _ = compile_recording(name, keep=1.0)
    (placement,) = compiled.placements
    assert placement.host_reason is None
    assert placement.kernel in compiled.programs


def test_the_qk_output_note_survives_a_bundle_and_reaches_sofa_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An `Attention` node with the qk_matmul_output output: accelerator, and the note that the host computes it."""
    shape = [1, 2, 4, 8]
    node = helper.make_node("Attention", ["q", "k", "v"], ["y", "", "", "qk"], name="att", qk_matmul_output_mode=3)
    graph = helper.make_graph(
        [node],
        "qk_output",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in "qkv"],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("qk", TensorProto.FLOAT, [1, 2, 4, 4]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)], ir_version=10)
    note = "its qk_matmul_output output (the softmax) is computed by host ops"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = sofa_compiler.compile(model, keep=1.0)
    line = f"attention att: accelerator (kernel attn0); {note}"
    assert [placement.line() for placement in load_bundle(bundle_bytes(compiled)).placements] == [line]
    path = tmp_path / "qk_output.onnx"
    onnx.save(model, path)
    assert sofa_run([str(path)]) == 0
    assert line in capsys.readouterr().out.splitlines()
    assert sofa_run([str(path), "--json"]) == 0
    (placement,) = json.loads(capsys.readouterr().out)["placements"]
    assert placement == {"node": "att", "where": "accelerator", "kernel": "attn0", "note": note}
