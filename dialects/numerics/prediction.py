"""Score prediction (A-hat): DLZS, add-only on LZ codes, and the baseline's 4-bit multiply.

DLZS phase 1 computes K-hat = X . LZ(W_k) from 8-bit tokens, phase 2
A-hat = LZ(Q) . K-hat^T; every product is an exact shift, and the sums are
exact in int64 or fp64.
"""

from __future__ import annotations

import numpy as np

from dialects.numerics.formats import (
    FP16_MAX,
    LZ_ZERO_CODE,
    floor_log2,
    ieee_arithmetic,
    q_lz_power,
    quantize4_rows,
    quantize_token_rows,
    to_fp16_saturating,
)


def dlzs_multiply(x: int, y: int) -> int:
    """The paper's scalar DLZS product: ``x`` shifted by ``y``'s leading-one exponent.

    ``dlzs_multiply(24, 6) == 96`` (Fig. 7c). Only ``y`` is converted.
    """
    if x == 0 or y == 0:
        return 0
    sign = -1 if (x < 0) != (y < 0) else 1
    return sign * (abs(x) << int(floor_log2(np.array([y]))[0]))


def dlzs_key(x: np.ndarray, codes: np.ndarray, base: int) -> np.ndarray:
    """DLZS phase 1: K-hat = X . LZ(W_k), add-only, as fp16.

    ``x`` is ``[..., S, H]`` real values; they are quantised here to 8-bit
    rows (what the host writes to DRAM) and passed to `dlzs_key_quantized`.
    """
    x_int, row_exponent = quantize_token_rows(x)
    return dlzs_key_quantized(x_int, row_exponent, codes, base)


def dlzs_key_heads(x: np.ndarray, codes: np.ndarray, base: int, kv_heads: int) -> np.ndarray:
    """`dlzs_key` split into KV heads, as `sofa.dlzs_key` returns it: X ``[B, S, H]`` -> K-hat ``[B, Hkv, S, d]``.

    ``codes`` is ``[H, Hkv * d]`` (`wk_to_lz` of W_k with one column per
    output feature, heads side by side).
    """
    khat = dlzs_key(x, codes, base)
    batch, length, columns = khat.shape
    if columns % kv_heads:
        raise ValueError(f"W_k's {columns} columns do not split into {kv_heads} heads")
    khat = khat.reshape(batch, length, kv_heads, columns // kv_heads).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(khat)


@ieee_arithmetic
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


def dlzs_score(q: np.ndarray, khat: np.ndarray) -> np.ndarray:
    """DLZS phase 2: A-hat = LZ(Q) . K-hat^T, as fp16 (unscaled dot-product units).

    ``q`` is ``[..., Sq, d]``, ``khat`` is ``[..., Skv, d]``. Q becomes a signed
    power of two (its 5-bit LZ code), so every product is an exact shift of
    K-hat, and fp64 sums of them are exact.
    """
    return dlzs_score_power(q_lz_power(q), khat)


@ieee_arithmetic
def dlzs_score_power(q_power: np.ndarray, khat: np.ndarray) -> np.ndarray:
    """`dlzs_score` from Q's LZ values ``q_lz_power(q)`` (so a caller can reuse them across K-hat tiles)."""
    scores = q_power @ np.swapaxes(khat.astype(np.float64), -1, -2)
    return ahat_fp16(scores)


def ahat_fp16(scores: np.ndarray) -> np.ndarray:
    """Predicted scores as fp16 A-hat: saturated, and -inf as the lowest finite value, -65504.

    SADS never selects -inf, the baseline's top-k mark for "not kept"; a key
    predicted -inf by arithmetic (an infinity in Q or K) must still reach
    SU-FA where the tile has room (at keep 1.0 always), so that a row whose
    scores are all -inf is NaN, as in onnxruntime. It ranks last.
    """
    if scores.size and not scores.min() > -np.inf:  # one reduction: -inf (or NaN, which hides it) present
        scores = np.where(np.isneginf(scores), -FP16_MAX, scores)
    return to_fp16_saturating(scores)


@ieee_arithmetic
def mul4_score(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Baseline predictor of prior accelerators: 4-bit multiply of Q and K, as fp16.

    Q and K are read as fp16 (the accelerator's 16-bit inputs), quantised to
    4 bits per row, multiplied as integers (exact) and scaled back.
    """
    q_int, q_step = quantize4_rows(to_fp16_saturating(np.asarray(q, np.float64)))
    k_int, k_step = quantize4_rows(to_fp16_saturating(np.asarray(k, np.float64)))
    products = q_int @ np.swapaxes(k_int, -1, -2)
    return ahat_fp16(products * q_step * np.swapaxes(k_step, -1, -2))


@ieee_arithmetic
def exact_score(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Oracle predictor: the exact dot products (fp64); -inf as fp64's lowest finite value (see `ahat_fp16`)."""
    scores = np.asarray(q, np.float64) @ np.swapaxes(np.asarray(k, np.float64), -1, -2)
    return np.where(np.isneginf(scores), np.finfo(np.float64).min, scores)
