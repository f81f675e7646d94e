"""SADS: sphere-search-aided distributed sorting, one KV tile at a time, and the baseline's whole-row top-k."""

from __future__ import annotations

import numpy as np

from dialects.numerics.formats import NO_INDEX, ieee_arithmetic


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

    Non-finite scores: NaN ranks as +inf and is never clipped (the sphere's
    reference is the largest score that is a number), so a key whose score is
    NaN or +inf is always kept; a score of -inf is never selected (it carries
    no weight in softmax). See docs/isa.md, "Non-finite values".
    """
    return sads_tile_sphere(scores, valid, count, radius)[0]


@ieee_arithmetic
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
    nan = np.isnan(masked)
    any_nan = bool(nan.any())
    # The sphere's reference is the largest valid score that is a number.
    row_max = np.max(np.where(nan, -np.inf, masked) if any_nan else masked, axis=-1, keepdims=True)
    # A score of -inf is masked out (the baseline's whole-row top-k writes them); never select it.
    # "Not below the bound" rather than "at least the bound": NaN lies inside the sphere, and so
    # does everything when the bound is NaN (inf - inf).
    in_sphere = valid & (masked != -np.inf) & ~(masked < row_max - radius)
    if fp16_scores:
        order = _descending_order_fp16(scores, in_sphere, count)
    else:
        # Stable sort on the negated score keeps the lower index first on ties; NaN ranks as +inf.
        ranked = np.where(in_sphere, np.where(nan, np.inf, masked) if any_nan else masked, -np.inf)
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


_FP16_INF_BITS = int(np.array(np.inf, np.float16).view(np.int16))

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
    magnitude = bits & 0x7FFF
    ordered = (magnitude ^ sign) - sign
    if in_sphere is not None:  # (None: all finite) NaN, a magnitude past inf's, ranks as +inf whatever its sign
        ordered = np.where(magnitude > _FP16_INF_BITS, _FP16_INF_BITS, ordered)
        ordered = np.where(in_sphere, ordered, _FP16_NEG_INF_ORDER)
    if width <= 1 << 16:  # -ordered fits 16 signed bits: int32 keys
        keys, low = (-ordered << 16) + np.arange(width, dtype=np.int32), 0xFFFF
    else:
        keys, low = (-ordered.astype(np.int64) << 20) + np.arange(width), 0xFFFFF
    if count < width // 2:
        keys = np.partition(keys, count - 1, axis=-1)[:, :count]
    return np.sort(keys, axis=-1)[:, :count] & low


@ieee_arithmetic
def soft_cap(scores: np.ndarray, softcap: float) -> np.ndarray:
    """``c * tanh(s / c)`` for ``softcap`` c > 0 (an fp32 register of the unit), ``scores`` as they are for 0.

    ONNX `Attention` order: scale, softcap, then the mask's bias, then softmax."""
    cap = float(np.float32(softcap))
    if cap == 0:
        return scores
    return cap * np.tanh(np.asarray(scores, np.float64) / cap)


@ieee_arithmetic
def biased_ranking(scores: np.ndarray, bias: np.ndarray, scale: float, softcap: float = 0.0) -> np.ndarray:
    """What `sads.bias` ranks: predicted logits ``softcap(scale * A-hat) + bias`` (fp64 of fp32 operands).

    ``scores`` is A-hat ``[rows, keys]`` (fp16, unscaled dot-product units) and ``bias`` the fp32 bias tile
    ``[rows, keys]``; -inf entries of the bias are masked keys (they rank last and are never selected).
    The scale is the unit's fp32 register; the product of an fp16 and an fp32 value is exact in fp64, so
    without a cap and a bias the order is A-hat's own.
    """
    logits = np.asarray(scores, np.float64) * float(np.float32(scale))
    return soft_cap(logits, softcap) + np.asarray(bias, np.float64)


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
