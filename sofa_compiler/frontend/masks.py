"""Position masks of ONNX `Attention`: causal alignment and opset 25's sliding window.

A query at in-block index ``i`` sits at absolute position ``p = i + offset``, where ``offset``
counts the valid keys before the query block (the past length of an internal cache, 0 without
one). After the spec's errata (opset 25) every position constraint is aligned that way:

- ``is_causal``: key ``j`` is visible iff ``j <= p`` (bottom-right; top-left when offset is 0);
- ``left_window_size = L >= 0``: iff ``j >= p - L``;
- ``right_window_size = R >= 0``: iff ``j <= p + R`` (-1 leaves a side unbounded).

They compose with ``attn_mask`` by intersection (an additive mask gets a ``-inf`` bias).
Both are bands of the mask analysis (`dialects.numerics.BandMask`), rendered for the
(queries, keys) block: the accelerator needs the mask as a constant, and finds the band again.

Exporters also write masks as additive constants filled with the dtype's lowest value
(transformers' eager attention: ``torch.finfo(dtype).min``); `as_keep_term` turns those into the
boolean mask they mean, which the accelerator's mask analysis takes. That analysis needs the
mask when the program is built: `folded_mask` turns host ops that combine constants (a window
intersected with a constant mask, a padded or narrowed constant) into one constant.
"""

from __future__ import annotations

import numpy as np
import onnx
from xdsl.dialects.builtin import i1
from xdsl.ir import SSAValue

from dialects.host import ConstantOp, OnnxOp, is_float_dtype, numpy_dtype
from dialects.numerics import UNBOUNDED, BandMask
from sofa_compiler.frontend.emitter import Emitter, element_of, shape_of
from sofa_compiler.frontend.errors import FrontendError
from sofa_compiler.frontend.graph import Graph, attributes, describe
from sofa_compiler.frontend.patterns import MASKED_FILL, MaskTerm
from sofa_compiler.interpreters.host import run_kernel

ONNX_UNBOUNDED = -1
"""A window side without a bound, as the spec writes it."""


def causal_band(offset: int) -> BandMask:
    """Causal masking aligned at `offset`: query i sees key j iff ``j <= i + offset``."""
    return BandMask(UNBOUNDED, 0, offset)


def window_of(node: onnx.NodeProto, offset: int) -> BandMask | None:
    """The node's sliding window (opset 25 attributes) at `offset` as a band, None without one; causality
    stays the caller's (a causal node's right window can only be 0, which the causal mask already implies)."""
    attrs = attributes(node)
    sides = {name: int(attrs.get(name, ONNX_UNBOUNDED)) for name in ("left_window_size", "right_window_size")}
    for name, value in sides.items():
        if value < ONNX_UNBOUNDED:
            raise FrontendError(f"{describe(node)}: {name} must be -1 or nonnegative, got {value}")
    left, right = sides.values()
    if left == right == ONNX_UNBOUNDED:
        return None
    return BandMask(UNBOUNDED if left < 0 else left, UNBOUNDED if right < 0 else right, offset)


def merge_allowed(emitter: Emitter, mask: SSAValue | None, allowed: np.ndarray | SSAValue) -> SSAValue:
    """`mask` restricted to the boolean `allowed` positions (a constant array, or a value computed on the host):
    And for a boolean mask, a -inf bias for an additive one. A constant `allowed` stays a constant bias."""
    constant = isinstance(allowed, np.ndarray)
    if mask is None:
        return emitter.constant(allowed) if constant else allowed
    shape = list(np.broadcast_shapes(shape_of(mask), allowed.shape if constant else shape_of(allowed)))
    if element_of(mask) == i1:
        return emitter.host("And", [mask, emitter.constant(allowed) if constant else allowed], shape, element=i1)
    dtype = numpy_dtype(element_of(mask))
    if constant:
        bias = emitter.constant(np.where(allowed, 0.0, -np.inf).astype(dtype))
    else:
        zero, masked = emitter.constant(np.zeros((), dtype)), emitter.constant(np.array(-np.inf, dtype))
        bias = emitter.host("Where", [allowed, zero, masked], shape_of(allowed), element=element_of(mask))
    return emitter.host("Add", [mask, bias], shape)


