"""KV caches in the ONNX front end: `Attention`'s past/present (opset 23) and `nonpad_kv_seqlen` (opset 24).

`sofa.attention`'s causal flag is upper-left aligned (query i sees key j <= i); with a cache
the spec aligns it bottom-right (query i sees key j <= i + offset). The accelerator then takes:

* a single query (a decode step): bottom-right causal hides nothing of the cache, and with
  `nonpad_kv_seqlen` (per-batch valid length L[b], offset L[b] - 1) it is the key-padding
  mask ``j < L[b]``, which the accelerator folds into the operands;
* a static offset P (`past_key` of P rows, or the `Concat(past, new)` form): P idle zero
  queries before Q make the upper-left flag bottom-right; the output keeps Q's rows. The
  cost is P more query rows in the kernel (exact; a causal-offset operand would remove them);
* per-batch offsets L[b] - q (`nonpad_kv_seqlen` with several queries): query i is placed at
  row L[b] + i of a zero query block of S_kv + q rows, over q masked keys and the cache;
  upper-left causal plus the key padding ``j < L[b]`` is then the spec's mask, and rows with
  L[b] + i - q < 0 see no key (zeros, as the spec's fully masked rows). The placement and
  its inverse are one-hot MatMuls on the host (exact: one nonzero term per sum). The kernel
  runs S_kv + q query rows over S_kv + q keys.

A general attn_mask (one that varies along the query axis) with bottom-right causal becomes one
explicit mask: the causal band (and the key padding) intersected into it, of the attn_mask's size.
A boolean attn_mask stays boolean and runs on the accelerator; an additive one stays additive.
(Placing the queries instead, with the mask, would need a mask of (P + q) or (S_kv + q) rows; a
causal-offset operand on `sofa.attention` would avoid both, and is not built.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from xdsl.dialects.builtin import i1
from xdsl.ir import SSAValue

from dialects.host import numpy_dtype
from sofa_compiler.frontend.emitter import Emitter, element_of, shape_of
from sofa_compiler.frontend.errors import FrontendError
from sofa_compiler.frontend.graph import Graph, describe
from sofa_compiler.frontend.masks import merge_allowed


@dataclass(frozen=True)
class PlacedAttention:
    """The operands `sofa.attention` gets for one cached attention, and how to read its output back."""

    qkv: tuple[SSAValue, SSAValue, SSAValue]
    mask: SSAValue | None
    causal: bool
    first_row: int = 0
    """Static offset: the output is rows [first_row, first_row + q) of the kernel's."""
    gather: SSAValue | None = None
    """Per-batch offsets: a one-hot ``[B, 1, q, N]`` matrix picking each query's row of the kernel's output."""
    zero_empty_rows: bool = False
    """Rows that see no key (an empty cache) are zeros, as the spec says, not the kernel's NaN."""

    def output(self, emitter: Emitter, out: SSAValue) -> SSAValue:
        """The attention output for the original queries, from the kernel's output."""
        if self.zero_empty_rows:
            out = _zero_nan(emitter, out)
        if self.gather is not None:
            batch, heads, _, depth = shape_of(out)
            return emitter.host("MatMul", [self.gather, out], [batch, heads, shape_of(self.gather)[2], depth])
        if self.first_row == 0:
            return out
        batch, heads, rows, depth = shape_of(out)
        attrs = {"starts": (self.first_row,), "ends": (rows,), "axes": (2,), "steps": (1,)}
        return emitter.host("Slice", [out], [batch, heads, rows - self.first_row, depth], attrs)


def _zero_nan(emitter: Emitter, out: SSAValue) -> SSAValue:
    """NaN rows as zeros (NaN != NaN).

    A row whose keys the folded key-padding mask hides entirely comes out of the kernel as NaN;
    the spec gives zeros. With a cache such rows are ordinary: an empty cache (L[b] = 0), or the
    rows before a query's place in `place_per_batch`, where 0 * NaN would spread through the
    one-hot product.
    """
    real = emitter.host("Equal", [out, out], shape_of(out), element=i1)
    zero = emitter.constant(np.zeros((), numpy_dtype(element_of(out))))
    return emitter.host("Where", [real, out, zero], shape_of(out), element=element_of(out))


