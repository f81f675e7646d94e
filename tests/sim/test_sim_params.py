"""Every config parameter moves the figures it should: one test per parameter.

Each case names a key, a new value, a workload and the figure it must move
(and which way). `test_every_key_is_covered` fails when a key is added to the
schema without a case here.
"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from dialects.sofa import TargetAttr
from passes.tile_plan import AttentionShape
from sofa_compiler.baselines import Layer, fair_separate
from sofa_compiler.sim.config import SCHEMA_TABLE, HardwareConfig, load_config
from sofa_compiler.sim.events import Buffer, Event, SramPeak, Unit, Work
from sofa_compiler.sim.report import build_report
from sofa_compiler.sim.timing import simulate

BASE = load_config(None)


def one(unit: Unit, opcode: str = "", **work: object) -> list[Event]:
    return [Event(0, unit, opcode or unit.value, 0, 0, Work(**work))]  # type: ignore[arg-type]


def full_pipeline() -> list[Event]:
    """Every unit, DRAM and SRAM traffic, and some slack, so every energy term is non-zero."""
    sram = {Buffer.TOKEN: 8192, Buffer.WEIGHT: 4096, Buffer.TEMP: 2048}
    specs: list[tuple[Unit, int, int, Work]] = [
        (Unit.DMA_LOAD, 0, 0b1, Work(dram_read_bytes=65536, sram_write_bytes={Buffer.TOKEN: 65536})),
        (Unit.KVGEN, 0b1, 0b10, Work(macs=1 << 18, sram_read_bytes=sram)),
        (Unit.DLZS, 0b10, 0b100, Work(shift_adds=1 << 20, lz_encodes=16384, sram_read_bytes=sram)),
        (Unit.SADS, 0b100, 0b1000, Work(sort_rounds=4096, compares=65536)),
        (Unit.SUFA, 0b1000, 0b10000, Work(macs=1 << 20, exps=16384, divs=128, max_updates=64, dense_ops=1 << 26)),
        (Unit.DMA_STORE, 0b10000, 0, Work(dram_write_bytes=16384, sram_read_bytes={Buffer.TEMP: 16384})),
        (Unit.CTRL, 0, 0, Work()),
    ]
    return [Event(pc, unit, unit.value, wait, signal, work) for pc, (unit, wait, signal, work) in enumerate(specs)]


Figure = Callable[[HardwareConfig], float]


def cycles(events: list[Event]) -> Figure:
    return lambda config: simulate(events, config).total_cycles


def time_us(events: list[Event]) -> Figure:
    return lambda config: simulate(events, config).time_us


def energy(events: list[Event]) -> Figure:
    return lambda config: build_report(simulate(events, config)).total_energy_pj


def area(config: HardwareConfig) -> float:
    return build_report(simulate(full_pipeline(), config)).area_mm2


def mul4_pipeline() -> list[Event]:
    """`full_pipeline` with 4-bit multiply MACs in place of the shift-adds (the other counts kept, so the
    cycles are the same and only the predictor's pricing differs)."""
    events = full_pipeline()
    for event in events:
        if event.unit is Unit.DLZS:
            event.work = Work(**{**event.work.__dict__, "shift_adds": 0, "mul4_macs": event.work.shift_adds})
    return events


def mul4_area(config: HardwareConfig) -> float:
    return build_report(simulate(mul4_pipeline(), config)).area_mm2


def sram_occupancy(buffer: Buffer) -> Figure:
    peak = SramPeak({Buffer.TOKEN: 65536, Buffer.WEIGHT: 32768, Buffer.TEMP: 8192})
    return lambda config: build_report(simulate([], config), peak).sram[buffer.value].occupancy


def separate_baseline_cycles(config: HardwareConfig) -> float:
    """The fair separate-stage baseline's cycles: the only figure the row top-k engine moves."""
    shape = AttentionShape(1, 1, 1, 512, 512, 64, 64, 0.25, True)
    return fair_separate(Layer(TargetAttr(config.as_target_dict()), shape, 32), config).cycles


@dataclass
class Case:
    key: str
    value: int | float | str
    figure: Figure
    rises: bool  # the figure goes up with the new value (else down)


DLZS = one(Unit.DLZS, shift_adds=1 << 20, lz_encodes=1 << 14)
SADS_SORT = one(Unit.SADS, sort_rounds=1 << 14)
SADS_CLIP = one(Unit.SADS, compares=1 << 20)
KVGEN = one(Unit.KVGEN, macs=1 << 20)
SUFA_MACS = one(Unit.SUFA, macs=1 << 20)
SUFA_EXPS = one(Unit.SUFA, exps=1 << 16)
SUFA_DIVS = one(Unit.SUFA, divs=1 << 16)
SUFA_MAX = one(Unit.SUFA, max_updates=1 << 12)
DMA = one(Unit.DMA_LOAD, dram_read_bytes=1 << 20)
STORE = one(Unit.DMA_STORE, dram_write_bytes=1 << 16)
CTRL = one(Unit.CTRL, "loop")
SRAM_HEAVY = one(Unit.KVGEN, macs=512, sram_read_bytes={Buffer.WEIGHT: 1 << 16})

TARGET_CASES = [
    Case("target.token_sram", 2 * 196608, sram_occupancy(Buffer.TOKEN), rises=False),
    Case("target.weight_sram", 2 * 98304, sram_occupancy(Buffer.WEIGHT), rises=False),
    Case("target.temp_sram", 14336, sram_occupancy(Buffer.TEMP), rises=True),
    Case("target.dlzs_rows", 64, cycles(DLZS), rises=True),
    Case("target.dlzs_cols", 64, cycles(DLZS), rises=False),
    Case("target.lze_units", 32, cycles(DLZS), rises=True),
    Case("target.sads_cores", 256, cycles(SADS_SORT), rises=False),
    Case("target.sads_inputs_per_round", 6, cycles(SADS_CLIP), rises=True),
    Case("target.kvgen_rows", 64, cycles(KVGEN), rises=True),
    Case("target.kvgen_cols", 8, cycles(KVGEN), rises=False),
    Case("target.sufa_rows", 64, cycles(SUFA_MACS), rises=True),
    Case("target.sufa_cols", 8, cycles(SUFA_MACS), rises=False),
    Case("target.exp_units", 64, cycles(SUFA_EXPS), rises=True),
    Case("target.div_units", 256, cycles(SUFA_DIVS), rises=False),
    Case("target.clock_mhz", 500.0, time_us(KVGEN), rises=True),
    Case("target.dram_bandwidth_gbps", 256.0, cycles(DMA), rises=True),
    Case("target.dram_latency_ns", 300.0, cycles(DMA), rises=True),
    Case("target.row_topk", "quickselect", separate_baseline_cycles, rises=False),
]

FUNCTIONAL_ONLY = ["target.lanes", "target.sads_outputs_per_round"]
"""Keys that change the functional machine's work counts (tiling, sort passes), not the cost of given work."""

TIMING_CASES = [
    Case("timing.ctrl_cycles", 5, cycles(CTRL), rises=True),
    Case("timing.dma_setup_cycles", 40, cycles(STORE), rises=True),
    Case("timing.dlzs_pipeline_cycles", 0, cycles(DLZS), rises=False),
    Case("timing.sads_round_cycles", 2, cycles(SADS_SORT), rises=True),
    Case("timing.sads_pipeline_cycles", 50, cycles(SADS_SORT), rises=True),
    Case("timing.kvgen_pipeline_cycles", 0, cycles(KVGEN), rises=False),
    Case("timing.sufa_pipeline_cycles", 0, cycles(SUFA_MACS), rises=False),
    Case("timing.exp_latency", 40, cycles(SUFA_EXPS), rises=True),
    Case("timing.div_latency", 40, cycles(SUFA_DIVS), rises=True),
    Case("timing.max_update_cycles", 8, cycles(SUFA_MAX), rises=True),
    Case("timing.sram_port_bytes_per_cycle", 32, cycles(SRAM_HEAVY), rises=True),
]

ENERGY_CASES = [
    Case(f"energy.{key}", value, energy(full_pipeline()), rises=rises)
    for key, value, rises in [
        ("dlzs_pj_per_cycle", 58.1, True),
        ("sads_pj_per_cycle", 50.0, False),
        ("kvgen_pj_per_cycle", 300.0, True),
        ("sufa_pj_per_cycle", 400.0, False),
        ("sram_pj_per_cycle", 340.0, True),
        ("other_pj_per_cycle", 0.0, False),
        ("dram_pj_per_bit", 8.0, True),
        ("io_pj_per_bit", 0.5, False),
        ("idle_power_fraction", 0.5, True),
        ("sram_reference_bytes_per_cycle", 64.0, True),  # fewer bytes at full power: each byte costs more
    ]
] + [Case("energy.mul4_pj_per_cycle", 50.0, energy(mul4_pipeline()), rises=False)]

AREA_CASES = [
    Case(f"area.{key}", BASE.area[key] * 2, area, rises=True)
    for key in ("dlzs_mm2", "sads_mm2", "kvgen_mm2", "sufa_mm2", "sram_mm2", "other_mm2")
] + [Case("area.mul4_mm2", BASE.area["mul4_mm2"] * 2, mul4_area, rises=True)]


def test_predictor_energy_differs_when_the_predictor_differs():
    """The same work on the prediction array costs DLZS's power as shift-adds and the
    4-bit multipliers' as MACs; the 4-bit array's own figures make the difference."""
    dlzs, mul4 = energy(full_pipeline())(BASE), energy(mul4_pipeline())(BASE)
    assert simulate(full_pipeline(), BASE).total_cycles == simulate(mul4_pipeline(), BASE).total_cycles
    assert mul4 > dlzs
    same_power = BASE.with_values({"energy.mul4_pj_per_cycle": BASE.energy["dlzs_pj_per_cycle"]})
    assert energy(mul4_pipeline())(same_power) == pytest.approx(dlzs)
    assert mul4_area(BASE) > area(BASE)


CASES = TARGET_CASES + TIMING_CASES + ENERGY_CASES + AREA_CASES


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.key)
def test_parameter_moves_its_figure(case: Case):
    before = case.figure(BASE)
    after = case.figure(BASE.with_values({case.key: case.value}))
    assert after != before
    assert (after > before) == case.rises, f"{case.key}: {before} -> {after}"