def pad_mask(emitter: Emitter, mask: SSAValue, kv_length: int) -> SSAValue:
    """A mask shorter than the KV length is padded with 'masked' (False or -inf), as the spec says."""
    shape = shape_of(mask)
    missing = kv_length - shape[-1]
    if missing <= 0:
        return mask
    dtype = numpy_dtype(element_of(mask))
    fill = np.full((*shape[:-1], missing), False if dtype == np.bool_ else -np.inf, dtype=dtype)
    return emitter.host("Concat", [mask, emitter.constant(fill)], [*shape[:-1], kv_length], {"axis": -1})


def apply_window(
    emitter: Emitter, mask: SSAValue | None, window: BandMask | None, q_length: int, kv_length: int
) -> SSAValue | None:
    """`mask` intersected with the window (unchanged without one)."""
    return mask if window is None else merge_allowed(emitter, mask, window.dense(q_length, kv_length))


def apply_window_per_batch(
    emitter: Emitter, mask: SSAValue | None, window: BandMask | None, lengths: SSAValue, q_length: int, kv_length: int
) -> SSAValue | None:
    """`mask` intersected with the window over an external cache: batch b's queries sit at ``L[b] - q_length``.

    The offset is the run-time `nonpad_kv_seqlen`, so the window is host ops over the lengths, not a constant.
    """
    if window is None:
        return mask
    batch = shape_of(lengths)[0]
    shape = [batch, 1, q_length, kv_length]
    # delta[b, 0, i, j] = j - (i + L[b] - q_length), as `BandMask.visible` with a per-batch offset.
    base = np.arange(kv_length)[None, :] - np.arange(q_length)[:, None] + q_length
    offset = emitter.reshape(lengths, [batch, 1, 1, 1])
    delta = emitter.host("Sub", [emitter.constant(base.astype(np.int64)), offset], shape)
    allowed: SSAValue | None = None
    for op_type, bound in (("GreaterOrEqual", -window.left), ("LessOrEqual", window.right)):
        if abs(bound) >= UNBOUNDED:
            continue
        side = emitter.host(op_type, [delta, emitter.constant(np.array(bound, np.int64))], shape, element=i1)
        allowed = side if allowed is None else emitter.host("And", [allowed, side], shape, element=i1)
    return mask if allowed is None else merge_allowed(emitter, mask, allowed)


def as_keep_term(term: MaskTerm, graph: Graph) -> MaskTerm:
    """A constant additive mask of zeros and 'masked' fills (<= MASKED_FILL) as the boolean mask it means.

    Exact when every query row keeps some key: the fill's exp underflows to exactly 0 in f32, as a
    hidden key's weight is. (A row of fills alone is a uniform average in the model and zeros under a
    boolean mask, so such masks stay as they are.) Other terms are returned unchanged.
    """
    value = graph.consts.get(term.name)
    if term.keep or value is None or not is_float_dtype(value.dtype) or value.ndim == 0:
        return term
    visible = value == 0
    if not np.all(visible | (value <= MASKED_FILL)) or not np.all(visible.any(axis=-1)):
        return term
    name = f"{term.name}/keep"
    graph.consts[name] = visible
    return MaskTerm(name, keep=True)


def folded_mask(emitter: Emitter, mask: SSAValue | None) -> SSAValue | None:
    """`mask` as one `host.constant` when host ops build it from constants alone; otherwise unchanged.

    The ops left without a use go with the importer's dead-code elimination.
    """
    if mask is None or isinstance(mask.owner, ConstantOp):
        return mask
    value = _constant_value(mask)
    return mask if value is None else emitter.constant(value)


def _constant_value(value: SSAValue) -> np.ndarray | None:
    owner = value.owner
    if isinstance(owner, ConstantOp):
        return owner.to_array()
    if not isinstance(owner, OnnxOp) or len(owner.results) != 1:
        return None
    inputs = [_constant_value(operand) for operand in owner.operands]
    if any(array is None for array in inputs):
        return None
    result_type = (tuple(shape_of(value)), numpy_dtype(element_of(value)))
    (result,) = run_kernel(owner.op_type.data, inputs, owner.attribute_values(), [result_type])  # pyright: ignore
    return result
