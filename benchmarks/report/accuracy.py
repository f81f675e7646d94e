"""Accuracy in the paper's metrics at the numerics level (the golden kernels the simulator matches bit for bit).

Four sweeps, each a list of frozen points the report renders
(`benchmarks/report/render_accuracy.py`); the metrics are defined in
`benchmarks/report/selection.py`:

* `keep_sweep`: per keep ratio and predictor (one-phase DLZS, two-phase DLZS
  where the projections are known, the 4-bit multiply, the exact oracle): the
  attention output's error, SADS's index error and recall against the exact
  whole-row top-k, and the recall against the exact per-tile top-k;
* `segment_sweep`: index error against the number of SADS segments n = S / Bc
  at one keep ratio (the paper's n = 4 at S = 1024 included);
* `radius_sweep`: the sphere radius against the share of entries sorted and
  the selection's quality;
* `workload_sweep`: index error at the n the compiler actually uses for each
  report workload (its Bc from the tile planner), on sampled query rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchmarks.report.selection import INPUTS, ExactReference, Heads, Selection, predictions
from dialects import numerics
from dialects.sofa.attrs import TargetAttr
from passes.tile_plan import AttentionShape, choose_tile
from sofa_compiler.workloads import Workload

PREDICTORS = ("dlzs", "dlzs-2phase", "mul4", "exact")
SELECTION_PREDICTORS = ("exact", "dlzs", "dlzs-2phase")
"""Predictors of the segment and workload sweeps: the oracle isolates the error of segmenting alone."""

RADII = (math.inf, 8.0, 4.0, 2.0, 1.0, 0.5)
"""Sphere radii of the radius sweep, in logit units (softmax input: A-hat x 1/sqrt(d))."""

SEGMENT_KEEP = 0.25
"""Keep ratio of the segment, radius and workload sweeps: the paper's SADS example (top 25 %)."""


@dataclass(frozen=True)
class AccuracyPoint:
    inputs: str
    predictor: str
    keep: float
    rel_error: float
    cosine: float
    index_error: float
    row_recall: float
    tile_recall: float


@dataclass(frozen=True)
class SegmentPoint:
    inputs: str
    predictor: str
    seq: int
    segments: int
    keep: float
    index_error: float
    row_recall: float


@dataclass(frozen=True)
class RadiusPoint:
    inputs: str
    predictor: str
    radius: float
    tile: int
    keep: float
    sorted_share: float
    index_error: float
    row_recall: float
    rel_error: float


@dataclass(frozen=True)
class WorkloadPoint:
    workload: str
    seq: int
    causal: bool
    tile: int
    segments: int
    rows: int
    inputs: str
    predictor: str
    index_error: float
    row_recall: float


def scale_of(heads: Heads) -> float:
    return 1.0 / math.sqrt(heads.q.shape[-1])


def as_rows(scores: np.ndarray) -> np.ndarray:
    """``[B, H, Sq, Skv]`` -> ``[B * H * Sq, Skv]``: every query row of every head is one row."""
    return scores.reshape(-1, scores.shape[-1])


def attend(heads: Heads, indices: np.ndarray, tile: int) -> np.ndarray:
    """SU-FA over SADS's selection ``[B, H, Sq, Tc, m]``: the SOFA output of non-causal heads."""
    q, k, v = heads.q, heads.k, heads.v
    bias = numerics.mask_to_bias(None, False, q.shape[2], k.shape[2])
    return numerics.sufa(q, k, v, indices, bias, scale_of(heads), tile)[0].astype(np.float64)


def select(
    reference: ExactReference, heads: Heads, scores: np.ndarray, tile: int, keep: float, radius: float
) -> tuple[Selection, np.ndarray]:
    """SADS on ``scores`` ``[B, H, Sq, Skv]`` (radius in logits): how it selects, and the SU-FA output."""
    indices = reference.sads(as_rows(scores), tile, keep, radius / scale_of(heads))
    quality = reference.quality(as_rows(scores), tile, keep, radius / scale_of(heads), indices)
    return quality, attend(heads, indices.reshape(*scores.shape[:-1], *indices.shape[-2:]), tile)


def errors(sparse: np.ndarray, dense: np.ndarray) -> tuple[float, float]:
    """Relative error and cosine similarity of an attention output against the dense one."""
    error = float(np.linalg.norm(sparse - dense) / np.linalg.norm(dense))
    cosine = float(np.sum(sparse * dense) / (np.linalg.norm(sparse) * np.linalg.norm(dense)))
    return error, cosine


def dense_output(heads: Heads) -> np.ndarray:
    bias = numerics.mask_to_bias(None, False, heads.q.shape[2], heads.k.shape[2])
    return numerics.dense_attention(heads.q, heads.k, heads.v, bias, scale_of(heads)).astype(np.float64)


