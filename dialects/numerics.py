"""Golden numeric kernels for SOFA's three stages.

These pure numpy functions define what the hardware computes. The `sofa`
dialect's interpreter and the ISA simulator both call them, tile by tile, so
the two levels agree bit for bit.

Number formats (see docs/isa.md for the hardware view):

* W_k is converted offline to 4-bit sign+exponent ("LZ") codes: bit 3 is the
  sign, bits 0-2 an exponent ``e`` in 0..7, and the value is
  ``(-1)^s * 2^(base + e)``. Code ``0b1000`` means zero. ``base`` is one
  exponent per weight tensor, ``floor(log2(max|W|)) - 7``. Rounding is
  floor (truncation), matching the paper's Fig. 7c (24 x 6 -> 24 << 2 = 96).
* X tokens are 8-bit integers in block floating point: each token row shares
  one power-of-two exponent chosen so that ``max|x_row| <= 127 * 2^e``.
* K-hat and A-hat are fp16 (16-bit) values, saturated to the fp16 range.
* Q is fp16; its 5-bit LZ code is its sign plus its exponent field, so the
  DLZS product ``q * k`` becomes ``sign(q) * ldexp(k, floor(log2|q|))``.
* SU-FA computes in fp64 internally and writes fp32 outputs. It is exact
  softmax attention over the selected keys.

Accumulations use fp64 or int64, which are exact for these formats at the
sizes we run, so results do not depend on summation order or tile shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LZ_ZERO_CODE = 0b1000
"""The 4-bit W_k code that stands for zero ("negative" sign, exponent 0)."""

LZ_EXPONENT_LEVELS = 8
"""Number of exponent levels a 4-bit W_k code can express (3 bits)."""

X_INT_MAX = 127
"""Largest magnitude of an 8-bit X token after block-floating-point scaling."""

FP16_MAX = float(np.finfo(np.float16).max)

NO_INDEX = -1
"""Marks an unused slot in a SADS index list."""


# ---------------------------------------------------------------------------
# DLZS: differential leading-zero summation
# ---------------------------------------------------------------------------


def floor_log2(values: np.ndarray) -> np.ndarray:
    """Exponent of the leading one of ``|values|`` (undefined for zero)."""
    _, exponent = np.frexp(np.abs(values).astype(np.float64))
    return (exponent - 1).astype(np.int64)


def dlzs_multiply(x: int, y: int) -> int:
    """The paper's scalar DLZS product: ``x`` shifted by ``y``'s leading-one exponent.

    ``dlzs_multiply(24, 6) == 96`` (Fig. 7c). Only ``y`` is converted.
    """
    if x == 0 or y == 0:
        return 0
    sign = -1 if (x < 0) != (y < 0) else 1
    return sign * (abs(x) << int(floor_log2(np.array([y]))[0]))


def lz_base_exponent(weights: np.ndarray) -> int:
    """The shared exponent ``base`` so that ``max|W|`` lands on code exponent 7."""
    peak = float(np.max(np.abs(weights))) if weights.size else 0.0
    if peak == 0.0:
        return 0
    return int(floor_log2(np.array([peak]))[0]) - (LZ_EXPONENT_LEVELS - 1)


def wk_to_lz(weights: np.ndarray) -> tuple[np.ndarray, int]:
    """Convert W_k offline to 4-bit sign+exponent codes (stored one per int8).

    Weights whose exponent falls below ``base`` become zero: the DLZS engine's
    zero eliminator skips them.
    """
    base = lz_base_exponent(weights)
    codes = np.full(weights.shape, LZ_ZERO_CODE, dtype=np.int8)
    nonzero = weights != 0
    exponent = np.zeros(weights.shape, dtype=np.int64)
    exponent[nonzero] = floor_log2(weights[nonzero]) - base
    representable = nonzero & (exponent >= 0)
    sign_bit = (weights < 0).astype(np.int64) << 3
    codes[representable] = (sign_bit | exponent)[representable].astype(np.int8)
    return codes, base


def lz_decode(codes: np.ndarray, base: int) -> np.ndarray:
    """The real values that 4-bit W_k codes stand for (fp64)."""
    codes = codes.astype(np.int64)
    magnitude = np.ldexp(1.0, (codes & 0b111) + base)
    value = np.where(codes & 0b1000, -magnitude, magnitude)
    return np.where(codes == LZ_ZERO_CODE, 0.0, value)


def quantize_token_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantise X to 8-bit block floating point, one exponent per row.

    Returns ``(x_int8, row_exponent)`` with ``x ~= x_int8 * 2^row_exponent``.
    """
    x = np.asarray(x, dtype=np.float64)
    peak = np.max(np.abs(x), axis=-1, keepdims=True)
    safe_peak = np.where(peak > 0, peak, 1.0)
    exponent = np.where(peak > 0, np.ceil(np.log2(safe_peak / X_INT_MAX)), 0).astype(np.int64)
    x_int = np.clip(np.rint(np.ldexp(x, -exponent)), -X_INT_MAX, X_INT_MAX)
    return x_int.astype(np.int8), exponent[..., 0]


