"""SU-FA: sorted-updating FlashAttention, one KV tile step at a time, merged into per-lane accumulators.

The numerics of the 16-bit datapath (docs/isa.md, "Numerics"):

* Q, K and V are fp16 operands (`formats.DATAPATH`); the callers pass
  stored fp16 values. Each product of two fp16 values is exact in fp32.
* QK^T, the softmax statistics (running max, ``l``) and ``o`` accumulate
  in a wide accumulator, modelled in fp64: at least fp32, and wide enough
  that the result does not depend on summation order or tile shape.
* ``P = exp(s - m)`` is rounded to fp16 once (the PV product's operand);
  ``l`` sums the same rounded ``P``, so ``O`` is a convex combination of V.
* ``O = o / l`` is rounded to fp16 (saturating) when it is written.

Over the selected keys it is exact softmax attention up to these roundings. Non-finite values follow IEEE
arithmetic as onnxruntime's fp32 attention does: a score past fp32's range is
infinite, a selected score of NaN or +inf makes its row NaN, a row whose every
selected score is -inf is NaN (softmax's ``-inf - -inf``), and NaN or inf in V
reaches the output through the weighted sum. A row that selected no key (every
key masked: empty slots or a bias of -inf) gives zeros, as `sofa.attention`
specifies for fully masked rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dialects.numerics.formats import DATAPATH, NO_INDEX, fp32_overflow, ieee_arithmetic, to_datapath
from dialects.numerics.sads_tiles import soft_cap


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
    live: np.ndarray | None = None
    """Rows that selected at least one key no mask hides (None: the rows whose ``row_max`` is above -inf)."""


@ieee_arithmetic
def sufa_tile_step(
    q: np.ndarray,
    k_window: np.ndarray,
    v_window: np.ndarray,
    slots: np.ndarray,
    bias: np.ndarray | None,
    scale: float,
    softcap: float = 0.0,
) -> SufaPartial:
    """SU-FA on one KV tile; ``slots`` lists each row's selected keys, in order.

    ``q`` is ``[rows, d]``; ``k_window``/``v_window`` ``[W, d]``/``[W, dv]`` are
    the tile's key and value rows; ``slots`` ``[rows, m]`` holds window-local
    indices (``NO_INDEX`` for empty slots) and ``bias`` ``[rows, m]`` the
    additive mask of each slot (None: no mask); ``softcap`` c > 0 caps the scaled scores as
    ``c * tanh(s / c)`` before the bias (`soft_cap`, the ONNX order). The first slot is the predicted maximum. Where
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
    # A dot product past fp32's range is infinite, as onnxruntime's (it scales after the product).
    all_scores = fp32_overflow(q64 @ np.asarray(k_window, np.float64).T)
    all_scores *= float(np.float32(scale))
    if softcap:
        all_scores = soft_cap(all_scores, softcap)
    rows, width = all_scores.shape
    # One reduction shows the usual case, no empty slot (NO_INDEX is the only negative a valid slot list holds).
    any_empty = False
    if slots.size and slots.min() < 0:
        empty = slots == NO_INDEX
        any_empty = bool(empty.any())
    safe_slots = np.where(empty, 0, slots) if any_empty else slots
    flat_slots = safe_slots + (np.arange(rows) * width)[:, None]
    scores = all_scores.reshape(-1)[flat_slots]
    live = ~empty if any_empty else None  # slots that hold a key no mask hides (None: all of them)
    if bias is not None:
        scores = scores + bias
        unmasked = ~np.isneginf(bias)
        live = unmasked if live is None else live & unmasked
    if any_empty:
        scores = np.where(empty, -np.inf, scores)
    if scores.shape[-1]:
        row_max = scores.max(axis=-1)
        updates = _max_updates(scores, row_max)
    else:
        row_max, updates = np.full(rows, -np.inf), 0
    # A selected score of NaN or +inf makes its row NaN, as softmax's exp(s - max) does in IEEE arithmetic.
    poisoned = np.isnan(row_max) | (row_max == np.inf)
    any_poisoned = bool(poisoned.any())
    if any_poisoned:
        row_max = np.where(poisoned, np.nan, row_max)
        scores[poisoned] = -np.inf  # their weights are replaced by NaN below; keep the others' arithmetic finite
    safe_max = np.where(np.isfinite(row_max), row_max, 0.0)
    # exp(s - max), in place: `scores` is this function's own array.
    weights = np.exp(np.subtract(scores, safe_max[:, None], out=scores), out=scores)
    # P is a 16-bit operand of the PV product; l sums the same rounded P (weights lie in [0, 1]).
    weights = weights.astype(DATAPATH.numpy).astype(np.float64)
    # Scatter-add each slot's weight to its key (bincount adds duplicates in order).
    window_weights = np.bincount(flat_slots.ravel(), weights=weights.ravel(), minlength=all_scores.size)
    window_weights = window_weights.reshape(all_scores.shape)
    denominator = weights.sum(axis=-1)
    numerator = window_weights @ _selected_values(v_window, safe_slots[~empty] if any_empty else safe_slots)
    if any_poisoned:
        denominator[poisoned] = np.nan
        numerator[poisoned] = np.nan
    live_rows = np.full(rows, scores.shape[-1] > 0) if live is None else live.any(axis=-1)
    return SufaPartial(row_max, denominator, numerator, updates, live_rows)


