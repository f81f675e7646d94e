"""What SADS selects against the exact scores: the inputs and the metrics of the accuracy sweeps.

Inputs come from token rows X and projections W_q, W_k, W_v (Q = X W_q, ...),
so DLZS can predict the way the hardware does on demand, in two phases:
K-hat = X . LZ(W_k) from 8-bit tokens, then A-hat = LZ(Q) . K-hat^T
(`dlzs-2phase`). `dlzs` is the one-phase form the compiler uses when no
projection is known (the exact K, only Q log-quantised).

Metrics against the exact scores:

* *index error*: share of the keys SADS keeps that are not in the exact
  whole-row top-k (k = ceil(keep x valid keys)); the paper's "different K
  indices are considered as errors" (§3.2 of docs/sofa-paper.md);
* *row recall*: share of the exact whole-row top-k that SADS keeps;
* *tile recall*: share of the exact per-tile top-k (same tiling, an oracle
  predictor) that SADS keeps: the predictor's error alone;
* *sorted share*: share of the valid entries inside the sphere (what the
  sort cores stream), for the radius sweep.

Two input kinds: `gaussian` (i.i.d. tokens, flat attention, the hard case)
and `clustered` (tokens around 16 centres and W_q = W_k, so each query is
drawn to the keys of its own cluster: the distributed cluster effect, §3.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from dialects import numerics

CLUSTERS = 16
HIDDEN_PER_DEPTH = 4
"""Token width H = 4 d: one head's projection of a wider token, as in the paper's models (H = heads x d)."""


@dataclass(frozen=True)
class Heads:
    """Attention inputs ``[B, H, S, d]``, and the two-phase K-hat when the projections are known."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    khat: np.ndarray | None = None
    """K-hat = X . LZ(W_k) (fp16, ``[B, H, S, d]``), as DLZS phase 1 computes it on chip; None: no projections."""


def two_phase_khat(x: np.ndarray, w_k: np.ndarray, kv_heads: int) -> np.ndarray:
    """DLZS phase 1 from tokens ``[B, S, H]`` and W_k ``[H, Hkv * d]``: W_k to LZ codes offline, then K-hat."""
    codes, base = numerics.wk_to_lz(w_k)
    return numerics.dlzs_key_heads(x, codes, base, kv_heads)


def projected_heads(x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray) -> Heads:
    """One head from tokens ``[S, H]`` and projections ``[H, d]``: exact Q, K, V (fp32) and the two-phase K-hat."""
    q, k, v = (np.asarray(x @ w, np.float32)[None, None] for w in (w_q, w_k, w_v))
    return Heads(q, k, v, two_phase_khat(x[None], w_k, 1))


def gaussian(rng: np.random.Generator, seq: int, depth: int) -> Heads:
    """i.i.d. N(0, 1) tokens and independent N(0, 1/H) projections: Q, K, V elements about N(0, 1)."""
    hidden = HIDDEN_PER_DEPTH * depth
    x = rng.standard_normal((seq, hidden))
    w_q, w_k, w_v = (rng.standard_normal((hidden, depth)) / np.sqrt(hidden) for _ in range(3))
    return projected_heads(x, w_q, w_k, w_v)


def clustered(rng: np.random.Generator, seq: int, depth: int) -> Heads:
    """Tokens around a few centres, W_q = W_k: each query is drawn to the keys of its own cluster."""
    hidden = HIDDEN_PER_DEPTH * depth
    centres = rng.standard_normal((CLUSTERS, hidden)) * 2.0
    x = centres[rng.integers(0, CLUSTERS, seq)] + rng.standard_normal((seq, hidden)) * 0.7
    w_qk = rng.standard_normal((hidden, depth)) / np.sqrt(hidden)
    w_v = rng.standard_normal((hidden, depth)) / np.sqrt(hidden)
    return projected_heads(x, w_qk, w_qk, w_v)


INPUTS = {"gaussian": gaussian, "clustered": clustered}