def keep_sweep(name: str, heads: Heads, tile: int, keeps: tuple[float, ...]) -> list[AccuracyPoint]:
    """Every predictor at every keep ratio on one set of non-causal heads (two-phase DLZS where K-hat is known)."""
    dense = dense_output(heads)
    reference = ExactReference.of(heads)
    points = []
    for predictor, scores in predictions(heads, PREDICTORS):
        for keep in keeps:
            chosen, output = select(reference, heads, scores, tile, keep, math.inf)
            error, cosine = errors(output, dense)
            points.append(
                AccuracyPoint(
                    name, predictor, keep, error, cosine, chosen.index_error, chosen.row_recall, chosen.tile_recall
                )
            )
    return points


def segment_counts(seq: int, smallest_tile: int = 16) -> tuple[int, ...]:
    """n = 1, 2, 4, ... while Bc = S / n stays a whole number of at least ``smallest_tile`` keys."""
    counts, n = [], 1
    while seq % n == 0 and seq // n >= smallest_tile:
        counts.append(n)
        n *= 2
    return tuple(counts)


def segment_sweep(
    name: str, heads: Heads, keep: float = SEGMENT_KEEP, counts: tuple[int, ...] | None = None
) -> list[SegmentPoint]:
    """Index error and whole-row recall against the number of SADS segments n (Bc = S / n; default: every n)."""
    seq = heads.k.shape[2]
    reference = ExactReference.of(heads)
    points = []
    for predictor, scores in predictions(heads, SELECTION_PREDICTORS):
        for n in counts or segment_counts(seq):
            chosen = reference.quality(as_rows(scores), seq // n, keep, math.inf)
            points.append(SegmentPoint(name, predictor, seq, n, keep, chosen.index_error, chosen.row_recall))
    return points


def radius_sweep(name: str, heads: Heads, tile: int, keep: float = SEGMENT_KEEP) -> list[RadiusPoint]:
    """The sphere radius against sorted share, selection quality and output error, for the hardware's predictor."""
    predictor, scores = next(predictions(heads, ("dlzs-2phase", "dlzs")))
    dense = dense_output(heads)
    reference = ExactReference.of(heads)
    points = []
    for radius in RADII:
        chosen, output = select(reference, heads, scores, tile, keep, radius)
        error, _ = errors(output, dense)
        points.append(
            RadiusPoint(
                name, predictor, radius, tile, keep, chosen.sorted_share, chosen.index_error, chosen.row_recall, error
            )
        )
    return points


def compiled_tile(target: TargetAttr, workload: Workload, heads: int, seq: int, keep: float) -> int:
    """The KV tile Bc the compiler's tile planner picks for ``heads`` heads of a workload at ``seq`` tokens."""
    depth = workload.depth
    shape = AttentionShape(1, heads, heads, seq, seq, depth, depth, keep, workload.causal)
    return choose_tile(target, shape)[0]


def sampled_rows(seq: int, rows: int) -> np.ndarray:
    """``rows`` query positions spread evenly over the sequence (the last one included)."""
    return np.unique(np.linspace(0, seq - 1, min(rows, seq)).round().astype(np.int64))


def workload_points(
    workload: Workload, seq: int, tile: int, rows: int, keep: float = SEGMENT_KEEP
) -> list[WorkloadPoint]:
    """Index error at the workload's own S, d, mask and Bc, on ``rows`` sampled query rows of one synthetic head."""
    positions = sampled_rows(seq, rows)
    keys = np.arange(seq)
    valid = keys[None, :] <= positions[:, None] if workload.causal else np.ones((len(positions), seq), dtype=bool)
    points = []
    for name, make in INPUTS.items():
        heads = make(np.random.default_rng(0), seq, workload.depth)
        queries = Heads(heads.q[:, :, positions], heads.k, heads.v, heads.khat)
        reference = ExactReference.of(queries, valid)
        for predictor, scores in predictions(queries, SELECTION_PREDICTORS):
            chosen = reference.quality(as_rows(scores), tile, keep, math.inf)
            points.append(
                WorkloadPoint(
                    workload.name,
                    seq,
                    workload.causal,
                    tile,
                    numerics.tile_count(seq, tile),
                    len(positions),
                    name,
                    predictor,
                    chosen.index_error,
                    chosen.row_recall,
                )
            )
    return points


def accuracy_sweep(inputs: dict[str, Heads], tile: int, keeps: tuple[float, ...]) -> list[AccuracyPoint]:
    """`keep_sweep` on each set of named heads, in order."""
    return [point for name, heads in inputs.items() for point in keep_sweep(name, heads, tile, keeps)]
