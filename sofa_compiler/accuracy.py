"""How far a compiled model's outputs are from a reference, and what the numbers mean.

The one definition of the accuracy figures the tools print, so that every
report states its metric the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS_LEGEND = (
    "max relative error = max|out - ref| / max|ref| over all elements; cosine = out.ref / (|out| |ref|). "
    "At keep 1 both are float rounding (error < 1e-4, cosine > 0.9999); "
    "keep < 1 skips keys by design, so the error grows as keep falls"
)


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max|actual - expected| / max|expected| (the absolute difference when `expected` is all zeros)."""
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    difference = float(np.max(np.abs(actual.astype(np.float64) - expected))) if expected.size else 0.0
    return difference / scale if scale else difference


def cosine_similarity(actual: np.ndarray, expected: np.ndarray) -> float:
    """The cosine of the angle between the two arrays as flat vectors (1.0 for two zero arrays)."""
    a = actual.astype(np.float64).ravel()
    b = expected.astype(np.float64).ravel()
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b)) / norms


@dataclass(frozen=True)
class OutputAccuracy:
    """One output compared with its reference."""

    relative_error: float
    cosine: float

    @staticmethod
    def of(actual: np.ndarray, expected: np.ndarray) -> OutputAccuracy:
        return OutputAccuracy(relative_error(actual, expected), cosine_similarity(actual, expected))

    def line(self, name: str, reference: str) -> str:
        return (
            f"output {name}: max relative error vs {reference} {self.relative_error:.3e},"
            f" cosine similarity {self.cosine:.6f}"
        )
