"""The predictor's cache: K's rows as packed 4-bit LZ codes, kept beside the KV cache (sparse decode, issue 18).

Sparse decode predicts every cached key's score to select the few it fetches,
so prediction must read much less than K. Each K row is stored as one int8
row exponent ``base`` and ``d`` 4-bit codes, two a byte (element ``2i`` in the
low nibble): bit 3 the sign, bits 2..0 an exponent ``e``, the value
``±2^(base + e)``, code ``0b1000`` zero (W_k's LZ format, `formats.wk_to_lz`,
with a per-row base so the cache can grow row by row). ``base`` puts the row's
largest magnitude on ``e = 7``; smaller values below ``2^base`` become zero.
A row is ``1 + ceil(d / 2)`` bytes: 65 for d = 128, against 256 for the fp16
K row, so prediction reads about a quarter of K's bytes.

`decode_key_codes` is what the `dma.lz4` instruction writes to SRAM: the codes
as fp16 K-hat, which `dlzs.score` then multiplies by Q's LZ codes as usual.
NaN and infinities in K are coded as the row's largest magnitude (NaN as +):
such a key ranks high in prediction and SU-FA's exact step decides.
"""

from __future__ import annotations

import numpy as np

from dialects.numerics.formats import (
    LZ_EXPONENT_LEVELS,
    LZ_ZERO_CODE,
    floor_log2,
    to_fp16_saturating,
)


def key_code_row_bytes(depth: int) -> int:
    """Bytes of one coded K row: the row exponent, then two codes a byte."""
    return 1 + -(-depth // 2)


def encode_key_codes(k: np.ndarray) -> np.ndarray:
    """K rows ``[..., rows, d]`` as coded rows ``[..., rows, key_code_row_bytes(d)]`` (uint8)."""
    k64 = np.asarray(k, np.float64)
    *lead, depth = k64.shape
    rows = k64.reshape(-1, depth)
    finite = np.isfinite(rows)
    magnitude = np.where(finite, np.abs(rows), 0.0)
    peak = magnitude.max(axis=1, initial=0.0)
    top = floor_log2(np.where(peak > 0, peak, 1.0))
    base = np.clip(np.where(peak > 0, top - (LZ_EXPONENT_LEVELS - 1), 0), -128, 127)
    exponent = floor_log2(np.where(magnitude > 0, magnitude, 1.0)) - base[:, None]
    exponent = np.where(finite, exponent, LZ_EXPONENT_LEVELS - 1)
    nonzero = (magnitude > 0) | ~finite
    coded = nonzero & (exponent >= 0)
    sign = np.signbit(rows) & ~np.isnan(rows)
    codes = np.where(coded, (sign.astype(np.int64) << 3) | np.clip(exponent, 0, LZ_EXPONENT_LEVELS - 1), LZ_ZERO_CODE)
    if depth % 2:
        codes = np.concatenate([codes, np.full((len(codes), 1), LZ_ZERO_CODE)], axis=1)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    out = np.concatenate([base.astype(np.int8).view(np.uint8)[:, None], packed], axis=1)
    return out.reshape(*lead, key_code_row_bytes(depth))


def decode_key_codes(coded: np.ndarray, depth: int) -> np.ndarray:
    """Coded rows ``[rows, key_code_row_bytes(depth)]`` (uint8) as fp16 K-hat ``[rows, depth]``."""
    coded = np.asarray(coded, np.uint8).reshape(-1, key_code_row_bytes(depth))
    base = coded[:, 0].view(np.int8).astype(np.int64)
    nibbles = np.empty((len(coded), 2 * (coded.shape[1] - 1)), np.int64)
    nibbles[:, 0::2] = coded[:, 1:] & 0x0F
    nibbles[:, 1::2] = coded[:, 1:] >> 4
    codes = nibbles[:, :depth]
    magnitude = np.ldexp(1.0, (codes & 0b111) + base[:, None])
    values = np.where(codes == LZ_ZERO_CODE, 0.0, np.where(codes & 0b1000, -magnitude, magnitude))
    return to_fp16_saturating(values)
