"""Plots: the search's Pareto fronts (error vs cycles, vs energy) and the sweep's comparison."""

from __future__ import annotations

import io
import math
from pathlib import Path

from optuna.trial import TrialState

from sofa_compiler.files import atomic_write_bytes


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both coordinates (both minimised), sorted by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def pareto_plot(study, path: Path, baseline: dict[str, float] | None = None) -> int:
    """Error vs cycles and vs energy of every completed trial, fronts highlighted; returns the point count."""
    trials = [t for t in study.trials if t.state == TrialState.COMPLETE and "error" in t.user_attrs]
    plt = _figure()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for axis, key, label in ((axes[0], "cycles", "cycles (all layers)"), (axes[1], "energy_pj", "energy (µJ)")):
        unit = 1e6 if key == "energy_pj" else 1.0
        points = [(t.user_attrs[key] / unit, t.user_attrs["error"]) for t in trials]
        if points:
            axis.scatter(*zip(*points), s=12, alpha=0.5, label="trials")
            front = pareto_front(points)
            axis.plot(*zip(*front), "r.-", label="Pareto front")
        if baseline is not None and not math.isnan(baseline.get(key, math.nan)):
            axis.scatter([baseline[key] / unit], [baseline["error"]], marker="x", s=80, c="k", label="best global Bc")
        axis.set_xlabel(label)
        axis.set_ylabel("mean relative error vs dense")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"sofa-dse: {study.study_name}")
    _save(figure, path)
    plt.close(figure)
    return len(trials)


def sweep_plot(points, path: Path) -> None:
    """Cycles, energy and GOPS/W per workload, one bar per target."""
    figure = sweep_figure(points)
    _save(figure, path)
    _figure().close(figure)


def sweep_figure(points):
    """The figure of `sweep_plot`, for the caller to save (and close)."""
    plt = _figure()
    targets = list(dict.fromkeys(p.target for p in points))
    workloads = list(dict.fromkeys(p.workload for p in points))
    # Constrained layout leaves room for each panel's y-label beside its tick labels (log ticks are wide).
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    width = 0.8 / max(1, len(targets))
    metrics = (("cycles", "cycles"), ("energy_uj", "energy (µJ)"), ("gops_per_watt", "GOPS/W"))
    for axis, (key, label) in zip(axes, metrics):
        for index, target in enumerate(targets):
            values = {p.workload: getattr(p, key) for p in points if p.target == target}
            area = next(p.area_mm2 for p in points if p.target == target)
            xs = [w + index * width for w in range(len(workloads))]
            axis.bar(xs, [values.get(w, math.nan) for w in workloads], width, label=f"{target} ({area:.2f} mm²)")
        axis.set_xticks([w + width * (len(targets) - 1) / 2 for w in range(len(workloads))])
        axis.set_xticklabels(workloads, rotation=30, ha="right", fontsize=8)
        axis.set_ylabel(label)
        if key != "gops_per_watt":
            axis.set_yscale("log")
        axis.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    return figure
