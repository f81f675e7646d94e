"""The cumulative ablation of the paper's Fig. 17 / Fig. 20a on the simulated hardware.

Two reference rows come first, priced by the simulator's own rules
(`sofa_compiler.baselines`, docs/cost-model.md): the paper's vanilla
dynamic-sparsity accelerator (4-bit prediction, A-hat and A through DRAM by
row, 2 MB SRAM; the reference of the paper's -23 % / -79 %) and the fair
separate-stage baseline. Then the compiled chain: baseline (4-bit multiply
prediction, whole-row top-k, FlashAttention-2, A-hat through DRAM) -> + DLZS
-> + SADS -> + SU-FA -> + union gather -> + coordinated tiling, each step one
`compile_model` call with the ablation knobs (where the driver lacks them,
only the two end points run). The paper's RASS is a reuse order over a
bounded KV buffer; the simulator's `rass` step is the union gather of a tile's
selected keys, whose order moves no cost, so the row is named for what it is.

Every row carries the output's error against exact dense attention on the
simulated heads: the pipelines select differently (whole-row top-k, per-tile
SADS), so cost is shown beside accuracy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dialects.sofa import TargetAttr
from passes.tile_plan import AttentionShape, choose_tile
from sofa_compiler.accuracy import cosine_similarity, relative_error
from sofa_compiler.baselines import Layer, Priced, Rows, fair_separate, paper_vanilla
from sofa_compiler.baselines.outputs import dense_reference, row_topk_outputs
from sofa_compiler.driver import compile_model
from sofa_compiler.sim.config import HardwareConfig, load_config
from sofa_compiler.sim.report import build_report
from sofa_compiler.workloads import OP_FIELDS, Measurement, Workload, random_inputs, simulate

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
    ("+ union gather", {"rass": True}),
    ("+ coordinated tiling", {"dataflow": "coordinated"}),
)

PAPER_COMPLEXITY = {"+ DLZS": -18.0, "+ SADS": -25.0, "+ SU-FA": -28.0}
"""Cumulative complexity change vs the baseline, paper Fig. 17 (§7.3), in percent."""

PAPER_MEMORY = {"+ union gather": -23.0, "+ coordinated tiling": -79.0}
"""Memory-access change vs the vanilla accelerator, paper Fig. 20a (§1.5): RASS alone, then with SU-FA and tiling."""

PAPER_VANILLA = "paper vanilla (4-bit, row top-k, Â and A via DRAM, 2 MB)"
FAIR_SEPARATE = "fair separate (DLZS, row top-k, index list, FA-2)"
REFERENCES: tuple[tuple[str, str, Callable[[Layer, HardwareConfig], Priced]], ...] = (
    (PAPER_VANILLA, "mul4", paper_vanilla),
    (FAIR_SEPARATE, "dlzs", fair_separate),
)
"""The priced reference rows: (name, predictor, pipeline)."""

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
    output_error: float | None = None
    """Max relative error of the output against exact dense attention (the simulated heads)."""
    cosine: float | None = None


def configurations() -> tuple[bool, list[tuple[str, dict[str, Any]]]]:
    """(whether the knobs exist, the (name, compile options) chain to run)."""
    if not has_ablation_knobs():
        return False, [(name, dict(options)) for name, options in END_POINTS]
    chain, options = [], dict(BASELINE)
    for name, change in STEPS:
        options = {**options, **change}
        chain.append((name, dict(options)))
    return True, chain


def priced_measurement(target: Workload, heads: int, seq: int, name: str, priced: Priced) -> Measurement:
    """A priced baseline as a `Measurement` of `heads` heads at `seq` tokens, scaled to the layer as `simulate` is."""
    scale = target.heads / heads * (target.seq / seq) ** 2
    ops = {field: float(getattr(priced.timing.work, field)) * scale for field in OP_FIELDS}
    return Measurement(target, {"baseline": name}, heads, seq, scale, build_report(priced.timing), ops, 0.0)


def reference_rows(
    target: Workload, keep: float, heads: int, seq: int, exact: np.ndarray, inputs: dict[str, np.ndarray]
) -> list[AblationRow]:
    """The paper's vanilla accelerator and the fair separate baseline, at SOFA's KV tile."""
    config = load_config(None)
    bound = TargetAttr(config.as_target_dict())
    shape = AttentionShape(1, heads, heads, seq, seq, target.depth, target.depth, keep, target.causal)
    tile, _ = choose_tile(bound, shape)
    rows = []
    for name, predictor, pipeline in REFERENCES:
        priced = pipeline(Layer(bound, shape, tile, predictor), config)
        output = row_topk_outputs(inputs, Rows.of(shape), predictor, 1 / np.sqrt(target.depth))
        measurement = priced_measurement(target, heads, seq, name, priced)
        error, cosine = relative_error(output, exact), cosine_similarity(output, exact)
        rows.append(AblationRow(name, {"predictor": predictor}, measurement, "", error, cosine))
    return rows


def run_ablation(
    target: Workload, keep: float, heads: int, seq: int | None, log: Any
) -> tuple[bool, list[AblationRow]]:
    knobs, chain = configurations()
    heads, seq = min(heads, target.heads), seq or target.seq
    inputs = random_inputs(heads, seq, target.depth)  # what `simulate` runs on
    exact = dense_reference(inputs, target.causal, 1 / np.sqrt(target.depth))
    rows = reference_rows(target, keep, heads, seq, exact, inputs)
    for row in rows:
        assert row.measurement is not None
        log(f"  ablation {target.name} {row.name}: {row.measurement.cycles:.4g} cycles (priced)")
    for name, options in chain:
        try:
            measurement = simulate(target, keep, heads, seq, **options)
        except Exception as error:  # a combination the compiler rejects is reported, not fatal
            log(f"  ablation {target.name} {name}: not supported ({type(error).__name__}: {error})")
            rows.append(AblationRow(name, options, None, f"{type(error).__name__}: {error}"))
            continue
        log(f"  ablation {target.name} {name}: {measurement.cycles:.4g} cycles ({measurement.wall_s:.1f} s)")
        output = next(iter(measurement.outputs.values()))
        row = AblationRow(name, options, measurement)
        rows.append(replace(row, output_error=relative_error(output, exact), cosine=cosine_similarity(output, exact)))
    return knobs, rows