def _selected_values(v_window: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """The window's V rows as fp64, rows no slot selected zeroed where V holds NaN or inf.

    An unselected key weighs zero, and 0 * inf is NaN: its V must not reach
    the output (the simulator's window need not even hold it). One reduction
    shows the usual all-finite case, where the product is left as it was.
    """
    values = np.asarray(v_window, np.float64)
    if np.isfinite(values.sum()):
        return values
    keep = np.zeros(len(values), dtype=bool)
    keep[selected.ravel()] = True
    return np.where(keep[:, None], values, 0.0)


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
    ``denominator`` and ``numerator`` are ``l`` and ``o`` relative to it;
    ``live`` marks the rows that selected a key no mask hides (a row still
    at ``-inf`` then had only -inf scores, and is NaN).
    """

    row_max: np.ndarray
    denominator: np.ndarray
    numerator: np.ndarray
    live: np.ndarray

    @classmethod
    def empty(cls, rows: int, value_depth: int) -> SufaState:
        return cls(np.full(rows, -np.inf), np.zeros(rows), np.zeros((rows, value_depth)), np.zeros(rows, dtype=bool))


@ieee_arithmetic
def sufa_accumulate(state: SufaState, partial: SufaPartial) -> SufaState:
    """Merge one tile's partial sums into the running state (Fig. 10b, lines 5-6).

    ``m = max(m, m_j)``, ``l = l e^(m_old - m) + l_j e^(m_j - m)``, likewise ``o``.
    Merging tile by tile equals the paper's merge of all tiles at the end, and
    needs accumulators for one tile only.
    """
    new_max = np.maximum(state.row_max, partial.row_max)  # NaN (a poisoned row) propagates
    finite = np.isfinite(new_max)
    safe_max = np.where(finite, new_max, 0.0)
    old_factor = np.exp(np.where(finite & np.isfinite(state.row_max), state.row_max - safe_max, -np.inf))
    tile_factor = np.exp(np.where(finite & np.isfinite(partial.row_max), partial.row_max - safe_max, -np.inf))
    # o_old * f_old + o_j * f_j, with the sum taken in place (one temporary fewer, the same roundings).
    numerator = old_factor[:, None] * state.numerator
    numerator += tile_factor[:, None] * partial.numerator
    denominator = old_factor * state.denominator + tile_factor * partial.denominator
    live = partial.row_max != -np.inf if partial.live is None else partial.live
    return SufaState(new_max, denominator, numerator, state.live | live)


@ieee_arithmetic
def sufa_finish(state: SufaState) -> np.ndarray:
    """Normalise, ``O = o / l`` (the DIV units), rounded to the datapath's fp16; rows without a key give zeros.

    A row that selected keys whose scores are all -inf has ``l = 0`` too; it is
    NaN, as softmax's ``exp(-inf - -inf)`` is in onnxruntime.
    """
    safe_denominator = np.where(state.denominator > 0, state.denominator, 1.0)  # NaN: 1, the NaN numerator stays
    out = to_datapath(state.numerator / safe_denominator[:, None])
    out[state.live & (state.row_max == -np.inf)] = np.nan
    return out