@pytest.mark.parametrize("key", FUNCTIONAL_ONLY)
def test_functional_parameter_changes_the_machine_identity(key: str):
    # These reach the timing only through the work counts the functional
    # machine produces; here they must at least make it a different machine.
    changed = BASE.with_values({key: int(BASE.target[key.split(".")[1]]) // 2})
    assert changed.config_hash() != BASE.config_hash()
    assert cycles(full_pipeline())(changed) == cycles(full_pipeline())(BASE)


def test_every_key_is_covered():
    covered = {case.key for case in CASES} | set(FUNCTIONAL_ONLY)
    every = {f"{section}.{key}" for section, params in SCHEMA_TABLE.items() for key in params}
    assert covered == every


def test_clock_converts_dram_latency_and_bandwidth():
    # A slower clock makes a fixed-ns latency and fixed-GB/s bandwidth fewer cycles.
    slow = BASE.with_values({"target.clock_mhz": 500.0})
    assert cycles(DMA)(slow) < cycles(DMA)(BASE)


def test_energy_by_hand():
    # One KV-gen instruction of 512*100 MACs: busy 100 + 132 fill = 232 cycles = total.
    result = simulate(one(Unit.KVGEN, macs=512 * 100), BASE)
    report = build_report(result)
    assert result.total_cycles == 232
    e = report.energy_pj
    assert e["kvgen"] == pytest.approx(232 * 146.21)
    assert e["dlzs"] == pytest.approx(232 * 29.05 * 0.1)  # idle: leakage only
    assert e["sram"] == pytest.approx(232 * 170.23 * 0.1)
    assert e["other"] == pytest.approx(232 * 6.45)
    assert e["dram"] == e["io"] == 0.0


def test_dram_and_sram_energy_by_hand():
    events = one(Unit.DMA_LOAD, dram_read_bytes=1024, sram_write_bytes={Buffer.TOKEN: 1024})
    report = build_report(simulate(events, BASE))
    assert report.energy_pj["dram"] == pytest.approx(1024 * 8 * 4.01)
    assert report.energy_pj["io"] == pytest.approx(1024 * 8 * 1.11)
    total = report.total_cycles  # 4 + 2 + 100
    active = 1024 / 256
    assert report.energy_pj["sram"] == pytest.approx(active * 170.23 + (total - active) * 170.23 * 0.1)
