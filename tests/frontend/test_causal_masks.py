"""Constant causal masks, however a model builds them, run as `causal` attention on the accelerator.

Each model is Q/K/V inputs, scores = Q K^T * scale, a causal mask built one
way exporters write it, Softmax, P V. After constant folding the importer
must see upper-left causal masking, so the tiling pass gives the attention a
kernel; results match onnxruntime at keep 1.0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sofa_compiler
from tests.fp16_tolerance import assert_close_to_fp32_reference
from tests.frontend.frontend_harness import random_inputs, run_onnxruntime

BATCH, HEADS, LENGTH, DEPTH, BUFFER = 1, 2, 13, 8, 64
"""LENGTH is not a multiple of any tile; BUFFER is GPT-2's n_positions."""
FLOAT, BOOL, INT64 = TensorProto.FLOAT, TensorProto.BOOL, TensorProto.INT64

Nodes = list[onnx.NodeProto]
Inits = list[onnx.TensorProto]


def const(name: str, value: np.ndarray | list | float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def causal_model(
    build_mask: Callable[[Nodes, Inits], tuple[str, str]], opset: int = 23, nan_guard: bool = False
) -> onnx.ModelProto:
    """Attention whose mask `build_mask` writes: it returns the mask's name and 'add' or 'where'.

    With `nan_guard`, P = Where(IsNaN(P), 0, P) as torch's dynamo exporter writes SDPA.
    """
    nodes: Nodes = []
    inits: Inits = [const("scale", np.float32(DEPTH**-0.5))]
    mask, kind = build_mask(nodes, inits)
    nodes += [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["qk"]),
        helper.make_node("Mul", ["qk", "scale"], ["scores"]),
    ]
    if kind == "add":
        nodes.append(helper.make_node("Add", ["scores", mask], ["masked"]))
    else:
        inits.append(const("fill", np.float32(np.finfo(np.float32).min)))
        nodes.append(helper.make_node("Where", [mask, "scores", "fill"], ["masked"]))
    nodes.append(helper.make_node("Softmax", ["masked"], ["p"], axis=-1))
    if nan_guard:
        inits.append(const("zero", np.float32(0.0)))
        nodes += [
            helper.make_node("IsNaN", ["p"], ["nan"]),
            helper.make_node("Where", ["nan", "zero", "p"], ["p_guarded"]),
            helper.make_node("MatMul", ["p_guarded", "v"], ["y"]),
        ]
    else:
        nodes.append(helper.make_node("MatMul", ["p", "v"], ["y"]))
    shape = [BATCH, HEADS, LENGTH, DEPTH]
    graph = helper.make_graph(
        nodes,
        "causal",
        [helper.make_tensor_value_info(name, FLOAT, shape) for name in "qkv"],
        [helper.make_tensor_value_info("y", FLOAT, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model


def lower(length: int = LENGTH) -> np.ndarray:
    return np.tril(np.ones((length, length), dtype=bool))


def bool_constant(nodes: Nodes, inits: Inits) -> tuple[str, str]:
    inits.append(const("mask", lower()[None, None]))
    return "mask", "where"


def additive(fill: float) -> Callable[[Nodes, Inits], tuple[str, str]]:
    def build(nodes: Nodes, inits: Inits) -> tuple[str, str]:
        inits.append(const("mask", np.where(lower(), 0.0, fill).astype(np.float32)))
        return "mask", "add"

    return build


def gpt2_sliced_buffer(nodes: Nodes, inits: Inits) -> tuple[str, str]:
    """GPT-2 (before transformers' mask utilities): `bias[:, :, k-q:k, :k]` of an n_positions buffer."""
    inits += [
        const("bias", lower(BUFFER)[None, None]),
        const("starts", np.array([0, 0], np.int64)),
        const("ends", np.array([LENGTH, LENGTH], np.int64)),
        const("axes", np.array([2, 3], np.int64)),
    ]
    nodes.append(helper.make_node("Slice", ["bias", "starts", "ends", "axes"], ["mask"]))
    return "mask", "where"


def trilu_of_ones(nodes: Nodes, inits: Inits) -> tuple[str, str]:
    """torch's SDPA export with is_causal: Trilu(ones), then Where(tril == 0, -inf, 0) added."""
    inits += [
        const("mask_shape", np.array([LENGTH, LENGTH], np.int64)),
        const("zero", np.float32(0.0)),
        const("minus_inf", np.float32(-np.inf)),
    ]
    nodes += [
        helper.make_node(
            "ConstantOfShape", ["mask_shape"], ["ones"], value=helper.make_tensor("one", FLOAT, [1], [1.0])
        ),
        helper.make_node("Trilu", ["ones"], ["tril"], upper=0),
        helper.make_node("Equal", ["tril", "zero"], ["hidden"]),
        helper.make_node("Where", ["hidden", "minus_inf", "zero"], ["mask"]),
    ]
    return "mask", "add"


def range_comparison(nodes: Nodes, inits: Inits) -> tuple[str, str]:
    """transformers' sdpa/eager mask: key index <= query index, from Range + Unsqueeze."""
    inits += [
        const("start", np.int64(0)),
        const("limit", np.int64(LENGTH)),
        const("delta", np.int64(1)),
        const("row_axes", np.array([1], np.int64)),
        const("col_axes", np.array([0], np.int64)),
    ]
    nodes += [
        helper.make_node("Range", ["start", "limit", "delta"], ["positions"]),
        helper.make_node("Unsqueeze", ["positions", "row_axes"], ["query_index"]),
        helper.make_node("Unsqueeze", ["positions", "col_axes"], ["key_index"]),
        helper.make_node("LessOrEqual", ["key_index", "query_index"], ["mask"]),
    ]
    return "mask", "where"


def range_greater_additive(nodes: Nodes, inits: Inits) -> tuple[str, str]:
    """The same comparison written as Greater (masked where key > query) and turned additive."""
    range_comparison(nodes, inits)
    nodes[-1] = helper.make_node("Greater", ["key_index", "query_index"], ["future"])
    inits += [const("big", np.float32(-1e9)), const("nothing", np.float32(0.0))]
    nodes.append(helper.make_node("Where", ["future", "big", "nothing"], ["additive"]))
    return "additive", "add"


MASKS = {
    "bool-constant": bool_constant,
    "additive-inf": additive(-np.inf),
    "additive-large-negative": additive(-1e9),
    "additive-float-min": additive(float(np.finfo(np.float32).min)),
    "gpt2-sliced-buffer": gpt2_sliced_buffer,
    "trilu-of-ones": trilu_of_ones,
    "range-less-or-equal": range_comparison,
    "range-greater-additive": range_greater_additive,
}


def compile_quietly(model: onnx.ModelProto) -> sofa_compiler.CompiledModel:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a mask left on the host warns: fail on it
        return sofa_compiler.compile(model, keep=1.0)


def attention_lines(compiled: sofa_compiler.CompiledModel) -> list[str]:
    """The imported IR's `sofa.attention` lines (the placements attribute also says 'causal', in its reasons)."""
    lines = [line for line in compiled.ir("onnx-ir").splitlines() if "sofa.attention " in line]
    assert lines, "no sofa.attention in the imported IR"
    return lines


def check_on_accelerator(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> None:
    compiled = compile_quietly(model)
    assert compiled.programs, "the attention did not get an accelerator kernel"
    assert all(" causal " in line or " causal:" in line for line in attention_lines(compiled))
    outputs, report = compiled.run(inputs)
    assert report.kernels
    (expected,) = run_onnxruntime(model, inputs)[:1]
    assert_close_to_fp32_reference(next(iter(outputs.values())), expected)


@pytest.mark.parametrize("name", list(MASKS))
def test_constant_causal_mask_runs_on_accelerator(name: str) -> None:
    model = causal_model(MASKS[name])
    check_on_accelerator(model, random_inputs(model))


@pytest.mark.parametrize("name", ["bool-constant", "additive-inf"])
def test_nan_guarded_softmax_runs_on_accelerator(name: str) -> None:
    """Where(IsNaN(P), 0, P) zeroes only fully masked rows, as sofa.attention does: the core absorbs it."""
    model = causal_model(MASKS[name], opset=18, nan_guard=True)
    check_on_accelerator(model, random_inputs(model))


def attention_op_model(mask: np.ndarray) -> onnx.ModelProto:
    """An opset-23 `Attention` with a constant attn_mask and is_causal=0, as torch's dynamo exporter writes SDPA."""
    shape = [BATCH, HEADS, LENGTH, DEPTH]
    graph = helper.make_graph(
        [helper.make_node("Attention", ["q", "k", "v", "mask"], ["y"], name="attention")],
        "attention_op",
        [helper.make_tensor_value_info(name, FLOAT, shape) for name in "qkv"],
        [helper.make_tensor_value_info("y", FLOAT, shape)],
        [const("mask", mask)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize(
    "mask",
    [lower()[None, None], np.where(lower(), 0.0, np.finfo(np.float32).min).astype(np.float32)],
    ids=["bool", "additive-float-min"],
)
def test_attention_op_constant_causal_mask_runs_on_accelerator(mask: np.ndarray) -> None:
    model = attention_op_model(mask)
    check_on_accelerator(model, random_inputs(model))


def test_shifted_triangle_is_not_causal() -> None:
    """A triangle one above the diagonal shows each query the next key too: a general mask, not `causal`."""

    def shifted(nodes: Nodes, inits: Inits) -> tuple[str, str]:
        inits.append(const("mask", np.tril(np.ones((LENGTH, LENGTH), dtype=bool), k=1)))
        return "mask", "where"

    model = causal_model(shifted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = sofa_compiler.compile(model, keep=1.0)
    (line,) = attention_lines(compiled)
    assert " causal" not in line
