"""The simulator's fast paths give exactly what the straightforward computation gives.

Each fast path in `dialects.numerics` (SU-FA, SADS) and in the functional
machine is checked bit for bit against a plain reference written here (the
kernels as they were before the fast paths), on random and adversarial
inputs: empty slots (NO_INDEX), duplicate indices, masks, -inf / +inf / NaN
scores, ties, ascending and descending slot orders, f16 and f32 operands.
"""

from __future__ import annotations

import numpy as np
import pytest

from dialects import numerics

NO_INDEX = numerics.NO_INDEX


# ---------------------------------------------------------------------------
# References: the kernels before the fast paths
# ---------------------------------------------------------------------------


def _reference_running_max(scores: np.ndarray) -> np.ndarray:
    """The running maximum over slots (axis 0), one slot at a time."""
    current = np.array(scores, dtype=np.float64)
    for j in range(1, len(current)):
        current[j] = np.maximum(current[j], current[j - 1])
    return current


def reference_tile_step(q, k_window, v_window, slots, bias, scale) -> numerics.SufaPartial:
    q64 = np.asarray(q, np.float64)
    all_scores = q64 @ np.asarray(k_window, np.float64).T * float(np.float32(scale))
    rows, width = all_scores.shape
    empty = slots == NO_INDEX
    safe_slots = np.where(empty, 0, slots)
    scores = np.take_along_axis(all_scores, safe_slots, axis=-1)
    if bias is not None:
        scores = scores + bias
    if empty.any():
        scores = np.where(empty, -np.inf, scores)
    slot_major = np.ascontiguousarray(scores.T)
    running_max = _reference_running_max(slot_major)
    updates = int(np.count_nonzero(slot_major[1:] > running_max[:-1]))
    row_max = running_max[-1] if scores.shape[-1] else np.full(rows, -np.inf)
    safe_max = np.where(np.isfinite(row_max), row_max, 0.0)
    weights = np.exp(scores - safe_max[:, None])
    flat_slots = safe_slots + (np.arange(rows) * width)[:, None]
    window_weights = np.bincount(flat_slots.ravel(), weights=weights.ravel(), minlength=all_scores.size)
    window_weights = window_weights.reshape(all_scores.shape)
    denominator = weights.sum(axis=-1)
    numerator = window_weights @ np.asarray(v_window, np.float64)
    return numerics.SufaPartial(row_max, denominator, numerator, updates)


