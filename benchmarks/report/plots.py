"""The report's PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.report.accuracy import PREDICTORS
from benchmarks.report.gpu import GPU_BOARD_POWER_W
from benchmarks.report.results import Results, accuracy_inputs


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_workloads(results: Results, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 4))
    names = [s.workload.name for s, _ in results.workloads]
    xs = range(len(names))
    metrics = (("latency", "latency_ms"), ("DRAM bytes", "dram_bytes"), ("energy", "energy_uj"))
    for index, (label, attribute) in enumerate(metrics):
        values = [getattr(s, attribute) / getattr(b, attribute) for s, b in results.workloads]
        ax.bar([x + (index - 1) * 0.27 for x in xs], values, width=0.27, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(list(xs), names, rotation=30, ha="right")
    ax.set_ylabel("SOFA / separate baseline")
    ax.set_title(f"SOFA vs separate-stage baseline, keep {results.keep}")
    ax.legend()
    _save(fig, path)


def plot_ablation(results: Results, path: Path) -> None:
    count = max(1, len(results.ablations))
    fig, axes = plt.subplots(1, count, figsize=(6 * count, 4.5), squeeze=False)
    for ax, (target, rows) in zip(axes[0], results.ablations, strict=False):
        base = rows[0].measurement
        done = [r for r in rows if r.measurement is not None]
        xs = range(len(done))
        metrics = (
            ("ops", lambda m: m.total_ops()),
            ("DRAM", lambda m: m.dram_bytes),
            ("cycles", lambda m: m.cycles),
            ("energy", lambda m: m.energy_uj),
        )
        for index, (label, value) in enumerate(metrics):
            heights = [value(r.measurement) / value(base) if base else 0.0 for r in done]
            ax.bar([x + (index - 1.5) * 0.2 for x in xs], heights, width=0.2, label=label)
        ax.set_xticks(list(xs), [r.name.split(" (")[0] for r in done], rotation=25, ha="right")
        ax.set_ylabel("relative to baseline")
        ax.set_title(f"{target.model} S={target.seq}")
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_accuracy(results: Results, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    styles = {"gaussian": "-", "clustered": "--", "minilm": ":"}
    for inputs in accuracy_inputs(results):
        style = styles.get(inputs, "-.")
        for predictor in PREDICTORS:
            points = sorted(
                (p for p in results.accuracy if p.inputs == inputs and p.predictor == predictor), key=lambda p: p.keep
            )
            if not points:
                continue  # two-phase DLZS needs the projections
            keeps = [p.keep for p in points]
            label = f"{predictor}, {inputs}"
            color = f"C{PREDICTORS.index(predictor)}"
            kwargs = {"marker": "o", "label": label, "color": color}
            axes[0].plot(keeps, [max(p.rel_error, 1e-9) for p in points], style, **kwargs)
            axes[1].plot(keeps, [p.cosine for p in points], style, **kwargs)
            axes[2].plot(keeps, [p.row_recall for p in points], style, **kwargs)
    axes[0].set_yscale("log")
    titles = ("output rel. error", "cosine similarity", "recall of the whole-row top-k")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("keep ratio")
        ax.set_title(title)
    axes[2].legend(fontsize=7)
    _save(fig, path)


def plot_gpu(results: Results, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    names = [c.measurement.workload.name for c in results.gpu]
    xs = list(range(len(names)))
    series = (
        ("H200 fp16 (read from file)", [c.gpu.ms for c in results.gpu]),
        ("SOFA (simulated)", [c.sofa_ms for c in results.gpu]),
        ("SOFA, Table II scaled", [c.sofa_scaled_ms for c in results.gpu]),
    )
    for index, (label, values) in enumerate(series):
        axes[0].bar([x + (index - 1) * 0.27 for x in xs], values, width=0.27, label=label)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("ms per layer")
    axes[0].legend(fontsize=8)
    for index, (label, values) in enumerate(
        (
            (f"H200 (file times, {GPU_BOARD_POWER_W:.0f} W assumed)", [c.gpu_gops_per_w for c in results.gpu]),
            ("SOFA (simulated)", [c.sofa_gops_per_w for c in results.gpu]),
        )
    ):
        axes[1].bar([x + (index - 0.5) * 0.4 for x in xs], values, width=0.4, label=label)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("GOPS/W (dense op count)")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(xs, names, rotation=30, ha="right")
    _save(fig, path)


def plot_compile(results: Results, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    tokens = [c.tokens for c in results.compile]
    ax.plot(tokens, [c.seconds for c in results.compile], marker="o", label="compile time")
    if results.compile:
        first = results.compile[0]
        ax.plot(tokens, [first.seconds * t / first.tokens for t in tokens], ":", label="linear in tokens")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tokens")
    ax.set_ylabel("seconds")
    ax.legend()
    _save(fig, path)


def plot_roofline(results: Results, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5.5))
    roof = results.roof
    if roof is not None:
        xs = [10 ** (e / 20) for e in range(-20, 61)]
        ax.plot(xs, [roof.bound(x) for x in xs], color="black", label="roof (MAC arrays, DRAM)")
    for index, p in enumerate(results.points):
        color = f"C{index % 10}"
        ax.scatter(p.executed_intensity, p.executed_gops, color=color, marker="o", label=f"{p.name}")
        ax.scatter(p.dense_intensity, p.dense_gops, color=color, marker="^", facecolors="none")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (op / DRAM byte)")
    ax.set_ylabel("GOPS")
    ax.set_title("simulated SOFA: ● executed MAC ops, △ dense-equivalent")
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


PLOTS: dict[str, Callable[[Results, Path], None]] = {
    "workloads.png": plot_workloads,
    "ablation.png": plot_ablation,
    "accuracy.png": plot_accuracy,
    "gpu.png": plot_gpu,
    "compile_time.png": plot_compile,
    "roofline.png": plot_roofline,
}
"""Every plot of the report, by file name, in drawing order."""
