"""What one evaluation run measured: the record the report and its plots are made from."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.report.ablation import AblationRow
from benchmarks.report.accuracy import AccuracyPoint, RadiusPoint, SegmentPoint, WorkloadPoint
from benchmarks.report.calibration import CalibrationRow
from benchmarks.report.gpu import GpuComparison
from benchmarks.report.masks import MaskRow
from benchmarks.report.real_model import RealModelResult
from benchmarks.report.render_models import LmTable
from benchmarks.report.roofline import Roof, RooflinePoint
from benchmarks.report.speed import CompileRow, SpeedRow
from sofa_compiler.workloads import Measurement, Workload


@dataclass
class Results:
    """Everything one run measured."""

    mode: str
    config_name: str
    keep: float
    workloads: list[tuple[Measurement, Measurement]] = field(default_factory=list)  # (SOFA, separate baseline)
    ablation_knobs: bool = False
    ablations: list[tuple[Workload, list[AblationRow]]] = field(default_factory=list)
    accuracy: list[AccuracyPoint] = field(default_factory=list)
    accuracy_setup: str = ""
    segments: list[SegmentPoint] = field(default_factory=list)
    radii: list[RadiusPoint] = field(default_factory=list)
    workload_accuracy: list[WorkloadPoint] = field(default_factory=list)
    calibration: list[CalibrationRow] = field(default_factory=list)
    real_model: RealModelResult | None = None
    lm: LmTable | None = None
    gpu_device: str = ""
    gpu: list[GpuComparison] = field(default_factory=list)
    table_ii: dict[str, float] = field(default_factory=dict)
    multipliers: int = 0
    speed: list[SpeedRow] = field(default_factory=list)
    compile: list[CompileRow] = field(default_factory=list)
    masks: list[MaskRow] = field(default_factory=list)
    roof: Roof | None = None
    points: list[RooflinePoint] = field(default_factory=list)
    section_s: dict[str, float] = field(default_factory=dict)
    command: str = ""


def accuracy_inputs(results: Results) -> list[str]:
    """Input kinds in the accuracy results, in measurement order (random first, then real)."""
    return list(dict.fromkeys(p.inputs for p in results.accuracy))
