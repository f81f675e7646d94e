"""Number formats of the SOFA datapath: LZ codes of W_k and Q, 8-bit token rows, fp16, 4-bit rows.

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
* The baseline predictor quantises Q and K to symmetric 4-bit rows.
"""

from __future__ import annotations

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


def floor_log2(values: np.ndarray) -> np.ndarray:
    """Exponent of the leading one of ``|values|`` (undefined for zero)."""
    _, exponent = np.frexp(np.abs(values).astype(np.float64))
    return (exponent - 1).astype(np.int64)


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


def to_fp16_saturating(values: np.ndarray) -> np.ndarray:
    """Round to fp16, clamping to the finite range instead of overflowing."""
    values = np.asarray(values)
    # Two fast reductions usually show that nothing needs clamping (NaN fails both tests and clamps).
    if values.size and values.dtype.kind == "f" and values.min() >= -FP16_MAX and values.max() <= FP16_MAX:
        return values.astype(np.float16)
    return np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16)


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


def quantize4_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 4-bit quantisation per row: ``values ~= ints * step`` with ints in [-7, 7]."""
    values = np.asarray(values, dtype=np.float64)
    peak = np.max(np.abs(values), axis=-1, keepdims=True)
    step = np.where(peak > 0, peak / 7.0, 1.0)
    return np.clip(np.rint(values / step), -7, 7).astype(np.int64), step
