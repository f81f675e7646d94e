"""Number formats of the SOFA datapath: LZ codes of W_k and Q, 8-bit token rows, fp16, 4-bit rows.

* W_k is converted offline to 4-bit sign+exponent ("LZ") codes: bit 3 is the
  sign, bits 0-2 an exponent ``e`` in 0..7, and the value is
  ``(-1)^s * 2^(base + e)``. Code ``0b1000`` means zero. ``base`` is one
  exponent per weight tensor, ``floor(log2(max|W|)) - 7``. Rounding is
  floor (truncation), matching the paper's Fig. 7c (24 x 6 -> 24 << 2 = 96).
* X tokens are 8-bit integers in block floating point: each token row shares
  one power-of-two exponent chosen so that ``max|x_row| <= 127 * 2^e``.
* K-hat and A-hat are fp16 (16-bit) values; finite values saturate at the
  fp16 range, NaN and infinities are kept (see docs/numerics.md).
* Q, K, V and O are stored as fp16 (`DATAPATH`, the paper's 16-bit
  datapath): the host rounds them with `to_datapath`, and the SU-FA PEs
  multiply fp16 operands. Accumulation is wider (see `sufa_tiles`); only
  on-chip K/V generation keeps fp32 rows (`ACCUMULATOR`) until `kvround`.
* Q is fp16; its 5-bit LZ code is its sign plus its exponent field, so the
  DLZS product ``q * k`` becomes ``sign(q) * ldexp(k, floor(log2|q|))``.
* The baseline predictor quantises Q and K to symmetric 4-bit rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import numpy as np

P = ParamSpec("P")
R = TypeVar("R")


def ieee_arithmetic(kernel: Callable[P, R]) -> Callable[P, R]:
    """Run a golden kernel with numpy's floating-point warnings off.

    Non-finite values are part of the semantics (NaN and infinities propagate
    as in IEEE arithmetic; docs/isa.md, "Non-finite values"), so ``inf - inf``
    or ``0 * inf`` in a kernel is an expected NaN, never a warning that names
    our source lines.
    """

    @functools.wraps(kernel)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with np.errstate(all="ignore"):
            return kernel(*args, **kwargs)

    return run


LZ_ZERO_CODE = 0b1000
"""The 4-bit W_k code that stands for zero ("negative" sign, exponent 0)."""

LZ_EXPONENT_LEVELS = 8
"""Number of exponent levels a 4-bit W_k code can express (3 bits)."""

X_INT_MAX = 127
"""Largest magnitude of an 8-bit X token after block-floating-point scaling."""

FP16_MAX = float(np.finfo(np.float16).max)

NO_INDEX = -1
"""Marks an unused slot in a SADS index list."""


@ieee_arithmetic
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


@ieee_arithmetic
def quantize_token_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantise X to 8-bit block floating point, one exponent per row.

    Returns ``(x_int8, row_exponent)`` with ``x ~= x_int8 * 2^row_exponent``.
    """
    x = np.asarray(x, dtype=np.float64)
    peak = np.max(np.abs(x), axis=-1, keepdims=True)
    # 8 bits hold no NaN or inf: such a row keeps exponent 0, its NaN become 0 and infinities saturate.
    scaled = np.isfinite(peak) & (peak > 0)
    safe_peak = np.where(scaled, peak, 1.0)
    exponent = np.where(scaled, np.ceil(np.log2(safe_peak / X_INT_MAX)), 0).astype(np.int64)
    x_int = np.clip(np.rint(np.nan_to_num(np.ldexp(x, -exponent), nan=0.0)), -X_INT_MAX, X_INT_MAX)
    return x_int.astype(np.int8), exponent[..., 0]


@ieee_arithmetic
def to_fp16_saturating(values: np.ndarray) -> np.ndarray:
    """Round to fp16, clamping finite values to the finite range instead of overflowing.

    NaN stays NaN and an infinity stays that infinity (IEEE semantics): only
    finite values past fp16's range saturate at ``+-FP16_MAX``.
    """
    values = np.asarray(values)
    # Two fast reductions usually show that nothing needs clamping (NaN fails both tests).
    if values.size and values.dtype.kind == "f" and values.min() >= -FP16_MAX and values.max() <= FP16_MAX:
        return values.astype(np.float16)
    clamped = np.clip(values, -FP16_MAX, FP16_MAX)  # NaN passes through np.clip
    return np.where(np.isinf(values), values, clamped).astype(np.float16)


