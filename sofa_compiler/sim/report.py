"""The simulator's report: cycles, stalls, memory traffic, SRAM occupancy, energy, efficiency.

`build_report` condenses a `TimingResult` (plus the functional run's SRAM
high-water marks) into a `Report`, which prints as `rich` tables or as JSON
with a stable key order.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from sofa_compiler.sim.costs import dram_bound
from sofa_compiler.sim.energy import energy_pj
from sofa_compiler.sim.events import Buffer, SramPeak
from sofa_compiler.sim.timing import UNITS, TimingResult, UnitStats


class ReportError(ValueError):
    """A report that cannot be written as JSON (a non-finite figure); the message names the figures."""


def non_finite(value: Any, path: str = "") -> list[str]:
    """Dotted paths of the non-finite numbers in a JSON-ready `value`."""
    if isinstance(value, dict):
        return [bad for key, item in value.items() for bad in non_finite(item, f"{path}.{key}" if path else str(key))]
    if isinstance(value, list):
        return [bad for index, item in enumerate(value) for bad in non_finite(item, f"{path}[{index}]")]
    return [f"{path} = {value}"] if isinstance(value, float) and not math.isfinite(value) else []


@dataclass(frozen=True)
class UnitReport:
    instructions: int
    busy_cycles: int
    memory_stall_cycles: int  # waiting on a token a DMA signalled
    dependency_stall_cycles: int  # waiting on a token (or barrier) from a compute unit
    idle_cycles: int
    utilization: float  # busy / total
    bound_cycles: int  # the unit's own work at its rate, if nothing stalled it (occupancy summed)


@dataclass(frozen=True)
class SramReport:
    peak_bytes: int
    capacity_bytes: int
    occupancy: float  # peak / capacity; above 1.0 the program overflows the buffer


@dataclass(frozen=True)
class Report:
    config_name: str
    config_hash: str
    clock_mhz: float
    instructions: int
    total_cycles: int
    time_us: float
    units: dict[str, UnitReport]
    dram_read_bytes: int
    dram_write_bytes: int
    sram: dict[str, SramReport]
    energy_pj: dict[str, float]  # by component: engines, sram, other, dram, io
    total_energy_pj: float
    core_energy_pj: float  # without DRAM and interface
    average_power_w: float
    dense_ops: int
    effective_gops: float  # dense-equivalent ops per second
    gops_per_watt: float  # over the whole device, DRAM and interface included (the paper's 7183 GOPS/W)
    core_gops_per_watt: float
    area_mm2: float
    gops_per_mm2: float
    dram_bound_cycles: int  # the DRAM traffic at peak bandwidth (reads and writes each on their channel)
    bound_by: str  # the unit (or "dram") with the largest bound: what the run sits on
    bound_cycles: int  # that bound; total_cycles / bound_cycles - 1 is time lost to latency and hand-offs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """The report as JSON; `ReportError` rather than the invalid JSON of an `Infinity` or `NaN`."""
        # Field order is the key order, so the output is stable run to run.
        try:
            return json.dumps(self.to_dict(), indent=2, allow_nan=False)
        except ValueError:
            raise ReportError(f"the report has non-finite figures: {', '.join(non_finite(self.to_dict()))}") from None

    def render_table(self) -> Group:
        """The report as `rich` tables, for `Console.print`."""
        return Group(_summary_table(self), _unit_table(self), _memory_table(self), _energy_table(self))

    def render_text(self, width: int = 100) -> str:
        """The tables as plain text (no colour), e.g. for logs and tests."""
        buffer = io.StringIO()
        Console(file=buffer, width=width, color_system=None, force_terminal=False).print(self.render_table())
        return buffer.getvalue()


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _unit_report(stats: UnitStats, total_cycles: int) -> UnitReport:
    return UnitReport(
        stats.instructions,
        stats.busy,
        stats.memory_stall,
        stats.dependency_stall,
        stats.idle,
        _ratio(stats.busy, total_cycles),
        stats.bound,
    )


def _bound(units: dict[str, UnitReport], dram_bound: int) -> dict[str, Any]:
    """The `Report` fields that name the largest bound (the first in unit order on a tie, DRAM last)."""
    bounds = {name: unit.bound_cycles for name, unit in units.items()} | {"dram": dram_bound}
    name = max(bounds, key=lambda key: bounds[key])
    return {"dram_bound_cycles": dram_bound, "bound_by": name, "bound_cycles": bounds[name]}


def _sram_report(result: TimingResult, sram_peak: SramPeak | None) -> dict[str, SramReport]:
    capacity = result.config.sram_capacity()
    peaks = sram_peak.bytes_used if sram_peak is not None else {}
    out = {}
    for buffer in Buffer:
        peak = int(peaks.get(buffer, 0))
        out[buffer.value] = SramReport(peak, capacity[buffer.value], _ratio(peak, capacity[buffer.value]))
    return out


def _rates(dense_ops: int, seconds: float, total_energy: float, core_energy: float, area: float) -> dict[str, float]:
    """The `Report` figures derived from totals: power, throughput and efficiencies.

    GOPS/W = ops / energy, independent of time: (ops/s) / (J/s).
    """
    gops = _ratio(dense_ops, seconds) / 1e9
    return {
        "average_power_w": _ratio(total_energy * 1e-12, seconds),
        "effective_gops": gops,
        "gops_per_watt": _ratio(dense_ops, total_energy * 1e-12) / 1e9,
        "core_gops_per_watt": _ratio(dense_ops, core_energy * 1e-12) / 1e9,
        "gops_per_mm2": _ratio(gops, area),
    }


def build_report(result: TimingResult, sram_peak: SramPeak | None = None) -> Report:
    """Condense a timing run (and the functional run's SRAM peaks) into a `Report`."""
    config, total = result.config, result.total_cycles
    units = {unit.value: _unit_report(result.units[unit], total) for unit in UNITS}
    energy = energy_pj(result)
    total_energy = sum(energy.values())
    core_energy = total_energy - energy["dram"] - energy["io"]
    seconds = total / config.clock_hz
    dense_ops = result.work.dense_ops
    area = config.total_area_mm2("mul4" if result.work.mul4_macs > result.work.shift_adds else "dlzs")
    dram = dram_bound(config, result.work)
    return Report(
        config_name=config.name,
        config_hash=config.config_hash(),
        clock_mhz=float(config.target["clock_mhz"]),
        instructions=result.instructions,
        total_cycles=total,
        time_us=result.time_us,
        units=units,
        dram_read_bytes=result.work.dram_read_bytes,
        dram_write_bytes=result.work.dram_write_bytes,
        sram=_sram_report(result, sram_peak),
        energy_pj=energy,
        total_energy_pj=total_energy,
        core_energy_pj=core_energy,
        dense_ops=dense_ops,
        area_mm2=area,
        **_rates(dense_ops, seconds, total_energy, core_energy, area),
        **_bound(units, dram),
    )


def _summary_table(report: Report) -> Table:
    table = Table(title=f"SOFA simulation — {report.config_name} ({report.config_hash[:12]})", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("instructions", f"{report.instructions:,}"),
        ("total cycles", f"{report.total_cycles:,}"),
        ("time", f"{report.time_us:,.3f} µs @ {report.clock_mhz:g} MHz"),
        ("effective throughput", f"{report.effective_gops:,.1f} GOPS"),
        ("energy efficiency", f"{report.gops_per_watt:,.1f} GOPS/W (core {report.core_gops_per_watt:,.1f})"),
        ("average power", f"{report.average_power_w:.3f} W"),
        ("area efficiency", f"{report.gops_per_mm2:,.1f} GOPS/mm² ({report.area_mm2:.3f} mm²)"),
        ("bound by", f"{report.bound_by}: {report.bound_cycles:,} cycles ({_share(report.bound_cycles, report)})"),
        ("DRAM bound", f"{report.dram_bound_cycles:,} cycles ({_share(report.dram_bound_cycles, report)})"),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def _unit_table(report: Report) -> Table:
    table = Table(title="Units (cycles)")
    for name in ("unit", "instr.", "busy", "mem. stall", "dep. stall", "idle", "util.", "bound", "bound/total"):
        table.add_column(name, justify="left" if name == "unit" else "right")
    for name, unit in report.units.items():
        table.add_row(
            name,
            f"{unit.instructions:,}",
            f"{unit.busy_cycles:,}",
            f"{unit.memory_stall_cycles:,}",
            f"{unit.dependency_stall_cycles:,}",
            f"{unit.idle_cycles:,}",
            f"{unit.utilization:.1%}",
            f"{unit.bound_cycles:,}",
            f"{_ratio(unit.bound_cycles, report.total_cycles):.1%}",
        )
    return table


def _share(cycles: int, report: Report) -> str:
    """`cycles` as a share of the run's."""
    return f"{_ratio(cycles, report.total_cycles):.1%} of the run"


def _memory_table(report: Report) -> Table:
    table = Table(title="Memory")
    for name in ("memory", "bytes", "capacity", "occupancy"):
        table.add_column(name, justify="left" if name == "memory" else "right")
    table.add_row("DRAM read", f"{report.dram_read_bytes:,}", "", "")
    table.add_row("DRAM written", f"{report.dram_write_bytes:,}", "", "")
    for name, sram in report.sram.items():
        table.add_row(f"{name} SRAM peak", f"{sram.peak_bytes:,}", f"{sram.capacity_bytes:,}", f"{sram.occupancy:.1%}")
    return table


def _energy_table(report: Report) -> Table:
    table = Table(title="Energy")
    for name in ("component", "µJ", "share"):
        table.add_column(name, justify="left" if name == "component" else "right")
    for name, pj in report.energy_pj.items():
        table.add_row(name, f"{pj * 1e-6:,.3f}", f"{_ratio(pj, report.total_energy_pj):.1%}")
    table.add_row("total", f"{report.total_energy_pj * 1e-6:,.3f}", "100.0%")
    return table


def combine_reports(reports: list[Report]) -> Report:
    """One report for kernels that ran one after another on the same hardware.

    Cycles, instructions, traffic and energy add up; SRAM peaks take the
    maximum; rates (utilisation, GOPS, GOPS/W, power) are recomputed from
    the totals.
    """
    if not reports:
        raise ValueError("no kernel ran, so there is nothing to report")
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    total = sum(r.total_cycles for r in reports)
    units = {}
    for name in first.units:
        parts = [r.units[name] for r in reports]
        busy = sum(p.busy_cycles for p in parts)
        units[name] = UnitReport(
            sum(p.instructions for p in parts),
            busy,
            sum(p.memory_stall_cycles for p in parts),
            sum(p.dependency_stall_cycles for p in parts),
            sum(p.idle_cycles for p in parts),
            _ratio(busy, total),
            sum(p.bound_cycles for p in parts),
        )
    sram = {}
    for name, part in first.sram.items():
        peak = max(r.sram[name].peak_bytes for r in reports)
        sram[name] = SramReport(peak, part.capacity_bytes, _ratio(peak, part.capacity_bytes))
    energy = {key: sum(r.energy_pj[key] for r in reports) for key in first.energy_pj}
    total_energy = sum(energy.values())
    core_energy = sum(r.core_energy_pj for r in reports)
    seconds = total / (first.clock_mhz * 1e6)
    dense_ops = sum(r.dense_ops for r in reports)
    return Report(
        config_name=first.config_name,
        config_hash=first.config_hash,
        clock_mhz=first.clock_mhz,
        instructions=sum(r.instructions for r in reports),
        total_cycles=total,
        time_us=sum(r.time_us for r in reports),
        units=units,
        dram_read_bytes=sum(r.dram_read_bytes for r in reports),
        dram_write_bytes=sum(r.dram_write_bytes for r in reports),
        sram=sram,
        energy_pj=energy,
        total_energy_pj=total_energy,
        core_energy_pj=core_energy,
        dense_ops=dense_ops,
        area_mm2=first.area_mm2,
        **_rates(dense_ops, seconds, total_energy, core_energy, first.area_mm2),
        **_bound(units, sum(r.dram_bound_cycles for r in reports)),
    )