@dataclass
class ExactReference:
    """The exact scores of a set of query rows ``[rows, keys]``, their validity, and the selections made from them.

    The exact per-tile and whole-row top-k depend only on the tile and keep,
    so each is computed once and shared by every predictor measured against it.
    """

    scores: np.ndarray
    valid: np.ndarray
    _tiles: dict[tuple[int, float], np.ndarray] = field(default_factory=dict, repr=False)
    _rows: dict[float, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, heads: Heads, valid: np.ndarray | None = None) -> ExactReference:
        """Every query row of every head; ``valid`` ``[rows, keys]`` defaults to all keys (no mask)."""
        scores = numerics.exact_score(heads.q, heads.k)
        scores = scores.reshape(-1, scores.shape[-1])
        return cls(scores, np.ones(scores.shape, dtype=bool) if valid is None else valid)

    def tile_topk(self, tile: int, keep: float) -> np.ndarray:
        """The exact per-tile top-k (SADS on the exact scores, no clip) as a mask."""
        if (tile, keep) not in self._tiles:
            chosen = numerics.sads(self.scores, self.valid, tile, keep, np.inf)
            self._tiles[tile, keep] = selected_mask(chosen, self.scores.shape[-1])
        return self._tiles[tile, keep]

    def row_topk(self, keep: float) -> np.ndarray:
        if keep not in self._rows:
            self._rows[keep] = row_topk_mask(self.scores, self.valid, keep)
        return self._rows[keep]

    def sads(self, predicted: np.ndarray, tile: int, keep: float, radius: float) -> np.ndarray:
        """SADS's global key indices ``[rows, Tc, m]`` on predicted scores ``[rows, keys]`` (radius in A-hat units)."""
        return numerics.sads(predicted, self.valid, tile, keep, radius)

    def quality(
        self, predicted: np.ndarray, tile: int, keep: float, radius: float, indices: np.ndarray | None = None
    ) -> Selection:
        """SADS on ``predicted`` against the exact scores; ``indices``: its selection, when already made."""
        if indices is None:
            indices = self.sads(predicted, tile, keep, radius)
        chosen = selected_mask(indices.reshape(len(predicted), -1), self.scores.shape[-1])
        oracle, best = self.tile_topk(tile, keep), self.row_topk(keep)
        return Selection(
            index_error=ratio(int(np.sum(chosen & ~best)), int(chosen.sum())),
            row_recall=ratio(int(np.sum(chosen & best)), int(best.sum())),
            tile_recall=ratio(int(np.sum(chosen & oracle)), int(oracle.sum())),
            sorted_share=sphere_share(predicted, self.valid, tile, radius),
        )


def predictions(heads: Heads, predictors: tuple[str, ...]) -> Iterator[tuple[str, np.ndarray]]:
    """(predictor, A-hat) for each predictor the heads allow (two-phase DLZS only with projections)."""
    for predictor in predictors:
        scores = predicted_scores(predictor, heads)
        if scores is not None:
            yield predictor, scores


def predicted_scores(predictor: str, heads: Heads) -> np.ndarray | None:
    """A-hat ``[B, H, S, S]`` of a predictor; None for `dlzs-2phase` on inputs without projections."""
    if predictor != "dlzs-2phase":
        return numerics.predict_scores(predictor, heads.q, heads.k)
    if heads.khat is None:
        return None
    return numerics.dlzs_score(heads.q, numerics.expand_kv_heads(heads.khat, heads.q.shape[1]))


def selected_mask(indices: np.ndarray, keys: int) -> np.ndarray:
    """SADS's global key indices ``[rows, ...]`` as a boolean mask ``[rows, keys]``."""
    rows = indices.shape[0]
    flat = indices.reshape(rows, -1)
    mask = np.zeros((rows, keys + 1), dtype=bool)  # the last column catches empty slots
    np.put_along_axis(mask, np.where(flat == numerics.NO_INDEX, keys, flat), True, axis=-1)
    return mask[:, :keys]


def row_topk_mask(exact: np.ndarray, valid: np.ndarray, keep: float) -> np.ndarray:
    """Exact whole-row top-k ``[rows, keys]``: each row's ceil(keep x valid keys) best valid scores.

    Ties go to the lower index, as in SADS.
    """
    count = np.maximum(1, np.ceil(keep * valid.sum(axis=-1) - 1e-9)).astype(np.int64)
    order = np.argsort(-np.where(valid, exact, -np.inf), axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(exact.shape[-1])[None, :], axis=-1)
    return (rank < count[:, None]) & valid


@dataclass(frozen=True)
class Selection:
    """How SADS's selection compares with the exact scores, over a set of query rows."""

    index_error: float
    row_recall: float
    tile_recall: float
    sorted_share: float


def ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def sphere_share(scores: np.ndarray, valid: np.ndarray, tile: int, radius: float) -> float:
    """Share of the valid entries within ``radius`` of their tile's largest valid score (what the sorters see)."""
    rows, keys = scores.shape
    padded = numerics.pad_keys(keys, tile)
    masked = np.full((rows, padded), -np.inf)
    masked[:, :keys] = np.where(valid, scores, -np.inf)
    tiles = masked.reshape(rows, -1, tile)
    inside = tiles >= tiles.max(axis=-1, keepdims=True) - radius
    return ratio(int(np.sum(inside & np.isfinite(tiles))), int(valid.sum()))
