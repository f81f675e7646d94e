"""Attention that cannot go to the accelerator says which node and why; a keep ratio with no kernel warns."""

from __future__ import annotations

import warnings

import onnx
import pytest
from onnx import TensorProto, helper

import sofa_compiler
from sofa_compiler.driver import CompileWarning
from sofa_compiler.frontend import FrontendWarning
from tests.frontend.frontend_harness import FIXTURES


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


def softmax_also_output() -> onnx.ModelProto:
    """Attention whose probabilities are also a model output: the core cannot absorb the Softmax."""
    shape = [1, 2, 4, 8]
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["p"], name="probabilities", axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "probabilities_out",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in "qkv"],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 2, 4, 4]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_unmatched_softmax_warns_with_reason() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = sofa_compiler.compile(softmax_also_output(), keep=0.5)
    messages = [str(w.message) for w in caught]
    assert not compiled.programs
    assert (
        "Softmax node 'probabilities' is not part of a recognised attention core; it runs on the host: "
        "its probabilities have uses besides the product with V (a model output, say)"
    ) in messages
    assert any("keep=0.5 has no effect" in message for message in messages)


@pytest.mark.parametrize("name", ["torch_sdpa_mask", "attn24_float_mask_3d"])
def test_runtime_additive_mask_is_placed_on_the_accelerator(name: str) -> None:
    compiled, _, _ = compile_recording(name, keep=1.0)
    (placement,) = compiled.placements
    assert placement.host_reason is None
    assert placement.kernel in compiled.programs
