"""A roofline of the simulated hardware with each simulated workload on it, and each workload's
per-engine bounds: the cycles every engine's work needs at its rate, and the DRAM traffic's at peak
bandwidth, beside the simulated cycles, naming the bound the workload sits on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.report.gpu import multipliers
from sofa_compiler.sim.config import HardwareConfig
from sofa_compiler.workloads import Measurement


@dataclass(frozen=True)
class Roof:
    peak_gops: float  # 16-bit MAC arrays (KV generation + SU-FA), 2 ops per MAC per cycle
    bandwidth_gbs: float  # DRAM peak

    @property
    def ridge(self) -> float:
        return self.peak_gops / self.bandwidth_gbs

    def bound(self, intensity: float) -> float:
        return min(self.peak_gops, self.bandwidth_gbs * intensity)


def roof(config: HardwareConfig) -> Roof:
    clock_ghz = float(config.target["clock_mhz"]) / 1e3
    return Roof(multipliers(config) * 2 * clock_ghz, float(config.target["dram_bandwidth_gbps"]))


@dataclass(frozen=True)
class RooflinePoint:
    name: str
    executed_intensity: float  # PE-array ops (2 per MAC) per DRAM byte
    executed_gops: float
    dense_intensity: float  # dense-equivalent ops per DRAM byte
    dense_gops: float
    bound_by: str = ""  # the engine (or "dram") with the largest bound
    bounds: dict[str, float] = field(default_factory=dict)  # engine or "dram" -> bound / simulated cycles


BOUND_COLUMNS = ("dlzs", "sads", "kvgen", "sufa", "dma_load", "dma_prefetch", "dma_store", "dram")
"""The bounds the report lists, engines in pipeline order, then DRAM."""


def place(measurement: Measurement) -> RooflinePoint:
    report = measurement.report
    seconds = report.time_us * 1e-6
    dram = report.dram_read_bytes + report.dram_write_bytes
    executed = 2.0 * measurement.ops["macs"] / measurement.scale
    cycles = report.total_cycles
    bounds = {name: unit.bound_cycles / cycles for name, unit in report.units.items()}
    bounds["dram"] = report.dram_bound_cycles / cycles
    return RooflinePoint(
        measurement.workload.name,
        executed / dram,
        executed / seconds / 1e9,
        report.dense_ops / dram,
        report.effective_gops,
        report.bound_by,
        bounds,
    )


def bound_table(points: Sequence[RooflinePoint]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the per-engine bounds: each as a share of the workload's simulated cycles."""
    headers = ["workload", "bound by", *BOUND_COLUMNS]
    rows = [
        [
            p.name,
            f"{p.bound_by} ({p.bounds[p.bound_by]:.0%})",
            *(f"{p.bounds.get(name, 0.0):.0%}" for name in BOUND_COLUMNS),
        ]
        for p in points
    ]
    return headers, rows
