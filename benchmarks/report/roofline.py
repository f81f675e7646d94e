"""A roofline of the simulated hardware with each simulated workload on it."""

from __future__ import annotations

from dataclasses import dataclass

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


def place(measurement: Measurement) -> RooflinePoint:
    report = measurement.report
    seconds = report.time_us * 1e-6
    dram = report.dram_read_bytes + report.dram_write_bytes
    executed = 2.0 * measurement.ops["macs"] / measurement.scale
    return RooflinePoint(
        measurement.workload.name,
        executed / dram,
        executed / seconds / 1e9,
        report.dense_ops / dram,
        report.effective_gops,
    )
