"""`frontend.masks`: the closed-form position masks against onnx's reference implementation."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference.ops.op_attention import _apply_causal, _apply_sliding_window

from dialects.host import ConstantOp
from dialects.numerics import UNBOUNDED, BandMask
from dialects.sofa import AttentionOp
from sofa_compiler.frontend.errors import FrontendError
from sofa_compiler.frontend.graph import Graph
from sofa_compiler.frontend.importer import import_model
from sofa_compiler.frontend.masks import ONNX_UNBOUNDED, as_keep_term, causal_band, window_of
from sofa_compiler.frontend.patterns import MaskTerm


def reference_allowed(q_length: int, kv_length: int, offset: int, left: int, right: int, causal: bool) -> np.ndarray:
    bias = np.zeros((q_length, kv_length), np.float32)
    if causal:
        bias = _apply_causal(bias, offset)
    if left >= 0 or right >= 0:
        bias = _apply_sliding_window(bias, left, right, offset)
    return bias == 0


def onnx_masks(q_length: int, kv_length: int, offset: int, left: int, right: int, causal: bool) -> np.ndarray:
    """The node's position masks as the front end builds them: the causal band and the window, intersected."""
    attrs = {"left_window_size": left, "right_window_size": right} | ({"is_causal": 1} if causal else {})
    allowed = np.ones((q_length, kv_length), bool)
    if causal:
        allowed &= causal_band(offset).dense(q_length, kv_length)
    if (window := window_of(helper.make_node("Attention", ["q", "k", "v"], ["y"], **attrs), offset)) is not None:
        allowed &= window.dense(q_length, kv_length)
    return allowed


@pytest.mark.parametrize(
    ("q_length", "kv_length", "offset"), [(4, 4, 0), (4, 6, 0), (4, 6, 2), (6, 4, 0), (3, 9, 6), (5, 5, -2)]
)
def test_position_masks_match_the_reference(q_length: int, kv_length: int, offset: int) -> None:
    for left, right, causal in itertools.product((ONNX_UNBOUNDED, 0, 1, 3), (ONNX_UNBOUNDED, 0, 2), (False, True)):
        want = reference_allowed(q_length, kv_length, offset, left, right, causal)
        got = onnx_masks(q_length, kv_length, offset, left, right, causal)
        np.testing.assert_array_equal(got, want, err_msg=f"left {left}, right {right}, causal {causal}")


def test_window_of_reads_the_attributes() -> None:
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], left_window_size=3, is_causal=1)
    assert window_of(node, 5) == BandMask(3, UNBOUNDED, 5)
    assert window_of(helper.make_node("Attention", ["q", "k", "v"], ["y"]), 0) is None


def test_a_window_below_minus_one_is_an_error() -> None:
    node: onnx.NodeProto = helper.make_node("Attention", ["q", "k", "v"], ["y"], right_window_size=-2)
    with pytest.raises(FrontendError, match="right_window_size must be -1 or nonnegative, got -2"):
        window_of(node, 0)


def graph_with(value: np.ndarray) -> Graph:
    return Graph(onnx.ModelProto(), 23, [], [], [], {}, consts={"mask": value})


def test_lowest_value_fills_become_a_boolean_mask() -> None:
    lowest = np.finfo(np.float32).min
    value = np.where(np.tri(4, dtype=bool), 0.0, lowest).astype(np.float32)[None, None]
    graph = graph_with(value)
    term = as_keep_term(MaskTerm("mask", keep=False), graph)
    assert term.keep
    np.testing.assert_array_equal(graph.consts[term.name], np.tri(4, dtype=bool)[None, None])


@pytest.mark.parametrize(
    "value",
    [
        np.array([[0.0, -1.0], [0.0, 0.0]], np.float32),  # a bias, not a mask
        np.array([[0.0, -np.inf], [np.finfo(np.float32).min, -np.inf]], np.float32),  # a row of fills only
    ],
)
def test_other_additive_masks_stay_as_they_are(value: np.ndarray) -> None:
    term = MaskTerm("mask", keep=False)
    assert as_keep_term(term, graph_with(value)) is term


def windowed_model(mask: np.ndarray | None, **window: int) -> onnx.ModelProto:
    """Attention-25 on Q, K, V [1, 2, 6, 4] with a constant attn_mask (or none) and window attributes."""
    shape = [1, 2, 6, 4]
    values = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape) for name in "qkvy"]
    inputs = ["q", "k", "v"] + ([] if mask is None else ["mask"])
    initializers = [] if mask is None else [onnx.numpy_helper.from_array(mask, "mask")]
    node = helper.make_node("Attention", inputs, ["y"], **window)
    graph = helper.make_graph([node], "g", values[:3], values[3:], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])


def attention_mask_of(model: onnx.ModelProto) -> np.ndarray:
    (op,) = [op for op in import_model(model).walk() if isinstance(op, AttentionOp)]
    assert op.mask is not None
    assert isinstance(op.mask.owner, ConstantOp), "the accelerator needs the mask as a constant"
    return op.mask.owner.to_array()


@pytest.mark.parametrize("dtype", [np.bool_, np.float32])
@pytest.mark.filterwarnings("ignore::sofa_compiler.frontend.errors.FrontendWarning")
def test_a_window_over_a_constant_mask_folds_to_one_constant(dtype: type) -> None:
    keep = np.random.default_rng(0).random((6, 6)) < 0.7
    mask = keep if dtype == np.bool_ else np.where(keep, 0.0, -np.inf).astype(dtype)
    window = BandMask(2, 1).dense(6, 6)
    folded = attention_mask_of(windowed_model(mask, left_window_size=2, right_window_size=1))
    np.testing.assert_array_equal(folded.reshape(6, 6), keep & window)  # an additive 0/-inf mask as booleans


@pytest.mark.filterwarnings("ignore::sofa_compiler.frontend.errors.FrontendWarning")
def test_a_window_alone_is_a_constant_mask_beside_the_causal_flag() -> None:
    model = windowed_model(None, left_window_size=1, is_causal=1)
    np.testing.assert_array_equal(attention_mask_of(model), BandMask(1, UNBOUNDED).dense(6, 6))
    (op,) = [op for op in import_model(model).walk() if isinstance(op, AttentionOp)]
    assert op.causal is not None