FP32_OVERFLOW = 2.0**128 - 2.0**103
"""The smallest magnitude that rounds to infinity in fp32 (half an ulp past fp32's largest finite value)."""


def fp32_overflow(values: np.ndarray) -> np.ndarray:
    """fp64 ``values`` with every magnitude past fp32's range made that signed infinity, in place.

    A score that onnxruntime's fp32 arithmetic overflows is then infinite here
    too, while every finite fp32 result keeps its exact fp64 value.
    """
    # Two fast reductions usually show that nothing overflows (NaN fails both tests: the general path).
    if not values.size or (values.max() < FP32_OVERFLOW and values.min() > -FP32_OVERFLOW):
        return values
    overflow = np.abs(values) >= FP32_OVERFLOW
    values[overflow] = np.copysign(np.inf, values[overflow])
    return values


@dataclass(frozen=True)
class Element:
    """A storage element of the datapath: its ISA dtype name, its width in bytes and its numpy type."""

    name: str
    nbytes: int
    numpy: type[np.floating]


DATAPATH = Element("f16", 2, np.float16)
"""Q, K, V and O in DRAM and SRAM and the operands of the SU-FA PEs: the paper's 16-bit datapath."""

ACCUMULATOR = Element("f32", 4, np.float32)
"""On-chip K/V generation: its fp32 token and weight rows and the K/V accumulators across hidden chunks."""


def to_datapath(values: np.ndarray) -> np.ndarray:
    """Values as the datapath stores them: fp16, saturating finite values, NaN and inf kept; fp16 input as is.

    Rounding is direct from the given type (a bf16 or fp32 tensor rounds once to fp16).
    """
    values = np.asarray(values)
    return values if values.dtype == DATAPATH.numpy else to_fp16_saturating(values)


def _q_fp16(q: np.ndarray) -> np.ndarray:
    """Q as the fp16 the LZEs read (saturated as the host stages it; fp16 input as is)."""
    return to_datapath(q)


@ieee_arithmetic
def q_lz_exponent(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 5-bit LZ form of fp16 Q: (sign as -1/0/+1, leading-one exponent); an exponent of 0 for zero, inf, NaN."""
    q16 = _q_fp16(q).astype(np.float64)
    sign = np.sign(q16).astype(np.int64)
    normal = np.isfinite(q16) & (q16 != 0)
    exponent = np.where(normal, floor_log2(np.where(normal, q16, 1.0)), 0)
    return sign, exponent


@ieee_arithmetic
def q_lz_power(q: np.ndarray) -> np.ndarray:
    """``sign(q) * 2^floor(log2|q|)`` of fp16 Q, as fp64 (``+0.0`` for zero; inf and NaN stay as they are).

    Equal to the value of `q_lz_exponent` for finite Q. For finite Q it is the
    fp16 value with its mantissa cleared, taken in fp32 (where fp16 subnormals
    are normal): a few integer passes instead of `frexp`.
    """
    q16 = _q_fp16(q)
    q32 = q16.astype(np.float32)
    bits = q32.view(np.int32) & np.int32(-(1 << 23))  # sign and exponent fields
    if (bits & np.int32(0x7F800000) == np.int32(0x7F800000)).any():  # inf or NaN: the general path
        sign, exponent = q_lz_exponent(q16)
        q64 = q16.astype(np.float64)
        return np.where(np.isfinite(q64), sign * np.ldexp(1.0, exponent), q64)
    bits[bits == np.int32(-(1 << 31))] = 0  # -0.0 -> +0.0, as sign(0) * 1 gives
    return bits.view(np.float32).astype(np.float64)


@ieee_arithmetic
def quantize4_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 4-bit quantisation per row: ``values ~= ints * step`` with ints in [-7, 7]."""
    values = np.asarray(values, dtype=np.float64)
    peak = np.max(np.abs(values), axis=-1, keepdims=True)
    step = np.where(peak > 0, peak / 7.0, 1.0)
    return np.clip(np.rint(values / step), -7, 7).astype(np.int64), step