def naive_max_updates(scores: np.ndarray) -> int:
    """Max-ensure events one score at a time, as the AP unit sees them."""
    count = 0
    for row in scores:
        if not len(row):
            continue
        best = row[0]
        for value in row[1:]:
            if value > best:
                count += 1
            best = np.maximum(best, value)
    return count


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def same_max(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal maxima; the sign of a zero maximum is free (no later step can see it), NaN equals NaN."""
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


# ---------------------------------------------------------------------------
# Adversarial SU-FA tiles
# ---------------------------------------------------------------------------


def _tile_case(seed: int):
    rng = np.random.default_rng(seed)
    rows = int(rng.choice([1, 2, 5, 16, 64]))
    window = int(rng.choice([1, 3, 8, 32, 128]))
    depth = int(rng.choice([1, 4, 16]))
    m = int(rng.choice([0, 1, 2, max(1, window // 2), window]))
    dtype = rng.choice([np.float16, np.float32])
    q = rng.standard_normal((rows, depth)) * rng.choice([0.1, 1.0, 30.0])
    k = rng.standard_normal((window, depth)) * rng.choice([0.1, 1.0, 30.0])
    v = rng.standard_normal((window, depth))
    if rng.random() < 0.3:  # ties: repeated keys and quantised values
        k[rng.integers(0, window, window // 2 + 1)] = k[0]
        q = np.round(q)
        k = np.round(k)
    if rng.random() < 0.15:  # inf operands: +-inf and NaN scores (inf * 0)
        k.flat[rng.integers(0, k.size, 2)] = rng.choice([np.inf, -np.inf], 2)
        if rng.random() < 0.5:
            q.flat[rng.integers(0, q.size)] = 0.0
    if rng.random() < 0.05:
        q.flat[rng.integers(0, q.size)] = np.nan
    q, k, v = (np.asarray(x).astype(dtype) for x in (q, k, v))
    if m == window and rng.random() < 0.5:  # each row a permutation of the window (keep 1)
        slots = np.argsort(rng.random((rows, window)), axis=-1)
    else:
        slots = rng.integers(0, window, (rows, m))  # duplicates allowed
    with np.errstate(all="ignore"):
        exact = np.asarray(q, np.float64) @ np.asarray(k, np.float64).T
    order = rng.random()
    if m and order < 0.3:  # descending by a noisy score: a few raises (SADS order by A-hat)
        ranked = np.take_along_axis(exact, slots, -1)
        with np.errstate(all="ignore"):
            noise = rng.choice([0.0, 0.1, 1.0]) * np.abs(ranked).mean() * rng.standard_normal(ranked.shape)
            ranked = ranked + noise
        slots = np.take_along_axis(slots, np.argsort(-np.nan_to_num(ranked), axis=-1, kind="stable"), -1)
    elif m and order < 0.45:  # ascending: every slot raises the maximum (the wide fallback)
        ranked = np.take_along_axis(exact, slots, -1)
        slots = np.take_along_axis(slots, np.argsort(np.nan_to_num(ranked), axis=-1, kind="stable"), -1)
    if m and rng.random() < 0.3:
        slots = np.where(rng.random((rows, m)) < 0.3, NO_INDEX, slots)
        if rng.random() < 0.3:
            slots[0] = NO_INDEX  # a row with nothing selected
    slots = slots.astype(rng.choice([np.int64, np.int32]))
    bias = None
    if rng.random() < 0.5:
        bias = np.where(rng.random((rows, m)) < 0.2, -np.inf, 0.0)
        if rng.random() < 0.3:
            bias = bias + rng.standard_normal((rows, m))
        if rng.random() < 0.1:
            bias[:, :1] = -np.inf  # the first slot masked
    scale = float(rng.choice([1.0, 0.125, 1 / np.sqrt(depth), 0.0]))
    return q, k, v, slots, bias, scale


def _check_partial(new: numerics.SufaPartial, ref: numerics.SufaPartial) -> None:
    assert new.max_updates == ref.max_updates
    assert same_max(new.row_max, ref.row_max)
    assert same_bits(new.denominator, ref.denominator)
    assert same_bits(new.numerator, ref.numerator)


@pytest.mark.parametrize("seed", range(400))
def test_tile_step_matches_reference(seed):
    q, k, v, slots, bias, scale = _tile_case(seed)
    with np.errstate(all="ignore"):
        new = numerics.sufa_tile_step(q, k, v, slots, bias, scale)
        ref = reference_tile_step(q, k, v, slots, bias, scale)
        _check_partial(new, ref)
        # Merged into a running state (twice, so the old state's maximum matters) and normalised.
        state_new = state_ref = numerics.SufaState.empty(len(q), v.shape[1])
        for _ in range(2):
            state_new = numerics.sufa_accumulate(state_new, new)
            state_ref = numerics.sufa_accumulate(state_ref, ref)
        assert same_bits(numerics.sufa_finish(state_new), numerics.sufa_finish(state_ref))


def _max_update_scores(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, m = int(rng.integers(1, 40)), int(rng.integers(1, 70))
    scores = np.round(rng.standard_normal((rows, m)) * rng.choice([1, 3, 100]))  # many ties
    kind = rng.integers(0, 7)
    if kind == 6:  # near-descending (SADS order): a few raises, the candidate fast path
        scores = -np.sort(-scores, axis=-1) + rng.standard_normal((rows, m)) * rng.choice([0.1, 1, 3])
        scores = np.round(scores, int(rng.integers(0, 3)))
    if kind == 1:
        scores = -np.sort(-scores, axis=-1)  # descending: no raises
    elif kind == 2:
        scores = np.sort(scores, axis=-1)  # ascending: the wide fallback
    elif kind == 3:
        scores[rng.random(scores.shape) < 0.3] = -np.inf
    elif kind == 4:
        scores[rng.random(scores.shape) < 0.1] = np.inf
        scores[rng.random(scores.shape) < 0.1] = -np.inf
    elif kind == 5:
        scores[rng.random(scores.shape) < 0.05] = np.nan
    if rng.random() < 0.3:
        scores[rng.random(scores.shape) < 0.3] = rng.choice([0.0, -0.0])
    return scores


@pytest.mark.parametrize("seed", range(300))
def test_max_updates_counts_every_raise(seed):
    scores = _max_update_scores(seed)
    with np.errstate(invalid="ignore"):
        row_max = scores.max(axis=-1)
    assert numerics._max_updates(scores, row_max) == naive_max_updates(scores)
    reference = _reference_running_max(scores.T)[-1]
    assert same_max(row_max, reference)


def test_max_updates_edge_rows():
    cases = [
        np.array([[1.0]]),
        np.array([[-np.inf, -np.inf, 1.0, 0.5, 2.0]]),
        np.array([[0.0, -0.0, 0.0, 1e-300]]),
        np.array([[-0.0, 0.0], [0.0, -0.0]]),
        np.array([[np.nan, 1.0, 2.0], [1.0, np.nan, 2.0], [1.0, 2.0, np.nan]]),
        np.array([[np.inf, np.inf, 1.0], [1.0, np.inf, np.inf]]),
        np.arange(64.0)[None, :].repeat(3, 0),  # every slot raises: more candidates than the fast path takes
        np.array([[3.0, 1.0, 2.0, 3.0, 4.0, 4.0, 5.0], [5.0, 4.0, 6.0, 6.0, 7.0, 1.0, 8.0]]),
    ]
    for scores in cases:
        with np.errstate(invalid="ignore"):
            assert numerics._max_updates(scores, scores.max(axis=-1)) == naive_max_updates(scores), scores


@pytest.mark.parametrize(("keep", "dtype", "seed"), [(1.0, np.float16, 0), (0.5, np.float16, 1), (0.25, np.float32, 2)])
def test_tile_step_in_sads_order(keep, dtype, seed):
    # The simulator's case: slots in SADS order of the DLZS prediction, each a handful of raises.
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((128, 128)).astype(dtype) for _ in range(3))
    predicted = numerics.dlzs_score(q, numerics.to_fp16_saturating(np.asarray(k, np.float64)))
    valid = np.ones(predicted.shape, bool)
    slots = numerics.sads_tile(predicted, valid, numerics.keep_count(keep, 128), np.inf).astype(np.int64)
    new = numerics.sufa_tile_step(q, k, v, slots, None, 1 / np.sqrt(128))
    ref = reference_tile_step(q, k, v, slots, None, 1 / np.sqrt(128))
    _check_partial(new, ref)
    assert new.max_updates > 0
