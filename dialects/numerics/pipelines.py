"""Whole-tensor pipelines built from the tile kernels: SADS and SU-FA over all tiles, dense and SOFA attention."""

from __future__ import annotations

import numpy as np

from dialects.numerics.formats import NO_INDEX, fp32_overflow, ieee_arithmetic, to_datapath, to_fp16_saturating
from dialects.numerics.prediction import dlzs_score, exact_score, mul4_score
from dialects.numerics.sads_budget import budget_slots, far_count, last_valid_keys, sads_budget_tile, tiles_to_last
from dialects.numerics.sads_tiles import biased_ranking, keep_count, sads_tile, soft_cap, tile_count
from dialects.numerics.sufa_tiles import SufaState, sufa_accumulate, sufa_finish, sufa_tile_step


def pad_keys(length: int, tile: int) -> int:
    """Keys after padding ``length`` up to a whole number of tiles."""
    return tile_count(length, tile) * tile


def sads(scores: np.ndarray, valid: np.ndarray, tile: int, keep: float, radius: float, far: float = 1.0) -> np.ndarray:
    """SADS over whole rows: ``[..., Sq, Skv]`` -> global key indices ``[..., Sq, Tc, slots]``.

    Each KV tile of ``tile`` keys is one SADS sub-segment (n = Tc). Keys past
    ``Skv`` in the last tile are padding and never selected. ``far`` below 1
    selects budgeted SADS (`sads_budget`: far tiles keep ``ceil(far * m)``, the
    rest of each row's budget moves to its last tiles); ``slots`` is
    `budget_slots` (``m`` for plain SADS).
    """
    *lead, rows, length = scores.shape
    tiles = tile_count(length, tile)
    count = keep_count(keep, tile)
    slots = budget_slots(far, keep, tile)
    padded = pad_keys(length, tile)
    flat_scores = np.zeros((int(np.prod(lead, dtype=np.int64)) * rows, padded))
    flat_valid = np.zeros(flat_scores.shape, dtype=bool)
    flat_scores[:, :length] = np.asarray(scores, np.float64).reshape(-1, length)
    flat_valid[:, :length] = np.broadcast_to(valid, scores.shape).reshape(-1, length)
    result = np.empty((flat_scores.shape[0], tiles, slots), dtype=np.int32)
    budgeted = slots != count
    last_valid = last_valid_keys(flat_valid)
    budget = np.zeros(len(flat_scores), np.int64)
    for j in range(tiles):
        window = slice(j * tile, (j + 1) * tile)
        if budgeted:
            distance = tiles_to_last(last_valid, j * tile, tile)
            local, budget, _ = sads_budget_tile(
                flat_scores[:, window], flat_valid[:, window], budget, distance, count,
                far_count(far, keep, tile), slots, radius,
            )  # fmt: skip
        else:
            local = sads_tile(flat_scores[:, window], flat_valid[:, window], count, radius)
        result[:, j, :] = np.where(local == NO_INDEX, NO_INDEX, local + j * tile)
    return result.reshape(*lead, rows, tiles, slots)


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
    softcap: float = 0.0,
) -> tuple[np.ndarray, int]:
    """SU-FA over all tiles: per-tile steps in SADS order, merged tile by tile.

    ``q`` ``[B, Hq, Sq, d]``, ``k``/``v`` ``[B, Hkv, Skv, *]``, ``indices``
    ``[B, Hq, Sq, Tc, m]`` (global key indices) and ``bias`` broadcastable to
    ``[B, Hq, Sq, Skv]`` (``-inf`` marks masked keys). ``tile`` is Bc, by
    default ``ceil(Skv / Tc)``; the last tile is zero-padded to Bc keys.
    ``softcap`` c > 0 caps the scaled scores before the bias (`soft_cap`). Q, K and V are rounded
    to the datapath's fp16 first, as the host stages them. Returns the output (fp16 values, widened
    to fp32) and the number of max-ensure events.
    """
    q, k, v = to_datapath(q), to_datapath(k), to_datapath(v)
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
                    q[b, h],
                    k_all[b, h // group, window],
                    v_all[b, h // group, window],
                    local,
                    slot_bias,
                    scale,
                    softcap,
                )
                state = sufa_accumulate(state, partial)
                max_updates += partial.max_updates
            out[b, h] = sufa_finish(state)
    return out, max_updates


@ieee_arithmetic
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


def biased_sads_inputs(
    scores: np.ndarray, bias: np.ndarray, scale: float, softcap: float
) -> tuple[np.ndarray, np.ndarray]:
    """What SADS ranks under a bias (`sads.bias`): ``softcap(scale * A-hat) + bias`` and the valid keys (bias
    above -inf), for A-hat ``[..., Sq, Skv]`` and a bias broadcastable to it. The bias is held in fp32 (the
    bias tiles' format)."""
    bias = np.broadcast_to(np.asarray(bias, np.float32).astype(np.float64), scores.shape)
    return biased_ranking(scores, bias, scale, softcap), ~np.isneginf(bias)


def has_bias(bias: np.ndarray) -> bool:
    """Whether an additive bias holds entries other than 0 and -inf (a bias, not only a mask)."""
    values = np.asarray(bias)
    return bool(np.any((values != 0) & ~np.isneginf(values)))


@ieee_arithmetic
def dense_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray, scale: float, softcap: float = 0.0
) -> np.ndarray:
    """Exact softmax attention in fp64, returned as fp32; fully masked rows give zeros.

    The reference SOFA is measured against: no datapath rounding. ``softcap`` c > 0 caps the scaled
    scores as ``c * tanh(s / c)`` before the bias, in ONNX's order.

    Non-finite values as in SU-FA: scores past fp32's range are infinite, and a
    row whose largest score is NaN or +inf, or whose unmasked scores are all
    -inf, is NaN.
    """
    heads = q.shape[1]
    k_all = expand_kv_heads(np.asarray(k, np.float64), heads)
    v_all = expand_kv_heads(np.asarray(v, np.float64), heads)
    scores = soft_cap(fp32_overflow(np.asarray(q, np.float64) @ np.swapaxes(k_all, -1, -2)) * scale, softcap) + bias
    row_max = np.max(scores, axis=-1, keepdims=True)
    unmasked = np.broadcast_to(~np.isneginf(bias), scores.shape).any(axis=-1, keepdims=True)
    poisoned = np.isnan(row_max) | (row_max == np.inf) | (unmasked & (row_max == -np.inf))
    weights = np.where(poisoned, np.nan, np.exp(scores - np.where(np.isfinite(row_max), row_max, 0.0)))
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
    far: float = 1.0,
    softcap: float = 0.0,
) -> np.ndarray:
    """The full SOFA pipeline: predict, select per tile (SADS; budgeted when ``far`` < 1), SU-FA.

    ``radius`` is in logit units; A-hat is in unscaled dot-product units, so
    SADS clips at ``radius / scale``. Where ``bias`` holds a bias (entries other than 0 and -inf), SADS
    ranks ``softcap(scale * A-hat) + bias`` and clips at ``radius`` (`biased_sads_inputs`); the cap
    alone is monotonic and leaves the ranking as it is.
    """
    heads = q.shape[1]
    scores = predict_scores(predictor, q, expand_kv_heads(np.asarray(k), heads))
    if has_bias(bias):
        ranked, valid = biased_sads_inputs(scores, bias, scale, softcap)
        indices = sads(ranked, valid, tile, keep, radius, far)
    else:
        valid = np.isfinite(np.broadcast_to(bias, scores.shape))
        indices = sads(scores, valid, tile, keep, radius / scale, far)
    out, _ = sufa(q, k, v, indices, bias, scale, tile, softcap)
    return out
