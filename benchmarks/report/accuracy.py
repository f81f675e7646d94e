"""Accuracy against keep ratio at the numerics level (the golden kernels the simulator matches bit for bit).

For each keep ratio: output relative error and cosine similarity of SOFA
(predict -> SADS per tile -> SU-FA) against exact dense attention, and the
top-k recall of the predictor's per-tile selection against the exact per-tile
top-k, for DLZS, the 4-bit multiply predictor and the exact oracle.

Inputs: random (i.i.d. Gaussian, clustered) and, when given, real activations
(Q/K/V of every head of every layer of all-MiniLM-L6-v2 on a fixed passage,
from `benchmarks.report.real_model.real_activations`).
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


def sweep_inputs(
    name: str, q: np.ndarray, k: np.ndarray, v: np.ndarray, tile: int, keeps: tuple[float, ...]
) -> list[AccuracyPoint]:
    """Every predictor at every keep ratio on one set of [B, H, S, d] inputs."""
    scale = 1.0 / np.sqrt(q.shape[-1])
    bias = numerics.mask_to_bias(None, False, q.shape[2], k.shape[2])
    dense = numerics.dense_attention(q, k, v, bias, scale).astype(np.float64)
    points = []
    for predictor in PREDICTORS:
        for keep in keeps:
            error, cosine, recall = measure(q, k, v, keep, tile, predictor, dense)
            points.append(AccuracyPoint(name, predictor, keep, error, cosine, recall))
    return points


def accuracy_sweep(
    seq: int,
    depth: int,
    tile: int,
    keeps: tuple[float, ...],
    real: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
) -> list[AccuracyPoint]:
    """Random inputs (one head, S=seq, d=depth), then each of ``real`` (name -> Q, K, V)."""
    points = []
    for name, make in INPUTS.items():
        points += sweep_inputs(name, *make(np.random.default_rng(0), seq, depth), tile, keeps)
    for name, (q, k, v) in (real or {}).items():
        points += sweep_inputs(name, q, k, v, tile, keeps)
    return points
