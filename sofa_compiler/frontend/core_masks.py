"""The masks of a decomposed attention pattern, as the operands the `Attention` node gives `sofa.attention`.

ONNX's expanded `Attention` (and many exporters) add one float bias before the Softmax, built as
a sum: the attn_mask (a boolean one as ``Where(mask, 0, -inf)``, padded with -inf to the key
length), the causal triangle, the sliding window, the external cache's padding. `split_bias`
takes the sum apart again, so that each part reaches the accelerator as the node form's operand
does (`core_mask`):

- a constant causal triangle is the causal flag, aligned top-left or bottom-right after past keys;
- a boolean part stays boolean (the accelerator runs boolean masks computed at run time);
- a part computed at run time that can only be 0 or -inf (`zero_or_masked`) is the boolean mask
  it encodes, ``Equal(bias, 0)`` on the host;
- what is left (a true bias) stays an additive mask.

The parts are intersected again (And; a bias is added), which is exact: -inf plus anything is
-inf, and 0 changes nothing.
"""

from __future__ import annotations

import numpy as np
import onnx
from xdsl.dialects.builtin import i1
from xdsl.ir import SSAValue

from dialects.host import is_float_dtype, numpy_dtype
from sofa_compiler.frontend.emitter import Emitter, element_of, shape_of
from sofa_compiler.frontend.graph import Graph, attributes
from sofa_compiler.frontend.mask_axes import narrow_mask
from sofa_compiler.frontend.masks import as_keep_term, pad_mask
from sofa_compiler.frontend.patterns import MaskTerm, is_causal_mask, is_exact_cast, is_float_cast

MAX_DEPTH = 32
"""Nodes followed up from a bias at most (the expanded `Attention` builds its bias in under ten)."""

SHAPE_OPS = frozenset({"Identity", "Unsqueeze", "Squeeze", "Reshape", "Expand", "Transpose", "Slice", "Tile"})
"""Operators that only move or repeat the elements of their first input."""


def split_bias(graph: Graph, term: MaskTerm) -> list[MaskTerm]:
    """An additive mask term as the terms it sums; itself when it is no such sum, or sums two true biases.

    (Two true biases stay one term: adding them again in another order or type could round differently.)
    """
    if term.keep:
        return [term]
    parts = _parts(graph, term.name, term.padded, MAX_DEPTH)
    biases = [part for part in parts if not part.keep and not zero_or_masked(graph, part.name)]
    return parts if len(biases) <= 1 else [term]


def _parts(graph: Graph, name: str, padded: bool, depth: int) -> list[MaskTerm]:
    whole = [MaskTerm(name, keep=False, padded=padded)]
    node = graph.producer.get(name)
    if name in graph.consts or node is None or depth == 0:
        return whole
    if node.op_type == "Add":
        return [part for operand in node.input for part in _parts(graph, operand, padded, depth - 1)]
    if node.op_type == "Identity" or is_float_cast(graph, node):
        parts = _parts(graph, node.input[0], padded, depth - 1)
        # A cast that rounds changes a true bias; 0 and -inf it keeps.
        exact = node.op_type == "Identity" or is_exact_cast(graph, node)
        return parts if exact or all(part.keep or zero_or_masked(graph, part.name) for part in parts) else whole
    if node.op_type == "Where" and (keep := _keep_condition(graph, node)) is not None:
        return [MaskTerm(keep[0], keep=True, invert=keep[1], padded=padded)]
    if node.op_type == "Pad" and (extra := _padding_with_masked(graph, node)) is not None:
        return _parts(graph, node.input[0], padded or extra > 0, depth - 1)
    return whole


def _keep_condition(graph: Graph, node: onnx.NodeProto) -> tuple[str, bool] | None:
    """For Where(cond, 0, -inf): (cond, False); for Where(cond, -inf, 0): (cond, True) (keep where cond is false)."""
    condition, visible, masked = node.input
    cond, result = graph.known(condition), graph.known(node.output[0])
    if cond is None or result is None or cond.dtype != np.bool_ or result.shape != cond.shape:
        return None
    values = graph.scalar(visible), graph.scalar(masked)
    if values == (0.0, -np.inf):
        return condition, False
    if values == (-np.inf, 0.0):
        return condition, True
    return None


def _padding_with_masked(graph: Graph, node: onnx.NodeProto) -> int | None:
    """For a Pad that only appends -inf at the end of the last axis: how many; None for any other Pad."""
    if attributes(node).get("mode", "constant") != "constant" or len(node.input) < 3:
        return None
    pads, fill, data = graph.consts.get(node.input[1]), graph.scalar(node.input[2]), graph.known(node.input[0])
    if data is None or pads is None or fill is None or not np.isneginf(fill):
        return None
    rank = len(data.shape)
    axes = graph.consts.get(node.input[3]) if len(node.input) > 3 and node.input[3] else np.arange(rank)
    if axes is None or pads.size != 2 * axes.size:
        return None
    begins, ends = np.ravel(pads)[: axes.size], np.ravel(pads)[axes.size :]
    last = np.ravel(axes) % rank == rank - 1
    if np.any(begins != 0) or np.any(ends[~last] != 0) or np.any(ends < 0):
        return None
    return int(ends[last].sum())


