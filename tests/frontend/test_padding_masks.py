"""Padding masks that transformers broadcasts over the queries still run on the accelerator.

BERT's mask is ``And(ones[1, 1, S, 1], pad[B, 1, 1, S])`` (``[B, 1, S, S]``) although it depends
only on (batch, key); the importer narrows it to ``[B, 1, 1, S]``, which the tiling pass folds.
A mask that does vary along the queries (causal and padding at once) is a run-time boolean mask,
whose lists the host builds at launch.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sofa_compiler
from tests.fp16_tolerance import assert_close_to_fp32_reference
from tests.frontend.frontend_harness import run_onnxruntime

HEADS, LENGTH, DEPTH = 2, 13, 8


def padding_model(rows: np.ndarray, form: str) -> onnx.ModelProto:
    """Attention under ``And(rows, pad)``: `rows` is a constant ``[1, 1, S, 1]`` or ``[1, 1, S, S]`` boolean."""
    inits = [
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
        numpy_helper.from_array(rows, "rows"),
    ]
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["pad_bool"], to=TensorProto.BOOL),
        helper.make_node("Unsqueeze", ["pad_bool", "axes"], ["pad"]),
        helper.make_node("And", ["rows", "pad"], ["keep"]),
    ]
    if form == "attention":
        nodes.append(helper.make_node("Attention", ["q", "k", "v", "keep"], ["y"], name="attention"))
    else:
        inits += [
            numpy_helper.from_array(np.float32(DEPTH**-0.5), "scale"),
            numpy_helper.from_array(np.float32(0.0), "zero"),
            numpy_helper.from_array(np.float32(-np.inf), "minus_inf"),
        ]
        nodes += [
            helper.make_node("Where", ["keep", "zero", "minus_inf"], ["bias"]),
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["q", "kt"], ["qk"]),
            helper.make_node("Mul", ["qk", "scale"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], ["masked"]),
            helper.make_node("Softmax", ["masked"], ["p"], axis=-1),
            helper.make_node("MatMul", ["p", "v"], ["y"]),
        ]
    shape = [1, HEADS, LENGTH, DEPTH]
    graph = helper.make_graph(
        nodes,
        "padding",
        [
            *(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in "qkv"),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, LENGTH]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


def inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {name: rng.standard_normal((1, HEADS, LENGTH, DEPTH)).astype(np.float32) for name in "qkv"}
    feeds["attention_mask"] = (np.arange(LENGTH) < LENGTH - 4).astype(np.int64)[None]
    return feeds


@pytest.mark.parametrize("form", ["attention", "decomposed"])
def test_broadcast_padding_mask_runs_on_accelerator(form: str) -> None:
    model = padding_model(np.ones((1, 1, LENGTH, 1), dtype=bool), form)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = sofa_compiler.compile(model, keep=1.0)
    assert [placement.host_reason for placement in compiled.placements] == [None]
    outputs, report = compiled.run(inputs())
    assert len(report.kernels) == 1
    assert_close_to_fp32_reference(outputs["y"], run_onnxruntime(model, inputs())[0])


@pytest.mark.parametrize("form", ["attention", "decomposed"])
def test_padding_and_causal_mask_runs_at_launch(form: str) -> None:
    """Padding combined with a causal mask is a run-time boolean mask, the host builds its lists at launch: the
    Attention node's boolean mask, and the decomposed core's Where(keep, 0, -inf) bias, which is that mask."""
    model = padding_model(np.tril(np.ones((LENGTH, LENGTH), dtype=bool))[None, None], form)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = sofa_compiler.compile(model, keep=1.0)
    (placement,) = compiled.placements
    assert placement.host_reason is None
    outputs, report = compiled.run(inputs())
    assert len(report.kernels) == 1
    assert_close_to_fp32_reference(outputs["y"], run_onnxruntime(model, inputs())[0])
