"""How far a compiled model's outputs are from a reference, and what the numbers mean.

The one definition of the accuracy figures the tools print, so that every
report states its metric the same way. NaN and infinities are results (the
kernels follow IEEE arithmetic): the error and cosine are taken over the
positions where both arrays are finite, and the non-finite positions are
compared on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

METRICS_LEGEND = (
    "max relative error = max|out - ref| / max|ref| over the elements finite in both; cosine = out.ref / (|out| |ref|)"
    " over the same elements. At keep 1 the difference is the 16-bit datapath's rounding"
    " (error < 2e-3, cosine > 0.9999); keep < 1 skips keys by design, so the error grows as keep falls"
)

NON_FINITE_KINDS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "nan": np.isnan,
    "+inf": np.isposinf,
    "-inf": np.isneginf,
}


def _finite_pair(actual: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    finite = np.isfinite(actual) & np.isfinite(expected)
    return actual[finite], expected[finite]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max|actual - expected| / max|expected| over the positions finite in both (the absolute
    difference when `expected` is all zeros there)."""
    actual, expected = _finite_pair(actual, expected)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    difference = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    return difference / scale if scale else difference


def cosine_similarity(actual: np.ndarray, expected: np.ndarray) -> float:
    """The cosine of the angle between the finite positions of both as flat vectors (1.0 for two zero arrays)."""
    a, b = _finite_pair(actual, expected)
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b)) / norms


def non_finite_counts(values: np.ndarray) -> dict[str, int]:
    """How many NaN, +inf and -inf entries `values` holds (integers hold none)."""
    values = np.asarray(values)
    if values.dtype.kind not in "fc":
        return dict.fromkeys(NON_FINITE_KINDS, 0)
    return {kind: int(np.count_nonzero(test(values))) for kind, test in NON_FINITE_KINDS.items()}


def same_non_finite(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Whether NaN, +inf and -inf sit at the same positions in both (shapes equal)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return False
    if actual.dtype.kind not in "fc" or expected.dtype.kind not in "fc":
        return not any(non_finite_counts(actual).values()) and not any(non_finite_counts(expected).values())
    return all(np.array_equal(test(actual), test(expected)) for test in NON_FINITE_KINDS.values())


def describe_non_finite(counts: dict[str, int]) -> str:
    """``3 NaN, 1 +inf`` (or ``none``)."""
    parts = [f"{count} {'NaN' if kind == 'nan' else kind}" for kind, count in counts.items() if count]
    return ", ".join(parts) or "none"


@dataclass(frozen=True)
class OutputAccuracy:
    """One output compared with its reference; the figures are None when the shapes differ."""

    relative_error: float | None
    cosine: float | None
    non_finite: dict[str, int]
    reference_non_finite: dict[str, int]
    non_finite_match: bool

    @staticmethod
    def of(actual: np.ndarray, expected: np.ndarray) -> OutputAccuracy:
        actual, expected = np.asarray(actual), np.asarray(expected)
        same_shape = actual.shape == expected.shape
        return OutputAccuracy(
            relative_error(actual, expected) if same_shape else None,
            cosine_similarity(actual, expected) if same_shape else None,
            non_finite_counts(actual),
            non_finite_counts(expected),
            same_non_finite(actual, expected),
        )

    def line(self, name: str, reference: str) -> str:
        if self.relative_error is None or self.cosine is None:
            return f"output {name}: shape differs from {reference}'s"
        text = (
            f"output {name}: max relative error vs {reference} {self.relative_error:.3e},"
            f" cosine similarity {self.cosine:.6f}"
        )
        if any(self.non_finite.values()) or any(self.reference_non_finite.values()):
            text += f" (finite positions); non-finite values: {describe_non_finite(self.non_finite)}"
            if not self.non_finite_match:
                text += f", {reference}: {describe_non_finite(self.reference_non_finite)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_relative_error": self.relative_error,
            "cosine_similarity": self.cosine,
            "non_finite": self.non_finite,
            "reference_non_finite": self.reference_non_finite,
            "non_finite_match": self.non_finite_match,
        }
