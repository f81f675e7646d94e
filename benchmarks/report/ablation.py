"""The cumulative ablation of the paper's Fig. 17 / Fig. 20a on the simulated hardware.

baseline (4-bit multiply prediction, whole-row top-k, FlashAttention-2,
A-hat through DRAM) -> + DLZS -> + SADS -> + SU-FA -> + RASS -> + coordinated
tiling. Each step is one `compile_model` call with the lead's ablation knobs;
where the driver does not have them yet, only the two end points run
(``pipeline="separate"`` and the default).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from sofa_compiler.driver import compile_model
from sofa_compiler.workloads import Measurement, Workload, simulate

BASELINE: dict[str, Any] = {
    "predictor": "mul4",
    "selection": "row",
    "attention": "fa2",
    "rass": False,
    "dataflow": "separate",
}

STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("baseline (mul4, row top-k, FA-2, separate)", {}),
    ("+ DLZS", {"predictor": "dlzs"}),
    ("+ SADS", {"selection": "sads"}),
    ("+ SU-FA", {"attention": "sufa"}),
    ("+ RASS", {"rass": True}),
    ("+ coordinated tiling", {"dataflow": "coordinated"}),
)

PAPER_COMPLEXITY = {"+ DLZS": -18.0, "+ SADS": -25.0, "+ SU-FA": -28.0}
"""Cumulative complexity change vs the baseline, paper Fig. 17 (§7.3), in percent."""

PAPER_MEMORY = {"+ RASS": -23.0, "+ coordinated tiling": -79.0}
"""Memory-access change vs the baseline, paper Fig. 20a (§1.5): RASS alone, then with SU-FA and tiling."""

END_POINTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("baseline: pipeline='separate' (DLZS, row top-k, FA-2)", {"pipeline": "separate"}),
    ("SOFA: default (all techniques, coordinated)", {}),
)


ABLATION_KNOBS = ("predictor", "selection", "attention", "rass", "dataflow")


def has_ablation_knobs() -> bool:
    """Whether `compile_model` takes the per-technique keyword arguments."""
    parameters = inspect.signature(compile_model).parameters
    return all(knob in parameters for knob in ABLATION_KNOBS)


@dataclass(frozen=True)
class AblationRow:
    name: str
    options: dict[str, Any]
    measurement: Measurement | None
    error: str = ""


def configurations() -> tuple[bool, list[tuple[str, dict[str, Any]]]]:
    """(whether the knobs exist, the (name, compile options) chain to run)."""
    if not has_ablation_knobs():
        return False, [(name, dict(options)) for name, options in END_POINTS]
    chain, options = [], dict(BASELINE)
    for name, change in STEPS:
        options = {**options, **change}
        chain.append((name, dict(options)))
    return True, chain


def run_ablation(
    target: Workload, keep: float, heads: int, seq: int | None, log: Any
) -> tuple[bool, list[AblationRow]]:
    knobs, chain = configurations()
    rows = []
    for name, options in chain:
        try:
            measurement = simulate(target, keep, heads, seq, **options)
        except Exception as error:  # a combination the compiler rejects is reported, not fatal
            log(f"  ablation {target.name} {name}: not supported ({type(error).__name__}: {error})")
            rows.append(AblationRow(name, options, None, f"{type(error).__name__}: {error}"))
            continue
        log(f"  ablation {target.name} {name}: {measurement.cycles:.4g} cycles ({measurement.wall_s:.1f} s)")
        rows.append(AblationRow(name, options, measurement))
    return knobs, rows
