"""Simulated SOFA against H200 dense FlashAttention times read from a file (benchmarks/data/gpu_baseline_h200.jsonl).

The file was measured once outside this project (benchmarks/data/README.md);
the report never measures the GPU, and the GPU's power is assumed
(`GPU_BOARD_POWER_W`), so every GPU energy and GOPS/W figure is an estimate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sofa_compiler.sim.config import HardwareConfig
from sofa_compiler.workloads import Measurement

GPU_BOARD_POWER_W = 700.0
"""Assumed H200 (SXM) board power: its 700 W TDP. An estimate: the file has times, not measured power."""

PAPER_LAYER_GOP = 137.0
"""Table II's workload: Llama-7B attention (QK^T + SV, 32 layers) at S = 512, in GOP (§7.8)."""

PAPER_MULTIPLIERS = 128
"""Table II scales every accelerator to 128 multipliers at 1 GHz."""

PAPER_TABLE_II = {
    "throughput (GOPS)": 24423.0,
    "core GOPS/W": 25708.0,
    "device GOPS/W": 7183.0,
    "GOPS/mm²": 4292.0,
    "normalised latency (ms)": 45.0,
}


def default_baseline_path() -> Path:
    """The measured baseline shipped in the repository (its provenance: benchmarks/data/README.md)."""
    return Path(__file__).resolve().parents[1] / "data" / "gpu_baseline_h200.jsonl"


@dataclass(frozen=True)
class GpuEntry:
    shape: str
    dtype: str
    ms: float
    tflops: float


def load_baseline(path: Path) -> tuple[str, dict[tuple[str, str], GpuEntry]]:
    """(device description, {(shape, dtype): entry})."""
    device, entries = "unknown GPU", {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if "shape" not in record:
            device = f"{record.get('device', device)} (torch {record.get('torch', '?')})"
            continue
        entry = GpuEntry(record["shape"], record["dtype"], float(record["ms"]), float(record["tflops"]))
        entries[(entry.shape, entry.dtype)] = entry
    return device, entries


def multipliers(config: HardwareConfig) -> int:
    """16-bit multipliers of the design (KV generation + SU-FA arrays), as Table II counts them."""
    target = config.target
    return int(target["kvgen_rows"] * target["kvgen_cols"] + target["sufa_rows"] * target["sufa_cols"])


@dataclass(frozen=True)
class GpuComparison:
    measurement: Measurement
    gpu: GpuEntry
    gpu_fp32: GpuEntry | None
    table_ii_scale: float  # SOFA latency x this = latency at 128 multipliers

    @property
    def ops(self) -> float:
        return self.measurement.workload.dense_ops()

    @property
    def sofa_ms(self) -> float:
        return self.measurement.latency_ms

    @property
    def sofa_scaled_ms(self) -> float:
        return self.sofa_ms * self.table_ii_scale

    @property
    def gpu_energy_uj(self) -> float:
        return GPU_BOARD_POWER_W * self.gpu.ms * 1e3

    @property
    def sofa_gops_per_w(self) -> float:
        return self.ops / (self.measurement.energy_uj * 1e-6) / 1e9

    @property
    def gpu_gops_per_w(self) -> float:
        return self.ops / (self.gpu_energy_uj * 1e-6) / 1e9


def compare(
    measurements: list[Measurement], entries: dict[tuple[str, str], GpuEntry], config: HardwareConfig
) -> list[GpuComparison]:
    scale = multipliers(config) / PAPER_MULTIPLIERS
    rows = []
    for measurement in measurements:
        gpu = entries.get((measurement.workload.name, "float16"))
        if gpu is not None:
            rows.append(GpuComparison(measurement, gpu, entries.get((measurement.workload.name, "float32")), scale))
    return rows


def table_ii_row(measurement: Measurement, config: HardwareConfig) -> dict[str, float]:
    """SOFA's Table II figures from one simulated Llama-7B S=512 layer (the simulator's dense-op count)."""
    report = measurement.report
    gops = report.effective_gops
    normalised = PAPER_LAYER_GOP / (gops * PAPER_MULTIPLIERS / multipliers(config))
    return {
        "throughput (GOPS)": gops,
        "core GOPS/W": report.core_gops_per_watt,
        "device GOPS/W": report.gops_per_watt,
        "GOPS/mm²": report.gops_per_mm2,
        "normalised latency (ms)": normalised * 1e3,
    }
