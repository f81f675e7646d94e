"""The report (figures, JSON, tables) and the Chrome/Perfetto trace."""

import json
from pathlib import Path

import pytest

from sofa_compiler.sim.config import load_config
from sofa_compiler.sim.costs import CostModel
from sofa_compiler.sim.events import Buffer, Event, SramPeak, Unit, Work
from sofa_compiler.sim.report import build_report, combine_reports
from sofa_compiler.sim.timing import UNITS, simulate
from sofa_compiler.sim.trace import chrome_trace, write_trace
from sofa_compiler.sim.trace_rules import violations

CONFIG = load_config(None)


def tile_pipeline(tiles: int) -> list[Event]:
    events = []
    for tile in range(tiles):
        pc = 6 * tile
        events += [
            Event(
                pc, Unit.DMA_LOAD, "load", 0, 0b1, Work(dram_read_bytes=32768, sram_write_bytes={Buffer.TOKEN: 32768})
            ),
            Event(pc + 1, Unit.KVGEN, "kvgen", 0b1, 0b10, Work(macs=1 << 18)),
            Event(pc + 2, Unit.DLZS, "dlzs", 0b10, 0b100, Work(shift_adds=1 << 20)),
            Event(pc + 3, Unit.SADS, "sads", 0b100, 0b1000, Work(sort_rounds=1408)),
            Event(pc + 4, Unit.SUFA, "sufa", 0b1000, 0b10000, Work(macs=1 << 20, exps=4096, dense_ops=1 << 24)),
            Event(pc + 5, Unit.DMA_STORE, "store", 0b10000, 0, Work(dram_write_bytes=4096)),
        ]
    return [*events, Event(6 * tiles, Unit.CTRL, "barrier", 0, 0, Work())]


def test_report_figures():
    result = simulate(tile_pipeline(4), CONFIG)
    report = build_report(result, SramPeak({Buffer.TOKEN: 65536, Buffer.WEIGHT: 0, Buffer.TEMP: 28672}))
    assert report.instructions == 25
    assert report.total_cycles == 9690  # the example in docs/simulator.md
    assert report.total_cycles == result.total_cycles
    assert report.time_us == pytest.approx(result.total_cycles / 1000.0)
    assert report.dram_read_bytes == 4 * 32768
    assert report.dram_write_bytes == 4 * 4096
    assert report.sram["token"].occupancy == pytest.approx(65536 / 196608)
    assert report.sram["temp"].occupancy == 1.0
    assert set(report.units) == {unit.value for unit in Unit}
    sufa = report.units["sufa"]
    assert sufa.instructions == 4
    assert sufa.busy_cycles + sufa.memory_stall_cycles + sufa.dependency_stall_cycles + sufa.idle_cycles == (
        report.total_cycles
    )
    # The first KV generation waits on the first load: a memory stall.
    assert report.units["kvgen"].memory_stall_cycles > 0
    assert report.units["sufa"].dependency_stall_cycles > 0
    seconds = report.total_cycles * 1e-9
    assert report.effective_gops == pytest.approx(4 * (1 << 24) / seconds / 1e9)
    assert report.gops_per_watt == pytest.approx(report.effective_gops / (report.total_energy_pj * 1e-12 / seconds))
    assert report.core_gops_per_watt > report.gops_per_watt
    assert report.total_energy_pj == pytest.approx(sum(report.energy_pj.values()))
    assert report.gops_per_mm2 == pytest.approx(report.effective_gops / 5.694)


def test_json_is_stable_and_complete():
    first = build_report(simulate(tile_pipeline(3), CONFIG)).to_json()
    second = build_report(simulate(tile_pipeline(3), CONFIG)).to_json()
    assert first == second
    data = json.loads(first)
    assert list(data)[:6] == ["config_name", "config_hash", "clock_mhz", "instructions", "total_cycles", "time_us"]
    assert list(data["energy_pj"]) == ["dlzs", "sads", "kvgen", "sufa", "sram", "other", "dram", "io"]
    assert set(data["units"]["dlzs"]) == {
        "instructions",
        "busy_cycles",
        "memory_stall_cycles",
        "dependency_stall_cycles",
        "idle_cycles",
        "utilization",
        "bound_cycles",
    }
    assert list(data)[-3:] == ["dram_bound_cycles", "bound_by", "bound_cycles"]