def zero_or_masked(graph: Graph, name: str, depth: int = MAX_DEPTH) -> bool:
    """Whether the float value `name` can only hold 0 and -inf, whatever the model's inputs."""
    value = graph.consts.get(name)
    if value is not None:
        return is_float_dtype(value.dtype) and bool(np.all((value == 0) | np.isneginf(value)))
    node, info = graph.producer.get(name), graph.known(name)
    if node is None or info is None or depth == 0 or not is_float_dtype(info.dtype):
        return False
    if node.op_type == "Where":
        operands = node.input[1:]
    elif node.op_type in ("Add", "Min", "Max", "Concat"):
        operands = node.input
    elif node.op_type in SHAPE_OPS or node.op_type == "Pad" or is_float_cast(graph, node):
        operands = node.input[:1]
        if node.op_type == "Pad":
            fill = graph.scalar(node.input[2]) if len(node.input) > 2 and node.input[2] else 0.0
            if fill is None or not (fill == 0 or np.isneginf(fill)):
                return False
    else:
        return False
    return all(zero_or_masked(graph, operand, depth - 1) for operand in operands if operand)


def core_mask(
    masks: list[MaskTerm], graph: Graph, emitter: Emitter, q_length: int, kv_length: int
) -> tuple[SSAValue | None, bool, int]:
    """One mask operand for a pattern's mask terms, whether they hold the causal triangle, and its offset.

    The offset is 0 for top-left alignment, S_kv - S_q for bottom-right (queries after past keys, the
    `Concat(past, new)` form). A triangle at another offset stays a mask (constant: the mask analysis
    finds its band), rather than P idle query rows.
    """
    parts = [as_keep_term(part, graph) for term in masks for part in split_bias(graph, term)]
    terms = [term for term in parts if not _hides_nothing(graph, term)]
    causal, offset = False, 0
    for candidate in dict.fromkeys((0, max(kv_length - q_length, 0))):
        found = [t for t in terms if not t.padded and is_causal_mask(t, graph, q_length, kv_length, candidate)]
        if found:
            terms.remove(found[0])
            causal, offset = True, candidate
            break
    values = [_term_value(graph, emitter, term, kv_length) for term in terms]
    return _intersection(emitter, values), causal, offset


def _hides_nothing(graph: Graph, term: MaskTerm) -> bool:
    """A constant term that lets every key through (the expanded `Attention` adds a zero bias without a mask)."""
    value = graph.consts.get(term.name)
    if value is None or term.padded:
        return False
    if term.keep:
        return bool(np.all(np.logical_not(value) if term.invert else value))
    return not np.any(value)


def _term_value(graph: Graph, emitter: Emitter, term: MaskTerm, kv_length: int) -> SSAValue:
    """One term as a boolean mask (keep where true) or, for a true bias, as the float bias."""
    value = narrow_mask(graph, emitter, term.name)
    if term.keep and term.invert:
        value = emitter.host("Not", [value], shape_of(value), element=i1)
    elif term.keep and element_of(value) != i1:
        value = emitter.host("Cast", [value], shape_of(value), {"to": onnx.TensorProto.BOOL}, element=i1)
    elif not term.keep and term.name not in graph.consts and zero_or_masked(graph, term.name):
        zero = emitter.constant(np.zeros((), numpy_dtype(element_of(value))))
        value = emitter.host("Equal", [value, zero], shape_of(value), element=i1)
    return pad_mask(emitter, value, kv_length) if term.padded else value


def _intersection(emitter: Emitter, masks: list[SSAValue]) -> SSAValue | None:
    """Keys visible under every mask: And of boolean masks; with a float bias among them, the sum of biases."""
    if len(masks) <= 1:
        return masks[0] if masks else None
    boolean = all(element_of(mask) == i1 for mask in masks)
    float_type = next((element_of(m) for m in masks if element_of(m) != i1), None)
    dtype = np.float32 if float_type is None else numpy_dtype(float_type)
    total = None
    for mask in masks:
        if not boolean and element_of(mask) == i1:
            zero, masked = emitter.constant(np.zeros((), dtype)), emitter.constant(np.array(-np.inf, dtype))
            mask = emitter.host("Where", [mask, zero, masked], shape_of(mask), element=element_of(zero))
        if total is None:
            total = mask
            continue
        shape = np.broadcast_shapes(shape_of(total), shape_of(mask))
        total = emitter.host("And" if boolean else "Add", [total, mask], shape, element=element_of(total))
    return total