def concat_past(emitter: Emitter, *pairs: tuple[SSAValue, SSAValue]) -> tuple[SSAValue, ...]:
    """Each ``(past, new)`` pair as ``Concat(past, new)`` along the sequence axis (present_key/present_value)."""
    joined = []
    for past, new in pairs:
        shape = shape_of(new)
        length = shape_of(past)[2] + shape[2]
        joined.append(emitter.host("Concat", [past, new], [*shape[:2], length, shape[3]], {"axis": 2}))
    return tuple(joined)


def check_nonpad(node: onnx.NodeProto, graph: Graph, name: str, has_past: bool) -> None:
    """`nonpad_kv_seqlen` is an int64 ``[B]`` tensor and comes without past_key/past_value (the spec)."""
    where = describe(node)
    if has_past:
        raise FrontendError(f"{where}: nonpad_kv_seqlen cannot be combined with past_key/past_value")
    info, batch = graph.info(name), graph.info(node.input[0]).shape[0]
    if info.dtype != np.int64 or tuple(info.shape) != (batch,):
        raise FrontendError(
            f"{where}: nonpad_kv_seqlen must be an int64 tensor of shape [{batch}] (one length per batch), "
            f"got {info.dtype} {list(info.shape)}"
        )


def causal_allowed(q_length: int, kv_length: int, offset: int) -> np.ndarray:
    """Bottom-right causal visibility ``[q, kv]``: query i sees key j iff j <= i + offset."""
    return np.arange(kv_length)[None, :] <= np.arange(q_length)[:, None] + offset


def nonpad_allowed(emitter: Emitter, lengths: SSAValue, q_length: int, kv_length: int, causal: bool) -> SSAValue:
    """The spec's external-cache visibility, boolean ``[B, 1, q|1, kv]``: j < L[b] (and j <= i + L[b] - q if causal).

    Without causal, or with one query (where causal hides nothing more), it is a key-padding mask.
    """
    batch = shape_of(lengths)[0]
    limit = emitter.reshape(lengths, [batch, 1, 1, 1])
    keys = emitter.constant(np.arange(kv_length, dtype=np.int64).reshape(1, 1, 1, kv_length))
    allowed = emitter.host("Less", [keys, limit], [batch, 1, 1, kv_length], element=i1)
    if not causal or q_length == 1:
        return allowed
    # j <= i + L[b] - q, as j - i <= L[b] - q.
    offset = emitter.host("Sub", [limit, emitter.constant(np.array(q_length, np.int64))], [batch, 1, 1, 1])
    steps = np.arange(kv_length)[None, :] - np.arange(q_length)[:, None]
    distance = emitter.constant(steps.astype(np.int64).reshape(1, 1, q_length, kv_length))
    frontier = emitter.host("LessOrEqual", [distance, offset], [batch, 1, q_length, kv_length], element=i1)
    return emitter.host("And", [allowed, frontier], [batch, 1, q_length, kv_length], element=i1)


def key_only(mask: SSAValue | None) -> bool:
    """Whether a mask cannot vary along the query axis (None, or a size-1 query axis)."""
    return mask is None or len(shape_of(mask)) < 2 or shape_of(mask)[-2] == 1


def place_static(
    emitter: Emitter, qkv: tuple[SSAValue, SSAValue, SSAValue], mask: SSAValue | None, offset: int
) -> PlacedAttention:
    """Bottom-right causal with a static offset (past rows) on the upper-left flag; `mask` must be key-only."""
    q, k, v = qkv
    batch, heads, q_length, depth = shape_of(q)
    if q_length == 1 or offset >= shape_of(k)[2] - 1:
        return PlacedAttention(qkv, mask, causal=False)  # every key is visible to every query
    idle = emitter.constant(np.zeros((batch, heads, offset, depth), numpy_dtype(element_of(q))))
    padded = emitter.host("Concat", [idle, q], [batch, heads, offset + q_length, depth], {"axis": 2})
    return PlacedAttention((padded, k, v), mask, causal=True, first_row=offset)


