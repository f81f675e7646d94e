"""Hand-computed checks of the golden SOFA kernels (dialects/numerics/)."""

import numpy as np
import pytest

from dialects import numerics
from tests.fp16_tolerance import assert_fp16_close, fp16


def reference_attention(q, k, v, scale, mask=None):
    """Independent softmax attention in float64 (no shared code with numerics)."""
    group = q.shape[1] // k.shape[1]
    k = np.repeat(k, group, axis=1).astype(np.float64)
    v = np.repeat(v, group, axis=1).astype(np.float64)
    logits = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k) * scale
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.einsum("bhqk,bhkd->bhqd", weights, v)


def test_paper_dlzs_example_scalar():
    # Fig. 7c: 24 x 6 -> 24 << floor(log2 6) = 24 << 2 = 96.
    assert numerics.dlzs_multiply(24, 6) == 96
    assert numerics.dlzs_multiply(-24, 6) == -96
    assert numerics.dlzs_multiply(24, -6) == -96
    assert numerics.dlzs_multiply(24, 0) == 0


def test_paper_dlzs_example_through_key_prediction():
    # One token [24], one weight [[6]]: K-hat must be 96, not the exact 144.
    codes, base = numerics.wk_to_lz(np.array([[6.0]]))
    assert base == -5  # floor(log2 6) - 7
    assert codes[0, 0] == 7  # 6 -> 2^2 = 2^(base + 7)
    khat = numerics.dlzs_key(np.array([[24.0]]), codes, base)
    assert khat.dtype == np.float16
    assert float(khat[0, 0]) == 96.0


def test_paper_dlzs_example_through_score_prediction():
    # Q = 6 goes through the LZE (-> 2^2); K-hat = 24 is shifted by 2.
    scores = numerics.dlzs_score(np.array([[6.0]]), np.array([[24.0]], dtype=np.float16))
    assert float(scores[0, 0]) == 96.0


def test_wk_to_lz_codes_by_hand():
    weights = np.array([[1.0, -0.5, 0.3, 0.001, 0.0, -1.0]])
    codes, base = numerics.wk_to_lz(weights)
    assert base == -7
    # 1.0 -> e 7; -0.5 -> sign | e 6; 0.3 -> floor(log2 .3) = -2 -> e 5;
    # 0.001 is below 2^base -> zero; 0 -> zero; -1.0 -> sign | e 7.
    assert codes.tolist() == [[7, 0b1110, 5, 0b1000, 0b1000, 0b1111]]
    decoded = numerics.lz_decode(codes, base)
    assert decoded.tolist() == [[1.0, -0.5, 0.25, 0.0, 0.0, -1.0]]


def test_token_rows_are_block_floating_point():
    x = np.array([[24.0, -3.0, 0.5], [0.0, 0.0, 0.0]])
    x_int, exponent = numerics.quantize_token_rows(x)
    assert exponent.tolist() == [-2, 0]  # 24 * 2^2 = 96 <= 127
    assert x_int.tolist() == [[96, -12, 2], [0, 0, 0]]


def test_khat_is_exact_shift_add_sum():
    rng = np.random.default_rng(1)
    x = rng.integers(-100, 100, size=(5, 16)).astype(np.float64)
    w = rng.standard_normal((16, 8))
    codes, base = numerics.wk_to_lz(w)
    x_int, exponent = numerics.quantize_token_rows(x)
    expected = (x_int.astype(np.float64) * 2.0 ** exponent[:, None]) @ numerics.lz_decode(codes, base)
    khat = numerics.dlzs_key(x, codes, base)
    np.testing.assert_array_equal(khat, expected.astype(np.float16))


def test_sads_tile_by_hand():
    scores = np.array([[5.0, 1.0, 9.0, 3.0, 9.0]])
    valid = np.ones_like(scores, dtype=bool)
    # Ties keep the lower index first: 9 (2), 9 (4), 5 (0).
    assert numerics.sads_tile(scores, valid, 3, np.inf).tolist() == [[2, 4, 0]]
    # The sphere keeps scores >= 9 - 3 = 6 only.
    assert numerics.sads_tile(scores, valid, 3, 3.0).tolist() == [[2, 4, -1]]
    # Masked keys are never chosen, even when the tile has room.
    valid[0, 2] = False
    assert numerics.sads_tile(scores, valid, 5, np.inf).tolist() == [[4, 0, 3, 1, -1]]