def test_bounds_are_each_units_work_at_its_rate_and_below_the_run():
    result = simulate(tile_pipeline(4), CONFIG)
    report = build_report(result)
    model = CostModel.of(CONFIG)
    events = tile_pipeline(4)
    for unit in UNITS:
        expected = sum(model.cost(event).occupancy for event in events if event.unit is unit)
        assert report.units[unit.value].bound_cycles == expected
        assert expected <= report.units[unit.value].busy_cycles
    # 4 x 32 KiB read at 512 B/cycle; the writes are fewer.
    assert report.dram_bound_cycles == 4 * 32768 // 512
    bounds = {name: unit.bound_cycles for name, unit in report.units.items()} | {"dram": report.dram_bound_cycles}
    assert report.bound_cycles == max(bounds.values()) == bounds[report.bound_by] <= report.total_cycles
    assert report.bound_by == "sufa"  # 2^20 MACs on 512 PEs a tile, the longest
    combined = combine_reports([report, report])
    assert combined.units["sufa"].bound_cycles == 2 * report.units["sufa"].bound_cycles
    assert (combined.bound_by, combined.dram_bound_cycles) == ("sufa", 2 * report.dram_bound_cycles)


def test_table_renders():
    text = build_report(simulate(tile_pipeline(2), CONFIG)).render_text(width=120)
    for needle in ("total cycles", "GOPS/W", "mem. stall", "dma_load", "token SRAM peak", "sufa", "total", "bound by"):
        assert needle in text


def test_trace_has_lanes_per_unit_and_keeps_every_slice(tmp_path: Path):
    events = tile_pipeline(3)
    result = simulate(events, CONFIG)
    path = tmp_path / "trace.json"
    write_trace(path, result)
    trace = json.loads(path.read_text())
    assert violations(trace) == []
    records = trace["traceEvents"]
    names = {r["tid"]: r["args"]["name"] for r in records if r["ph"] == "M" and r["name"] == "thread_name"}
    assert {unit.value for unit in UNITS} <= set(names.values())
    # DMA loads are issued before the previous one's data arrives: a second lane keeps them apart.
    assert "dma_load #2" in names.values()
    slices = sorted((r for r in records if r["ph"] == "X"), key=lambda r: r["args"]["start_cycle"])
    assert len(slices) == len(events)
    by_pc = {record["args"]["pc"]: record for record in slices}
    for index, event in enumerate(events):
        record = by_pc[event.pc]
        assert names[record["tid"]].split(" #")[0] == event.unit.value
        assert record["ts"] == pytest.approx(result.start[index] / 1000.0)  # µs at 1 GHz
        assert record["dur"] == pytest.approx((result.end[index] - result.start[index]) / 1000.0)
        assert record["name"] == event.opcode
    load = by_pc[0]["args"]
    assert load["work"] == {"dram_read_bytes": 32768, "sram_write_bytes": {"token": 32768}}
    assert load["signal"] == [0]
    assert trace["otherData"]["total_cycles"] == result.total_cycles


def test_trace_time_follows_the_clock():
    events = tile_pipeline(1)
    fast = chrome_trace(simulate(events, CONFIG))
    slow = chrome_trace(simulate(events, CONFIG.with_values({"target.clock_mhz": 500.0})))
    kvgen = next(r for r in fast["traceEvents"] if r.get("name") == "kvgen")
    kvgen_slow = next(r for r in slow["traceEvents"] if r.get("name") == "kvgen")
    assert kvgen_slow["dur"] == pytest.approx(2 * kvgen["dur"])