def place_per_batch(emitter: Emitter, qkv: tuple[SSAValue, SSAValue, SSAValue], lengths: SSAValue) -> PlacedAttention:
    """Bottom-right causal with per-batch offsets L[b] - q and key padding j < L[b] (see the module doc)."""
    q, k, v = qkv
    batch, q_heads, q_length, depth = shape_of(q)
    kv_length = shape_of(k)[2]
    rows = kv_length + q_length
    dtype = numpy_dtype(element_of(q))
    limit = emitter.reshape(lengths, [batch, 1, 1, 1])
    limit = emitter.host("Max", [limit, emitter.constant(np.zeros((), np.int64))], [batch, 1, 1, 1])
    limit = emitter.host("Min", [limit, emitter.constant(np.array(kv_length, np.int64))], [batch, 1, 1, 1])
    # Query i sits at row L[b] + i: scatter[b, 0, r, i] = (r - i == L[b]); gather is its transpose.
    steps = np.arange(rows)[:, None] - np.arange(q_length)[None, :]
    at = emitter.host(
        "Equal", [emitter.constant(steps.astype(np.int64)[None, None]), limit], [batch, 1, rows, q_length], element=i1
    )
    zero, one = emitter.constant(np.zeros((), dtype)), emitter.constant(np.ones((), dtype))
    scatter = emitter.host("Where", [at, one, zero], [batch, 1, rows, q_length], element=element_of(q))
    placed_q = emitter.host("MatMul", [scatter, q], [batch, q_heads, rows, depth])
    gather = emitter.transpose(scatter, [0, 1, 3, 2])

    def after_idle_keys(value: SSAValue) -> SSAValue:
        shape = shape_of(value)
        idle = emitter.constant(np.zeros((shape[0], shape[1], q_length, shape[3]), numpy_dtype(element_of(value))))
        return emitter.host("Concat", [idle, value], [shape[0], shape[1], rows, shape[3]], {"axis": 2})

    # Key j' of the placed block is cache key j' - q: visible iff q <= j' < q + L[b].
    keys = emitter.constant(np.arange(rows, dtype=np.int64).reshape(1, 1, 1, rows) - q_length)
    valid = emitter.host("Less", [keys, limit], [batch, 1, 1, rows], element=i1)
    zero_key = emitter.constant(np.zeros((), np.int64))
    cached = emitter.host("GreaterOrEqual", [keys, zero_key], shape_of(keys), element=i1)
    mask = emitter.host("And", [valid, cached], [batch, 1, 1, rows], element=i1)
    placed = (placed_q, after_idle_keys(k), after_idle_keys(v))
    return PlacedAttention(placed, mask, causal=True, gather=gather, zero_empty_rows=True)


def explicit_mask(
    emitter: Emitter,
    mask: SSAValue | None,
    causal: bool,
    past_length: int,
    lengths: SSAValue | None,
    q_length: int,
    kv_length: int,
) -> tuple[SSAValue | None, bool]:
    """The cache's visibility as one mask (and the causal flag left for upper-left alignment)."""
    if lengths is not None:
        return merge_allowed(emitter, mask, nonpad_allowed(emitter, lengths, q_length, kv_length, causal)), False
    if causal and past_length > 0:
        return merge_allowed(emitter, mask, emitter.constant(causal_allowed(q_length, kv_length, past_length))), False
    return mask, causal


def place(
    emitter: Emitter,
    qkv: tuple[SSAValue, SSAValue, SSAValue],
    mask: SSAValue | None,
    *,
    causal: bool,
    past_length: int,
    lengths: SSAValue | None,
) -> PlacedAttention:
    """The operands that give the accelerator one attention after a KV cache (see the module doc)."""
    q_length, kv_length = shape_of(qkv[0])[2], shape_of(qkv[1])[2]
    if lengths is not None and causal and q_length > 1 and mask is None:
        return place_per_batch(emitter, qkv, lengths)
    if lengths is None and causal and past_length > 0 and key_only(mask):
        return place_static(emitter, qkv, mask, past_length)
    explicit, flag = explicit_mask(emitter, mask, causal, past_length, lengths, q_length, kv_length)
    return PlacedAttention(qkv, explicit, flag, zero_empty_rows=lengths is not None)