def test_sads_splits_rows_into_tiles_with_padding():
    scores = np.arange(10, dtype=np.float64)[None, None, None, :]
    indices = numerics.sads(scores, np.ones_like(scores, dtype=bool), tile=4, keep=0.5, radius=np.inf)
    # Tiles [0..3], [4..7], [8, 9, pad, pad]; 2 kept per tile, descending.
    assert indices.tolist() == [[[[[3, 2], [7, 6], [9, 8]]]]]


@pytest.mark.parametrize(("keep", "tile", "expected"), [(0.25, 64, 16), (0.1, 32, 4), (1.0, 7, 7), (0.01, 8, 1)])
def test_keep_count(keep, tile, expected):
    assert numerics.keep_count(keep, tile) == expected


def random_qkv(seed, batch=1, q_heads=4, kv_heads=2, q_len=70, kv_len=150, depth=16, v_depth=8):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, q_heads, q_len, depth)).astype(np.float32)
    k = rng.standard_normal((batch, kv_heads, kv_len, depth)).astype(np.float32)
    v = rng.standard_normal((batch, kv_heads, kv_len, v_depth)).astype(np.float32)
    return q, k, v


@pytest.mark.parametrize("predictor", ["dlzs", "mul4", "exact"])
@pytest.mark.parametrize("tile", [16, 64, 150])
def test_keep_one_is_exact_attention(predictor, tile):
    q, k, v = random_qkv(0)
    bias = numerics.mask_to_bias(None, False, 70, 150)
    out = numerics.sofa_attention(q, k, v, bias, 0.25, keep=1.0, tile=tile, radius=np.inf, predictor=predictor)
    expected = reference_attention(fp16(q), fp16(k), fp16(v), 0.25)
    assert_fp16_close(out, expected, v)


def test_keep_one_with_causal_and_boolean_mask():
    q, k, v = random_qkv(1, q_len=150)
    rng = np.random.default_rng(2)
    mask = rng.random((150, 150)) > 0.3
    np.fill_diagonal(mask, True)
    causal = np.tril(np.ones((150, 150), dtype=bool))
    bias = numerics.mask_to_bias(mask, True, 150, 150)
    out = numerics.sofa_attention(q, k, v, bias, 0.3, keep=1.0, tile=32, radius=np.inf)
    assert_fp16_close(out, reference_attention(fp16(q), fp16(k), fp16(v), 0.3, mask & causal), v)


def test_additive_mask_is_added_to_logits():
    q, k, v = random_qkv(3)
    additive = np.random.default_rng(4).standard_normal((70, 150))
    bias = numerics.mask_to_bias(additive, False, 70, 150)
    out = numerics.sofa_attention(q, k, v, bias, 0.25, keep=1.0, tile=50, radius=np.inf)
    group = 2
    q, k, v = fp16(q), fp16(k), fp16(v)
    logits = np.einsum("bhqd,bhkd->bhqk", q, np.repeat(k, group, 1)) * 0.25
    logits += additive
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = np.einsum("bhqk,bhkd->bhqd", weights, np.repeat(v, group, 1))
    assert_fp16_close(out, expected, v)


def test_fully_masked_rows_give_zeros():
    q, k, v = random_qkv(5, q_len=4, kv_len=4)
    mask = np.ones((4, 4), dtype=bool)
    mask[2] = False
    bias = numerics.mask_to_bias(mask, False, 4, 4)
    out = numerics.sofa_attention(q, k, v, bias, 0.5, keep=1.0, tile=2, radius=np.inf)
    assert np.all(out[:, :, 2] == 0)
    assert np.all(np.isfinite(out))