KVGEN_CHUNK = 64
"""Hidden elements the K/V-generation array reduces per accumulation step."""


def kv_rows(x: np.ndarray, w: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
    """K/V generation: ``init + x . W`` as fp32, reduced over the hidden dimension in steps of `KVGEN_CHUNK`.

    ``x`` is ``[rows, H]``, ``w`` ``[H, cols]`` and ``init`` broadcastable to
    ``[rows, cols]`` (the bias, or the partial sums of earlier hidden columns;
    None is zero). Each step's dot products are exact-ish fp64 sums rounded
    to fp32 and added to an fp32 accumulator, so a program that splits H into
    chunks starting at multiples of `KVGEN_CHUNK` gets the same bits as one
    pass over all of H.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    rows, hidden = x.shape
    acc = np.zeros((rows, w.shape[1]), np.float32)
    if init is not None:
        acc += np.asarray(init, np.float32)
    for start in range(0, hidden, KVGEN_CHUNK):
        stop = min(start + KVGEN_CHUNK, hidden)
        step = x[:, start:stop].astype(np.float64) @ w[start:stop].astype(np.float64)
        acc += step.astype(np.float32)
    return acc


def to_fp16_saturating(values: np.ndarray) -> np.ndarray:
    """Round to fp16, clamping to the finite range instead of overflowing."""
    values = np.asarray(values)
    # Two fast reductions usually show that nothing needs clamping (NaN fails both tests and clamps).
    if values.size and values.dtype.kind == "f" and values.min() >= -FP16_MAX and values.max() <= FP16_MAX:
        return values.astype(np.float16)
    return np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16)


def dlzs_key(x: np.ndarray, codes: np.ndarray, base: int) -> np.ndarray:
    """DLZS phase 1: K-hat = X . LZ(W_k), add-only, as fp16.

    ``x`` is ``[..., S, H]`` real values; they are quantised here to 8-bit
    rows (what the host writes to DRAM) and passed to `dlzs_key_quantized`.
    """
    x_int, row_exponent = quantize_token_rows(x)
    return dlzs_key_quantized(x_int, row_exponent, codes, base)


def dlzs_key_quantized(x_int: np.ndarray, row_exponent: np.ndarray, codes: np.ndarray, base: int) -> np.ndarray:
    """DLZS phase 1 on 8-bit block-floating-point tokens ``x_int * 2^row_exponent``.

    ``codes`` is ``[H, N]``. Each product is ``|x| << e(w)`` with the XOR of
    the signs; sums are exact in int64 and then scaled back to fp16.
    """
    weight_shift = np.where(codes == LZ_ZERO_CODE, 0, codes.astype(np.int64) & 0b111)
    weight_sign = np.where(codes == LZ_ZERO_CODE, 0, np.where(codes & 0b1000, -1, 1))
    # Signed power-of-two weight: x * (+-2^e) is the shift-with-sign the array does.
    signed_power = weight_sign * (np.int64(1) << weight_shift)
    khat_int = x_int.astype(np.int64) @ signed_power
    scale = np.asarray(row_exponent, np.int64)[..., None] + base
    return to_fp16_saturating(np.ldexp(khat_int.astype(np.float64), scale))


def q_lz_exponent(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 5-bit LZ form of fp16 Q: (sign as -1/0/+1, leading-one exponent)."""
    q16 = np.asarray(q).astype(np.float16).astype(np.float64)
    sign = np.sign(q16).astype(np.int64)
    exponent = np.where(q16 != 0, floor_log2(np.where(q16 != 0, q16, 1.0)), 0)
    return sign, exponent


def q_lz_power(q: np.ndarray) -> np.ndarray:
    """``sign(q) * 2^floor(log2|q|)`` of fp16 Q, as fp64 (``+0.0`` for zero).

    Equal to the value of `q_lz_exponent`. For finite Q it is the fp16 value
    with its mantissa cleared, taken in fp32 (where fp16 subnormals are
    normal): a few integer passes instead of `frexp`.
    """
    q32 = np.asarray(q).astype(np.float16, copy=False).astype(np.float32)
    bits = q32.view(np.int32) & np.int32(-(1 << 23))  # sign and exponent fields
    if (bits & np.int32(0x7F800000) == np.int32(0x7F800000)).any():  # inf or NaN: the general path
        sign, exponent = q_lz_exponent(q)
        return sign * np.ldexp(1.0, exponent)
    bits[bits == np.int32(-(1 << 31))] = 0  # -0.0 -> +0.0, as sign(0) * 1 gives
    return bits.view(np.float32).astype(np.float64)


def dlzs_score(q: np.ndarray, khat: np.ndarray) -> np.ndarray:
    """DLZS phase 2: A-hat = LZ(Q) . K-hat^T, as fp16 (unscaled dot-product units).

    ``q`` is ``[..., Sq, d]``, ``khat`` is ``[..., Skv, d]``. Q becomes a signed
    power of two (its 5-bit LZ code), so every product is an exact shift of
    K-hat, and fp64 sums of them are exact.
    """
    return dlzs_score_power(q_lz_power(q), khat)


def dlzs_score_power(q_power: np.ndarray, khat: np.ndarray) -> np.ndarray:
    """`dlzs_score` from Q's LZ values ``q_lz_power(q)`` (so a caller can reuse them across K-hat tiles)."""
    scores = q_power @ np.swapaxes(khat.astype(np.float64), -1, -2)
    return to_fp16_saturating(scores)


def quantize4_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 4-bit quantisation per row: ``values ~= ints * step`` with ints in [-7, 7]."""
    values = np.asarray(values, dtype=np.float64)
    peak = np.max(np.abs(values), axis=-1, keepdims=True)
    step = np.where(peak > 0, peak / 7.0, 1.0)
    return np.clip(np.rint(values / step), -7, 7).astype(np.int64), step


def mul4_score(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Baseline predictor of prior accelerators: 4-bit multiply of Q and K, as fp16.

    Q and K are read as fp16 (the accelerator's 16-bit inputs), quantised to
    4 bits per row, multiplied as integers (exact) and scaled back.
    """
    q_int, q_step = quantize4_rows(to_fp16_saturating(np.asarray(q, np.float64)))
    k_int, k_step = quantize4_rows(to_fp16_saturating(np.asarray(k, np.float64)))
    products = q_int @ np.swapaxes(k_int, -1, -2)
    return to_fp16_saturating(products * q_step * np.swapaxes(k_step, -1, -2))


def exact_score(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Oracle predictor: the exact dot products (fp64)."""
    return np.asarray(q, np.float64) @ np.swapaxes(np.asarray(k, np.float64), -1, -2)


# ---------------------------------------------------------------------------
# SADS: sphere-search-aided distributed sorting
# ---------------------------------------------------------------------------


def keep_count(keep: float, tile: int) -> int:
    """Entries SADS keeps per KV tile: ``ceil(keep * Bc)``, at least one."""
    return max(1, min(tile, int(np.ceil(keep * tile - 1e-9))))


def tile_count(length: int, tile: int) -> int:
    """Number of KV tiles (Tc) covering ``length`` keys, the last one padded."""
    return -(-length // tile)


def sads_tile(scores: np.ndarray, valid: np.ndarray, count: int, radius: float) -> np.ndarray:
    """Top-``count`` of one KV tile per row, with the sphere clip.

    ``scores`` and ``valid`` are ``[rows, Bc]``. Entries that are not valid, or
    that lie more than ``radius`` below the row's valid maximum, are never
    selected. The result is ``[rows, count]`` tile-local indices in descending
    score order (ties: lower index first), padded with ``NO_INDEX``. Descending
    order gives SU-FA its top-1 and top-2 first, as the paper requires.
    """
    return sads_tile_sphere(scores, valid, count, radius)[0]


def sads_tile_sphere(scores: np.ndarray, valid: np.ndarray, count: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """`sads_tile` plus, per row, how many entries lie inside the sphere (what the sorters see)."""
    # The clipping unit holds the radius as an fp32 register.
    radius = float(np.float32(radius))
    scores = np.asarray(scores)
    fp16_scores = scores.dtype == np.float16
    if fp16_scores and radius == np.inf and np.all(valid) and _all_finite_fp16(scores):
        # Nothing is masked and nothing is clipped: every entry is in the sphere.
        rows, width = scores.shape
        order = _descending_order_fp16(scores, None, count)
        return order.astype(np.int32, copy=False), np.full(rows, width, np.int64)
    masked = np.where(valid, scores.astype(np.float64, copy=False), -np.inf)
    row_max = np.max(masked, axis=-1, keepdims=True)
    # A score of -inf is masked out (the baseline's whole-row top-k writes them); never select it.
    in_sphere = valid & (masked > -np.inf) & (masked >= row_max - radius)
    if fp16_scores:
        order = _descending_order_fp16(scores, in_sphere, count)
    else:
        # Stable sort on the negated score keeps the lower index first on ties.
        ranked = np.where(in_sphere, masked, -np.inf)
        order = np.argsort(-ranked, axis=-1, kind="stable")[:, :count]
    chosen_ok = _take_rows(in_sphere, order)
    return np.where(chosen_ok, order, NO_INDEX).astype(np.int32, copy=False), np.count_nonzero(in_sphere, axis=-1)


def _all_finite_fp16(values: np.ndarray) -> bool:
    """No inf or NaN among fp16 ``values`` (exponent field not all ones)."""
    bits = np.ascontiguousarray(values).view(np.int16)
    return not np.any((bits & np.int16(0x7C00)) == np.int16(0x7C00))


def _take_rows(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``take_along_axis(values, columns, axis=-1)`` for 2-D arrays, with less overhead."""
    values = np.ascontiguousarray(values)
    width = values.shape[-1]
    return values.reshape(-1)[columns + (np.arange(len(values)) * width)[:, None]]


_FP16_NEG_INF_ORDER = -32768 - int(np.array(-np.inf, np.float16).view(np.int16))
"""The order key `_descending_order_fp16` gives fp16 -inf (entries outside the sphere)."""


def _descending_order_fp16(scores: np.ndarray, in_sphere: np.ndarray | None, count: int) -> np.ndarray:
    """The first ``count`` columns of each row by descending score, ties by lower index.

    ``scores`` holds fp16 values; entries outside ``in_sphere`` (None: all are
    inside) rank as -inf.
    Each fp16 value maps to a 16-bit integer with the same order; packing it
    above the index gives unique integer keys, so sorting the keys (a fast
    SIMD sort of plain integers, no argsort) and keeping their low bits yields
    the same order as a stable argsort, several times faster.
    """
    width = scores.shape[-1]
    bits = np.ascontiguousarray(scores).view(np.int16).astype(np.int32)
    # Monotonic in the fp16 value: the magnitude, negated for a set sign bit (so -0 and +0 tie).
    sign = bits >> 15  # 0 or -1
    ordered = ((bits & 0x7FFF) ^ sign) - sign
    if in_sphere is not None:
        ordered = np.where(in_sphere, ordered, _FP16_NEG_INF_ORDER)
    if width <= 1 << 16:  # -ordered fits 16 signed bits: int32 keys
        keys, low = (-ordered << 16) + np.arange(width, dtype=np.int32), 0xFFFF
    else:
        keys, low = (-ordered.astype(np.int64) << 20) + np.arange(width), 0xFFFFF
    if count < width // 2:
        keys = np.partition(keys, count - 1, axis=-1)[:, :count]
    return np.sort(keys, axis=-1)[:, :count] & low


def topk_mask_rows(scores: np.ndarray, valid: np.ndarray, count: int) -> np.ndarray:
    """Whole-row top-k as prior accelerators do it: keep each row's ``count`` best valid scores.

    ``scores`` and ``valid`` are ``[rows, keys]``; the result has the same
    shape and dtype, with every entry that is not kept set to ``-inf`` (ties:
    lower index first, as in `sads_tile`). This is the separate-stage
    baseline's selection: it needs the whole row of A-hat at once.
    """
    scores = np.asarray(scores)
    kept = sads_tile(scores, valid, count, np.inf)
    rows = np.broadcast_to(np.arange(len(scores))[:, None], kept.shape)
    keep = np.zeros(scores.shape, dtype=bool)
    chosen = kept != NO_INDEX
    keep[rows[chosen], kept[chosen]] = True
    return np.where(keep, scores, np.array(-np.inf, scores.dtype))


# ---------------------------------------------------------------------------
# SU-FA: sorted-updating FlashAttention
# ---------------------------------------------------------------------------


@dataclass
class SufaPartial:
    """Per-row state of one KV tile after the SU-FA tile step (fp64).

    ``row_max`` is the tile's reference maximum (``-inf`` where the tile
    selected nothing), ``denominator`` is ``sum exp(s - row_max)`` and
    ``numerator`` is ``sum exp(s - row_max) * v``.
    """

    row_max: np.ndarray
    denominator: np.ndarray
    numerator: np.ndarray
    max_updates: int
    """Max-ensure events: a later score beat the running max (AP mode 1)."""


def sufa_tile_step(
    q: np.ndarray,
    k_window: np.ndarray,
    v_window: np.ndarray,
    slots: np.ndarray,
    bias: np.ndarray | None,
    scale: float,
) -> SufaPartial:
    """SU-FA on one KV tile; ``slots`` lists each row's selected keys, in order.

    ``q`` is ``[rows, d]``; ``k_window``/``v_window`` ``[W, d]``/``[W, dv]`` are
    the tile's key and value rows; ``slots`` ``[rows, m]`` holds window-local
    indices (``NO_INDEX`` for empty slots) and ``bias`` ``[rows, m]`` the
    additive mask of each slot (None: no mask). The first slot is the predicted maximum. Where
    a later score beats it, the AP unit raises the reference (max-ensure), so
    the tile's reference is the true maximum of its selected scores and the
    result is exact.

    The arithmetic is laid out as two dense products over the window (the
    SA-1 / SA-2 arrays), with unselected keys weighted zero, so the result
    depends only on the window and the selection, never on how many rows
    are processed together.
    """
    q64 = np.asarray(q, np.float64)
    # The scale is an fp32 register of the SU-FA unit (an instruction field).
    all_scores = q64 @ np.asarray(k_window, np.float64).T
    all_scores *= float(np.float32(scale))
    rows, width = all_scores.shape
    # One reduction shows the usual case, no empty slot (NO_INDEX is the only negative a valid slot list holds).
    any_empty = False
    if slots.size and slots.min() < 0:
        empty = slots == NO_INDEX
        any_empty = bool(empty.any())
    safe_slots = np.where(empty, 0, slots) if any_empty else slots
    flat_slots = safe_slots + (np.arange(rows) * width)[:, None]
    scores = all_scores.reshape(-1)[flat_slots]
    if bias is not None:
        scores = scores + bias
    if any_empty:
        scores = np.where(empty, -np.inf, scores)
    if scores.shape[-1]:
        row_max = scores.max(axis=-1)
        updates = _max_updates(scores, row_max)
    else:
        row_max, updates = np.full(rows, -np.inf), 0
    safe_max = np.where(np.isfinite(row_max), row_max, 0.0)
    # exp(s - max), in place: `scores` is this function's own array.
    weights = np.exp(np.subtract(scores, safe_max[:, None], out=scores), out=scores)
    # Scatter-add each slot's weight to its key (bincount adds duplicates in order).
    window_weights = np.bincount(flat_slots.ravel(), weights=weights.ravel(), minlength=all_scores.size)
    window_weights = window_weights.reshape(all_scores.shape)
    denominator = weights.sum(axis=-1)
    numerator = window_weights @ np.asarray(v_window, np.float64)
    return SufaPartial(row_max, denominator, numerator, updates)


def _max_updates(scores: np.ndarray, row_max: np.ndarray) -> int:
    """Max-ensure events of ``[rows, m]`` fp64 ``scores`` (``m >= 1``) whose row maxima are ``row_max``.

    The count of slots ``j >= 1`` with ``scores[:, j] > max(scores[:, :j])``,
    that is ``count(scores[:, 1:] > np.maximum.accumulate(scores, axis=-1)[:, :-1])``.

    Without NaN only the slots that beat the first one (the "candidates") can
    raise the running maximum, and the slots between them cannot (they are at
    most the first), so the count is that of the candidates alone. Those are
    few when the first slot is (near) the predicted maximum, as SADS orders
    them: their ranks packed above the row number make one plain running
    maximum over all candidates count every row's raises at once.
    """
    if not np.isnan(row_max).any():
        width = scores.shape[-1]
        # s[j] > s[0]; never true in column 0, so no column needs dropping.
        candidates = np.flatnonzero(scores > scores[:, :1])
        if not candidates.size:
            return 0
        if candidates.size * 16 <= scores.size + 1024:  # sorting them is cheaper than a full scan
            values = scores.reshape(-1)[candidates] + 0.0  # -0.0 -> +0.0: equal values, equal ranks
            rank = np.searchsorted(np.sort(values), values)  # ties share a rank
            keys = (candidates // width) * candidates.size + rank
            # A row's first candidate beats everything before it in its row, and every earlier row's key.
            return 1 + int(np.count_nonzero(keys[1:] > np.maximum.accumulate(keys)[:-1]))
    running = np.maximum.accumulate(scores, axis=-1)
    return int(np.count_nonzero(scores[:, 1:] > running[:, :-1]))


@dataclass
class SufaState:
    """The SU-FA unit's per-lane accumulators across KV tiles (fp64).

    ``row_max`` is the reference maximum so far (``-inf`` before any key),
    ``denominator`` and ``numerator`` are ``l`` and ``o`` relative to it.
    """

    row_max: np.ndarray
    denominator: np.ndarray
    numerator: np.ndarray

    @classmethod
    def empty(cls, rows: int, value_depth: int) -> SufaState:
        return cls(np.full(rows, -np.inf), np.zeros(rows), np.zeros((rows, value_depth)))


def sufa_accumulate(state: SufaState, partial: SufaPartial) -> SufaState:
    """Merge one tile's partial sums into the running state (Fig. 10b, lines 5-6).

    ``m = max(m, m_j)``, ``l = l e^(m_old - m) + l_j e^(m_j - m)``, likewise ``o``.
    Merging tile by tile equals the paper's merge of all tiles at the end, and
    needs accumulators for one tile only.
    """
    new_max = np.maximum(state.row_max, partial.row_max)
    safe_max = np.where(np.isfinite(new_max), new_max, 0.0)
    old_factor = np.where(np.isfinite(state.row_max), np.exp(state.row_max - safe_max), 0.0)
    tile_factor = np.where(np.isfinite(partial.row_max), np.exp(partial.row_max - safe_max), 0.0)
    # o_old * f_old + o_j * f_j, with the sum taken in place (one temporary fewer, the same roundings).
    numerator = old_factor[:, None] * state.numerator
    numerator += tile_factor[:, None] * partial.numerator
    return SufaState(new_max, old_factor * state.denominator + tile_factor * partial.denominator, numerator)


def sufa_finish(state: SufaState) -> np.ndarray:
    """Normalise, ``O = o / l`` (the DIV units), as fp32; empty rows give zeros."""
    safe_denominator = np.where(state.denominator > 0, state.denominator, 1.0)
    return (state.numerator / safe_denominator[:, None]).astype(np.float32)


# ---------------------------------------------------------------------------
# Whole-tensor pipelines built from the tile kernels
# ---------------------------------------------------------------------------


def pad_keys(length: int, tile: int) -> int:
    """Keys after padding ``length`` up to a whole number of tiles."""
    return tile_count(length, tile) * tile


def sads(scores: np.ndarray, valid: np.ndarray, tile: int, keep: float, radius: float) -> np.ndarray:
    """SADS over whole rows: ``[..., Sq, Skv]`` -> global key indices ``[..., Sq, Tc, m]``.

    Each KV tile of ``tile`` keys is one SADS sub-segment (n = Tc). Keys past
    ``Skv`` in the last tile are padding and never selected.
    """
    *lead, rows, length = scores.shape
    tiles = tile_count(length, tile)
    count = keep_count(keep, tile)
    padded = pad_keys(length, tile)
    flat_scores = np.zeros((int(np.prod(lead, dtype=np.int64)) * rows, padded))
    flat_valid = np.zeros(flat_scores.shape, dtype=bool)
    flat_scores[:, :length] = np.asarray(scores, np.float64).reshape(-1, length)
    flat_valid[:, :length] = np.broadcast_to(valid, scores.shape).reshape(-1, length)
    result = np.empty((flat_scores.shape[0], tiles, count), dtype=np.int32)
    for j in range(tiles):
        window = slice(j * tile, (j + 1) * tile)
        local = sads_tile(flat_scores[:, window], flat_valid[:, window], count, radius)
        result[:, j, :] = np.where(local == NO_INDEX, NO_INDEX, local + j * tile)
    return result.reshape(*lead, rows, tiles, count)


def expand_kv_heads(kv: np.ndarray, q_heads: int) -> np.ndarray:
    """Repeat KV heads for GQA/MQA: ``[B, Hkv, S, d]`` -> ``[B, Hq, S, d]``."""
    return np.repeat(kv, q_heads // kv.shape[1], axis=1)


def sufa(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    indices: np.ndarray,
    bias: np.ndarray,
    scale: float,
    tile: int | None = None,
) -> tuple[np.ndarray, int]:
    """SU-FA over all tiles: per-tile steps in SADS order, merged tile by tile.

    ``q`` ``[B, Hq, Sq, d]``, ``k``/``v`` ``[B, Hkv, Skv, *]``, ``indices``
    ``[B, Hq, Sq, Tc, m]`` (global key indices) and ``bias`` broadcastable to
    ``[B, Hq, Sq, Skv]`` (``-inf`` marks masked keys). ``tile`` is Bc, by
    default ``ceil(Skv / Tc)``; the last tile is zero-padded to Bc keys.
    Returns the fp32 output and the number of max-ensure events.
    """
    batch, heads, rows, _ = q.shape
    key_length = k.shape[2]
    tiles = indices.shape[-2]
    tile = tile or tile_count(key_length, tiles)
    padded = tiles * tile
    k_all = np.zeros((batch, k.shape[1], padded, k.shape[3]))
    v_all = np.zeros((batch, v.shape[1], padded, v.shape[3]))
    k_all[:, :, :key_length] = k
    v_all[:, :, :key_length] = v
    group = heads // k.shape[1]
    bias_all = np.broadcast_to(bias, (batch, heads, rows, key_length))
    out = np.empty((batch, heads, rows, v.shape[3]), np.float32)
    max_updates = 0
    for b in range(batch):
        for h in range(heads):
            state = SufaState.empty(rows, v.shape[3])
            for j in range(tiles):
                window = slice(j * tile, (j + 1) * tile)
                global_slots = indices[b, h, :, j, :].astype(np.int64)
                empty = global_slots == NO_INDEX
                safe = np.where(empty, 0, global_slots)
                slot_bias = np.where(empty, -np.inf, np.take_along_axis(bias_all[b, h], safe, axis=-1))
                local = np.where(empty, NO_INDEX, global_slots - j * tile)
                partial = sufa_tile_step(
                    q[b, h], k_all[b, h // group, window], v_all[b, h // group, window], local, slot_bias, scale
                )
                state = sufa_accumulate(state, partial)
                max_updates += partial.max_updates
            out[b, h] = sufa_finish(state)
    return out, max_updates


def mask_to_bias(
    mask: np.ndarray | None,
    causal: bool,
    query_length: int,
    key_length: int,
) -> np.ndarray:
    """Additive fp64 bias ``[..., Sq, Skv]`` from an optional mask and the causal flag.

    A boolean mask keeps ``True`` entries; a float mask is added as is. Causal
    masking is upper-left aligned (key ``j`` is visible to query ``i`` when
    ``j <= i``), as in ONNX ``Attention`` and torch SDPA.
    """
    bias = np.zeros((query_length, key_length))
    if mask is not None:
        mask = np.asarray(mask)
        bias = np.where(mask, 0.0, -np.inf) if mask.dtype == np.bool_ else mask.astype(np.float64) + bias
    if causal:
        upper = np.triu(np.ones((query_length, key_length), dtype=bool), k=1)
        bias = np.where(upper, -np.inf, bias)
    return bias


def predict_scores(predictor: str, q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """A-hat for a predictor kind, with KV heads already matched to Q heads."""
    if predictor == "dlzs":
        return dlzs_score(q, to_fp16_saturating(np.asarray(k, np.float64)))
    if predictor == "mul4":
        return mul4_score(q, k)
    if predictor == "exact":
        return exact_score(q, k)
    raise ValueError(f"unknown predictor '{predictor}' (expected dlzs, mul4 or exact)")


def dense_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray, scale: float) -> np.ndarray:
    """Exact softmax attention in fp64, returned as fp32; fully masked rows give zeros."""
    heads = q.shape[1]
    k_all = expand_kv_heads(np.asarray(k, np.float64), heads)
    v_all = expand_kv_heads(np.asarray(v, np.float64), heads)
    scores = np.asarray(q, np.float64) @ np.swapaxes(k_all, -1, -2) * scale + bias
    row_max = np.max(scores, axis=-1, keepdims=True)
    weights = np.exp(scores - np.where(np.isfinite(row_max), row_max, 0.0))
    total = weights.sum(axis=-1, keepdims=True)
    return (weights @ v_all / np.where(total > 0, total, 1.0)).astype(np.float32)


def sofa_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    bias: np.ndarray,
    scale: float,
    keep: float,
    tile: int,
    radius: float,
    predictor: str = "dlzs",
) -> np.ndarray:
    """The full SOFA pipeline: predict, select per tile (SADS), SU-FA.

    ``radius`` is in logit units; A-hat is in unscaled dot-product units, so
    SADS clips at ``radius / scale``.
    """
    heads = q.shape[1]
    scores = predict_scores(predictor, q, expand_kv_heads(np.asarray(k), heads))
    valid = np.isfinite(np.broadcast_to(bias, scores.shape))
    indices = sads(scores, valid, tile, keep, radius / scale)
    out, _ = sufa(q, k, v, indices, bias, scale, tile)
    return out
