"""`frontend.masks`: the closed-form position masks against onnx's reference implementation."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference.ops.op_attention import _apply_causal, _apply_sliding_window

from sofa_compiler.frontend.errors import FrontendError
from sofa_compiler.frontend.graph import Graph
from sofa_compiler.frontend.masks import UNBOUNDED, PositionMask, as_keep_term, window_of
from sofa_compiler.frontend.patterns import MaskTerm


def reference_allowed(q_length: int, kv_length: int, offset: int, left: int, right: int, causal: bool) -> np.ndarray:
    bias = np.zeros((q_length, kv_length), np.float32)
    if causal:
        bias = _apply_causal(bias, offset)
    if left >= 0 or right >= 0:
        bias = _apply_sliding_window(bias, left, right, offset)
    return bias == 0


@pytest.mark.parametrize(
    ("q_length", "kv_length", "offset"), [(4, 4, 0), (4, 6, 0), (4, 6, 2), (6, 4, 0), (3, 9, 6), (5, 5, -2)]
)
def test_position_mask_matches_the_reference(q_length: int, kv_length: int, offset: int) -> None:
    for left, right, causal in itertools.product((UNBOUNDED, 0, 1, 3), (UNBOUNDED, 0, 2), (False, True)):
        mask = PositionMask(offset=offset, left=left, right=right, causal=causal)
        want = reference_allowed(q_length, kv_length, offset, left, right, causal)
        np.testing.assert_array_equal(mask.allowed(q_length, kv_length), want, err_msg=str(mask))


def test_window_of_reads_the_attributes() -> None:
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], left_window_size=3, is_causal=1)
    assert window_of(node, 5) == PositionMask(offset=5, left=3)
    assert not window_of(helper.make_node("Attention", ["q", "k", "v"], ["y"]), 0).constrains


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