def test_sparse_attention_matches_attention_over_the_selection():
    # keep < 1: the result is exact softmax attention restricted to the SADS selection.
    q, k, v = random_qkv(6, q_heads=2, kv_heads=2)
    bias = numerics.mask_to_bias(None, False, 70, 150)
    scores = numerics.dlzs_score(q, k.astype(np.float16))
    indices = numerics.sads(scores, np.ones(scores.shape, dtype=bool), 32, 0.25, np.inf)
    selected = np.zeros(scores.shape, dtype=bool)
    b, h, r = np.indices(indices.shape[:3])
    for t in range(indices.shape[3]):
        for s in range(indices.shape[4]):
            idx = indices[:, :, :, t, s]
            selected[b[idx >= 0], h[idx >= 0], r[idx >= 0], idx[idx >= 0]] = True
    assert selected.sum(axis=-1).max() == 5 * 8  # ceil(.25 * 32) per tile, 5 tiles
    out = numerics.sofa_attention(q, k, v, bias, 0.25, keep=0.25, tile=32, radius=np.inf)
    assert_fp16_close(out, reference_attention(fp16(q), fp16(k), fp16(v), 0.25, selected), v)


def test_wrong_prediction_counts_max_updates_but_stays_exact():
    q = np.array([[1.0, 0.0]])
    keys = np.array([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0]])
    values = np.array([[1.0], [2.0], [3.0]])
    # The predicted order puts the true maximum (key 1) second.
    partial = numerics.sufa_tile_step(q, keys, values, np.array([[0, 1, 2]]), np.zeros((1, 3)), 1.0)
    assert partial.max_updates == 1
    out = numerics.sufa_finish(numerics.sufa_accumulate(numerics.SufaState.empty(1, 1), partial))
    weights = np.exp([0.0, 3.0, 1.0])
    assert out[0, 0] == pytest.approx(float(weights @ [1.0, 2.0, 3.0] / weights.sum()), rel=1e-7)


def test_unselected_and_empty_slots_weigh_nothing():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    keys = np.array([[1.0, 0.0], [0.0, 5.0], [2.0, 2.0]])
    values = np.array([[10.0], [20.0], [30.0]])
    slots = np.array([[2, -1], [0, 2]])
    partial = numerics.sufa_tile_step(q, keys, values, slots, np.zeros((2, 2)), 1.0)
    out = numerics.sufa_finish(numerics.sufa_accumulate(numerics.SufaState.empty(2, 1), partial))
    assert out[0, 0] == pytest.approx(30.0)  # only key 2 was selected for row 0
    weights = np.exp([0.0, 2.0])  # row 1 sees keys 0 and 2 only (key 1 would dominate)
    assert out[1, 0] == pytest.approx(float(weights @ [10.0, 30.0] / weights.sum()))


def test_tile_by_tile_merge_equals_one_shot_softmax():
    rng = np.random.default_rng(7)
    q = rng.standard_normal((3, 4))
    keys = rng.standard_normal((12, 4)) * 3
    values = rng.standard_normal((12, 5))
    state = numerics.SufaState.empty(3, 5)
    for j in range(3):
        window = slice(4 * j, 4 * j + 4)
        slots = np.tile(np.arange(4), (3, 1))
        state = numerics.sufa_accumulate(
            state, numerics.sufa_tile_step(q, keys[window], values[window], slots, np.zeros((3, 4)), 1.0)
        )
    logits = q @ keys.T
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    expected = weights / weights.sum(-1, keepdims=True) @ values
    assert_fp16_close(numerics.sufa_finish(state), expected, values)


def test_dlzs_prediction_ranks_well():
    # DLZS is approximate; on random data its top-25% should still overlap the exact top-25% well.
    rng = np.random.default_rng(8)
    q = rng.standard_normal((64, 64))
    k = rng.standard_normal((256, 64))
    exact = q @ k.T
    predicted = numerics.dlzs_score(q, k.astype(np.float16)).astype(np.float64)
    top = 64
    exact_top = np.argsort(-exact, axis=1)[:, :top]
    predicted_top = np.argsort(-predicted, axis=1)[:, :top]
    recall = np.mean([len(set(a) & set(b)) / top for a, b in zip(exact_top, predicted_top)])
    assert recall > 0.6
