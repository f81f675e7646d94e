"""Accuracy against keep ratio at the numerics level (the golden kernels the simulator matches bit for bit).

For each keep ratio: output relative error and cosine similarity of SOFA
(predict -> SADS per tile -> SU-FA) against exact dense attention, and the
top-k recall of the predictor's per-tile selection against the exact per-tile
top-k, for DLZS, the 4-bit multiply predictor and the exact oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.sparsity_accuracy import clustered, gaussian, selection_recall
from dialects import numerics

PREDICTORS = ("dlzs", "mul4", "exact")
INPUTS = {"gaussian": gaussian, "clustered": clustered}


@dataclass(frozen=True)
class AccuracyPoint:
    inputs: str
    predictor: str
    keep: float
    rel_error: float
    cosine: float
    recall: float


def measure(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, keep: float, tile: int, predictor: str, dense: np.ndarray
) -> tuple[float, float, float]:
    scale = 1.0 / np.sqrt(q.shape[-1])
    bias = numerics.mask_to_bias(None, False, q.shape[2], k.shape[2])
    sparse = numerics.sofa_attention(q, k, v, bias, scale, keep, tile, np.inf, predictor).astype(np.float64)
    error = float(np.linalg.norm(sparse - dense) / np.linalg.norm(dense))
    cosine = float(np.sum(sparse * dense) / (np.linalg.norm(sparse) * np.linalg.norm(dense)))
    valid = np.ones((1, 1, q.shape[2], k.shape[2]), dtype=bool)
    predicted = numerics.sads(numerics.predict_scores(predictor, q, k), valid, tile, keep, np.inf)
    exact = numerics.sads(numerics.exact_score(q, k), valid, tile, keep, np.inf)
    return error, cosine, selection_recall(predicted, exact)


def accuracy_sweep(seq: int, depth: int, tile: int, keeps: tuple[float, ...]) -> list[AccuracyPoint]:
    points = []
    for name, make in INPUTS.items():
        q, k, v = make(np.random.default_rng(0), seq, depth)
        scale = 1.0 / np.sqrt(depth)
        bias = numerics.mask_to_bias(None, False, seq, seq)
        dense = numerics.dense_attention(q, k, v, bias, scale).astype(np.float64)
        for predictor in PREDICTORS:
            for keep in keeps:
                error, cosine, recall = measure(q, k, v, keep, tile, predictor, dense)
                points.append(AccuracyPoint(name, predictor, keep, error, cosine, recall))
    return points
