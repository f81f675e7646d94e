"""Static shapes for models with dynamic input dimensions (issue 15 items 4 and 5).

`--input-shape` on every tool that compiles ONNX, `input_shapes=` in
`sofa_compiler.compile`, shapes taken from `sofa-run --inputs`, and bundles that
refuse inputs of other shapes than they were compiled for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

import sofa_compiler
from sofa_compiler.bundle import BundleError, bundle_bytes, load_bundle, read_manifest, reseal
from sofa_compiler.cli import InputShapeError, input_shapes, parse_input_shape
from sofa_compiler.driver import CompileError
from sofa_compiler.frontend import FrontendError
from sofa_compiler.tools import sofa_compile, sofa_run, sofa_sim
from tests.fp16_tolerance import FP16_MODEL_RTOL, assert_close_to_fp32_reference

HEADS, DEPTH = 2, 8


def dynamic_attention() -> onnx.ModelProto:
    """Self-attention over Q, K, V ``[1, 2, seq, 8]`` with the sequence length left open."""
    shape = [1, HEADS, "seq", DEPTH]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in ("q", "k", "v")]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], name="attention")
    graph = helper.make_graph([node], "dynamic_attention", inputs, [output])
    opsets = [helper.make_opsetid("", 23)]
    # The oldest IR version for the opset: onnx's default is newer than onnxruntime reads.
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "dynamic.onnx"
    onnx.save(dynamic_attention(), path)
    return path


def qkv(length: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal((1, HEADS, length, DEPTH)).astype(np.float32) for name in ("q", "k", "v")}


def shapes_of(length: int) -> dict[str, list[int]]:
    return {name: [1, HEADS, length, DEPTH] for name in ("q", "k", "v")}


def onnxruntime_output(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["y"], inputs)[0]


# --- the shared parser -------------------------------------------------------


def test_parse_input_shape() -> None:
    assert parse_input_shape("q=1,2,6,8") == ("q", (1, 2, 6, 8))
    assert parse_input_shape("input.1=3") == ("input.1", (3,))
    assert input_shapes(["q=1,2", "k=3"]) == {"q": (1, 2), "k": (3,)}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("q", "expected NAME=D0,D1,... (no '=')"),
        ("=1,2", "no input name before '='"),
        ("q=1,x", "dimension 'x' is not an integer"),
        ("q=1,2.5", "dimension '2.5' is not an integer"),
        ("q=1,0", "dimension 0 is not positive"),
        ("q=-4,2", "dimension -4 is not positive"),
    ],
)
def test_malformed_input_shape(text: str, problem: str) -> None:
    with pytest.raises(InputShapeError) as caught:
        parse_input_shape(text)
    assert str(caught.value) == f"--input-shape '{text}': {problem}"


def test_input_named_twice() -> None:
    with pytest.raises(InputShapeError, match="--input-shape gives input 'q' twice"):
        input_shapes(["q=1", "q=2"])


# --- compile(..., input_shapes=...) ------------------------------------------


@pytest.mark.parametrize("length", [5, 12])
def test_compile_with_input_shapes_matches_onnxruntime(model_path: Path, length: int) -> None:
    model = sofa_compiler.compile(model_path, input_shapes=shapes_of(length))
    assert model.input_specs() == [(name, (1, HEADS, length, DEPTH), "float32") for name in ("q", "k", "v")]
    inputs = qkv(length)
    outputs, report = model.run(inputs)
    assert len(report.kernels) == 1  # the attention ran on the accelerator, not the host
    assert_close_to_fp32_reference(outputs["y"], onnxruntime_output(model_path, inputs))


def test_compile_without_shapes_names_the_option(model_path: Path) -> None:
    with pytest.raises(FrontendError) as caught:
        sofa_compiler.compile(model_path)
    message = str(caught.value)
    assert "'q' [1, 2, 'seq', 8]" in message
    assert "--input-shape NAME=D0,D1,... (input_shapes= in Python)" in message


@pytest.mark.parametrize(
    ("shape", "problem"),
    [
        ([1, 2, 0, 8], "its dimensions must be positive integers"),
        ([1, 2, "6", 8], "its dimensions must be positive integers"),
        ([2, 6, 8], "it has 3 dimensions, the model's input has 4: [1, 2, 'seq', 8]"),
        ([1, 3, 6, 8], "dimension 1 is 3, the model fixes it to 2: [1, 2, 'seq', 8]"),
    ],
)
def test_wrong_input_shapes_in_python(model_path: Path, shape: list[object], problem: str) -> None:
    with pytest.raises(FrontendError) as caught:
        sofa_compiler.compile(model_path, input_shapes={**shapes_of(6), "k": shape})
    assert str(caught.value) == f"the shape given for input 'k', {shape}, is wrong: {problem}"


# --- the tools ---------------------------------------------------------------


def test_sofa_compile_takes_input_shape(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = [f"--input-shape={name}=1,2,7,8" for name in ("q", "k", "v")]
    assert sofa_compile.main([str(model_path), *flags, "--emit", "sofa"]) == 0
    assert "tensor<1x2x7x8xf32>" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("q=1,2,x,8", "--input-shape 'q=1,2,x,8': dimension 'x' is not an integer"),
        ("q=1,2,-7,8", "--input-shape 'q=1,2,-7,8': dimension -7 is not positive"),
        ("z=1,2,7,8", "--input-shape names unknown input(s) ['z']; the inputs are ['k', 'q', 'v']"),
    ],
)
def test_sofa_compile_bad_input_shape_exits_1(
    model_path: Path, flag: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sofa_compile.main([str(model_path), "--input-shape", flag, "--emit", "sofa"]) == 1
    assert capsys.readouterr().err == f"sofa-compile: error: {message}\n"


def test_sofa_run_takes_shapes_from_the_npz(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = qkv(9, seed=3)
    np.savez(tmp_path / "in.npz", **inputs)
    argv = [str(model_path), "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz"), "--json"]
    assert sofa_run.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_relative_error"]["y"] < FP16_MODEL_RTOL
    assert len(report["kernels"]) == 1
    assert_close_to_fp32_reference(np.load(tmp_path / "out.npz")["y"], onnxruntime_output(model_path, inputs))


def test_sofa_run_flag_and_npz_agree_or_fail(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(tmp_path / "in.npz", **qkv(9))
    base = [str(model_path), "--inputs", str(tmp_path / "in.npz"), "--no-reference"]
    assert sofa_run.main([*base, "--input-shape", "k=1,2,9,8"]) == 0
    capsys.readouterr()
    assert sofa_run.main([*base, "--input-shape", "k=1,2,10,8"]) == 1
    assert capsys.readouterr().err == (
        "sofa-run: error: input 'k': --input-shape gives [1, 2, 10, 8], but its --inputs array has shape [1, 2, 9, 8]\n"
    )


# --- bundles -----------------------------------------------------------------


def manifest_of(blob: bytes) -> dict[str, object]:
    return read_manifest(blob)


def test_bundle_records_its_input_shapes(model_path: Path) -> None:
    blob = bundle_bytes(sofa_compiler.compile(model_path, input_shapes=shapes_of(6)))
    recorded = manifest_of(blob)["inputs"]
    assert recorded == [{"name": name, "shape": [1, HEADS, 6, DEPTH], "dtype": "float32"} for name in ("q", "k", "v")]
    assert load_bundle(blob).input_specs() == [(name, (1, HEADS, 6, DEPTH), "float32") for name in ("q", "k", "v")]


def test_bundle_with_a_forged_shape_record_is_corrupt(model_path: Path) -> None:
    blob = bundle_bytes(sofa_compiler.compile(model_path, input_shapes=shapes_of(6)))
    forged = reseal(blob.replace(b'"shape": [1, 2, 6, 8]', b'"shape": [1, 2, 7, 8]', 1))
    assert forged != blob
    with pytest.raises(BundleError, match="the recorded inputs do not match the host code's"):
        load_bundle(forged)


def test_bundle_refuses_other_shapes(model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = load_bundle(bundle_bytes(sofa_compiler.compile(model_path, input_shapes=shapes_of(6))))
    with pytest.raises(CompileError) as caught:
        model.run(qkv(7))
    assert str(caught.value) == "input 'q' has shape [1, 2, 7, 8], but the model was compiled for [1, 2, 6, 8]"
    (tmp_path / "model.sofa").write_bytes(bundle_bytes(model))
    np.savez(tmp_path / "in.npz", **{**qkv(6), "v": qkv(7)["v"]})
    assert sofa_sim.main([str(tmp_path / "model.sofa"), "--inputs", str(tmp_path / "in.npz")]) == 1
    assert capsys.readouterr().err == (
        "sofa-sim: error: input 'v' has shape [1, 2, 7, 8], but the model was compiled for [1, 2, 6, 8]\n"
    )
