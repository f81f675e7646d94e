"""Budgeted SADS: each row's keys move between KV tiles, from far tiles to the recent ones.

Plain SADS keeps ``m = ceil(keep * Bc)`` keys per row in every KV tile. On a
causal LM the recent keys (the diagonal tile and the one before it) hold most
of the softmax mass and whole-row top-k keeps two to three times ``m`` there,
while the far tiles need fewer. Budgeted SADS keeps plain SADS's total per row
but lets it move forward, tile by tile, as a per-lane counter in the SADS unit:

* every tile adds its plain allowance ``min(m, valid keys of the row in the tile)``
  to the lane's budget;
* a far tile (two or more tiles before the row's last valid key) keeps at most
  ``far_count`` (< ``m``): the rest stays in the budget;
* the tile just before the row's last tile keeps its allowance plus half the carried budget;
* the row's last tile (the diagonal, for causal rows) may spend all that is left;
* no tile keeps more than ``slots`` (the SADS output width, `budget_slots`).

Within a tile the choice is SADS's (`sads_tile_sphere`: descending predicted
score, ties by lower index, sphere clip), cut per lane at its allowance, so the
selected keys are a prefix of plain SADS's order at width ``slots``. With
``far_count == m`` and no clip nothing is ever carried and the selection is
plain SADS's. A row's total never exceeds plain SADS's (the budget only moves).
"""

from __future__ import annotations

import numpy as np

from dialects.numerics.formats import NO_INDEX
from dialects.numerics.sads_tiles import keep_count, sads_tile_sphere

NEAR_TILES = 2
"""Tiles at the end of a row (its last one and the one before) that the carried budget is spent on."""

SLOT_FACTOR = 2
"""The SADS output width of budgeted selection: at most ``SLOT_FACTOR * m`` keys of one tile per lane.

Twice plain SADS's width keeps the index buffers within the paper's SRAM at S = 2048, Bc = 128
(whole-row top-25% keeps 60 to 80 keys in a row's last two tiles of 128 on SmolLM2); budget that
a capped tile cannot spend stays in the counter."""


def far_count(far: float, keep: float, tile: int) -> int:
    """Keys a far tile keeps per row: ``ceil(far * m)``, at least one (``far`` = 1: plain SADS)."""
    m = keep_count(keep, tile)
    return max(1, min(m, int(np.ceil(far * m - 1e-9))))


def budget_slots(far: float, keep: float, tile: int) -> int:
    """SADS output slots per lane and tile: ``m`` for plain SADS, ``min(Bc, SLOT_FACTOR * m)`` when budgeted."""
    m = keep_count(keep, tile)
    return m if far_count(far, keep, tile) >= m else min(tile, SLOT_FACTOR * m)


def tiles_to_last(last_valid: np.ndarray, key_base: int, tile: int) -> np.ndarray:
    """Per row, how many KV tiles after this one hold its last valid key (negative: none left)."""
    return np.floor_divide(np.asarray(last_valid, np.int64) - key_base, tile)


def allowance(budget: np.ndarray, own: np.ndarray, distance: np.ndarray, far: int) -> np.ndarray:
    """Keys each lane may keep in this tile: ``budget`` already includes the tile's own allowance ``own``."""
    carried = budget - own
    near = np.where(distance >= 1, own + carried // 2, budget)
    return np.minimum(np.where(distance >= NEAR_TILES, far, near), budget)


def sads_budget_tile(
    scores: np.ndarray,
    valid: np.ndarray,
    budget: np.ndarray,
    distance: np.ndarray,
    quota: int,
    far: int,
    slots: int,
    radius: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One KV tile of budgeted SADS.

    ``scores``/``valid`` are ``[rows, Bc]``; ``budget`` ``[rows]`` is each lane's
    carried budget before the tile; ``distance`` ``[rows]`` is `tiles_to_last`.
    Returns the tile-local indices ``[rows, slots]`` (descending predicted score,
    ``NO_INDEX`` padded), the budget after the tile, and per row how many entries
    lie inside the sphere (what the sorters see).
    """
    own = np.minimum(quota, np.count_nonzero(valid, axis=-1))
    budget = np.asarray(budget, np.int64) + own
    allowed = np.minimum(allowance(budget, own, np.asarray(distance), far), slots)
    order, surviving = sads_tile_sphere(scores, valid, slots, radius)
    cut = np.arange(slots)[None, :] >= allowed[:, None]
    chosen = np.where(cut, NO_INDEX, order).astype(np.int32, copy=False)
    kept = np.count_nonzero(chosen != NO_INDEX, axis=-1)
    return chosen, budget - kept, surviving


def last_valid_keys(valid: np.ndarray) -> np.ndarray:
    """Per row of ``valid`` ``[rows, keys]``, the index of its last valid key (-1: none)."""
    width = valid.shape[-1]
    any_valid = valid.any(axis=-1)
    return np.where(any_valid, width - 1 - np.argmax(valid[:, ::-1], axis=-1), -1)
