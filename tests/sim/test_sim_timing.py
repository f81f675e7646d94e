"""The timing model on hand-built event lists, with hand-computed cycle counts.

Default config figures used below: DRAM 512 B/cycle and 100 cycles latency,
DMA setup 4 cycles; DLZS 4096 shift-adds/cycle, fill 160; KV-gen 512 MACs/cycle,
fill 132; CTRL 1 cycle.
"""

import time

import pytest

from sofa_compiler.sim.config import load_config
from sofa_compiler.sim.costs import Cost, instruction_cost
from sofa_compiler.sim.events import Buffer, Event, Unit, Work
from sofa_compiler.sim.timing import QUEUE_DEPTH, TimingResult, simulate
from sofa_compiler.sim.traps import Trap, TrapKind

CONFIG = load_config(None)


def ev(pc: int, unit: Unit, wait: int = 0, signal: int = 0, opcode: str = "", **work: object) -> Event:
    return Event(pc, unit, opcode or unit.value, wait, signal, Work(**work), text=f"{unit.value}.op #{pc}")  # type: ignore[arg-type]


def schedule(result: TimingResult) -> list[tuple[int, int, int]]:
    return list(zip(result.start, result.issue_end, result.end, strict=True))


def assert_accounting(result: TimingResult) -> None:
    for unit, stats in result.units.items():
        assert min(stats.busy, stats.memory_stall, stats.dependency_stall, stats.idle) >= 0, unit
        assert stats.busy + stats.stall + stats.idle == result.total_cycles, unit


def test_dma_then_dependent_dlzs():
    events = [
        ev(0, Unit.DMA_LOAD, signal=0b1, dram_read_bytes=4096, dram_requests=32),
        ev(1, Unit.DLZS, wait=0b1, shift_adds=40960),
    ]
    result = simulate(events, CONFIG)
    # DMA: 4 setup + 4096/512 = 12 cycles of the engine, data ready 100 cycles later.
    # DLZS: starts when the token arrives, 40960/4096 = 10 cycles + 160 fill.
    assert schedule(result) == [(0, 12, 112), (112, 122, 282)]
    assert result.total_cycles == 282
    dlzs = result.units[Unit.DLZS]
    assert (dlzs.busy, dlzs.memory_stall, dlzs.dependency_stall, dlzs.idle) == (170, 112, 0, 0)
    assert_accounting(result)


def test_independent_units_overlap():
    events = [
        ev(0, Unit.DMA_LOAD, dram_read_bytes=4096),
        ev(1, Unit.KVGEN, macs=512 * 200),
    ]
    result = simulate(events, CONFIG)
    assert schedule(result) == [(0, 12, 112), (0, 200, 332)]
    assert result.total_cycles == max(112, 332)  # not 112 + 332


def test_one_unit_runs_in_order_and_pipelines():
    events = [ev(0, Unit.KVGEN, macs=512 * 200), ev(1, Unit.KVGEN, macs=512 * 100)]
    result = simulate(events, CONFIG)
    # The second starts when the array is free, not when the first's results drain.
    assert schedule(result) == [(0, 200, 332), (200, 300, 432)]
    assert result.units[Unit.KVGEN].busy == 432


def test_dependent_chain_serialises():
    events = [
        ev(0, Unit.KVGEN, signal=0b10, macs=512 * 10),
        ev(1, Unit.DLZS, wait=0b10, signal=0b100, shift_adds=4096 * 5),
        ev(2, Unit.DMA_STORE, wait=0b100, dram_write_bytes=1024),
    ]
    result = simulate(events, CONFIG)
    assert schedule(result) == [(0, 10, 142), (142, 147, 307), (307, 313, 413)]
    store = result.units[Unit.DMA_STORE]
    assert (store.memory_stall, store.dependency_stall) == (0, 307)


def test_counting_semaphore_hands_tokens_in_order():
    events = [
        ev(0, Unit.DMA_LOAD, signal=0b1, dram_read_bytes=512 * 50),  # ready at 4+50+100 = 154
        ev(1, Unit.DMA_LOAD, signal=0b1, dram_read_bytes=512 * 50),  # starts 54, ready 208
        ev(2, Unit.DLZS, wait=0b1, shift_adds=4096 * 10),
        ev(3, Unit.DLZS, wait=0b1, shift_adds=4096 * 10),
    ]
    result = simulate(events, CONFIG)
    assert [result.start[i] for i in (2, 3)] == [154, 208]


def test_competing_consumers_get_tokens_in_program_order():
    events = [
        ev(0, Unit.DMA_LOAD, signal=0b1, dram_read_bytes=512),  # token at 105
        ev(1, Unit.SADS, wait=0b1, sort_rounds=128),
        ev(2, Unit.DLZS, wait=0b1, shift_adds=4096),
        ev(3, Unit.DMA_LOAD, signal=0b1, dram_read_bytes=512 * 100),  # starts 5, token at 209
    ]
    result = simulate(events, CONFIG)
    assert result.start[1] == 105  # the earlier instruction takes the first token
    assert result.start[2] == 209


def test_barrier_waits_for_everything_before_and_holds_everything_after():
    events = [
        ev(0, Unit.DMA_LOAD, dram_read_bytes=4096),  # ends 112
        ev(1, Unit.KVGEN, macs=512),  # ends 1 + 132 = 133
        ev(2, Unit.CTRL, opcode="barrier"),
        ev(3, Unit.DLZS, shift_adds=4096),  # independent, but after the barrier
    ]
    result = simulate(events, CONFIG)
    assert schedule(result)[2] == (133, 134, 134)
    assert result.start[3] == 134
    # The barrier last waited on the KV generation, a compute unit.
    assert result.units[Unit.DLZS].dependency_stall == 134


def test_barrier_stall_after_dma_is_memory_stall():
    events = [
        ev(0, Unit.DMA_LOAD, dram_read_bytes=4096),
        ev(1, Unit.CTRL, opcode="barrier"),
        ev(2, Unit.SUFA, macs=512),
    ]
    result = simulate(events, CONFIG)
    assert result.start[2] == 113
    assert result.units[Unit.SUFA].memory_stall == 113


def test_non_barrier_ctrl_does_not_synchronise():
    events = [ev(0, Unit.DMA_LOAD, dram_read_bytes=4096), ev(1, Unit.CTRL, opcode="loop"), ev(2, Unit.SUFA, macs=512)]
    result = simulate(events, CONFIG)
    assert result.start == [0, 0, 0]


def test_deadlock_on_missing_producer_traps():
    events = [ev(0, Unit.DMA_LOAD, dram_read_bytes=64), ev(7, Unit.DLZS, wait=0b1000, shift_adds=64)]
    with pytest.raises(Trap) as trap:
        simulate(events, CONFIG)
    assert trap.value.pc == 7
    assert trap.value.text == "dlzs.op #7"
    assert trap.value.kind is TrapKind.DEADLOCK
    assert "token deadlock" in trap.value.reason
    assert "s3" in trap.value.reason
    assert str(trap.value).startswith("trap at pc=7 (dlzs.op #7): token deadlock")


def test_cyclic_wait_traps_at_the_earliest_instruction():
    events = [
        ev(0, Unit.SADS, wait=0b01, signal=0b10, sort_rounds=1),
        ev(1, Unit.SUFA, wait=0b10, signal=0b01, macs=1),
    ]
    with pytest.raises(Trap) as trap:
        simulate(events, CONFIG)
    assert trap.value.pc == 0
    assert "waiting on s0" in trap.value.reason
    assert "sufa at pc 1 waits on s1" in trap.value.reason


def test_deterministic():
    events = [
        ev(
            i,
            unit,
            wait=0b1 if unit is Unit.SUFA else 0,
            signal=0b1 if unit is Unit.DMA_LOAD else 0,
            macs=999,
            dram_read_bytes=777,
        )
        for i, unit in enumerate([Unit.DMA_LOAD, Unit.SUFA, Unit.KVGEN] * 50)
    ]
    first, second = simulate(events, CONFIG), simulate(events, CONFIG)
    assert schedule(first) == schedule(second)
    assert first.units == second.units


def test_empty_program():
    result = simulate([], CONFIG)
    assert result.total_cycles == 0
    assert all(stats.idle == 0 for stats in result.units.values())


def test_every_instruction_takes_at_least_a_cycle():
    assert instruction_cost(ev(0, Unit.DLZS), CONFIG) == Cost(1, 160)
    assert instruction_cost(ev(0, Unit.DMA_STORE), CONFIG) == Cost(4, 0)  # no bytes: setup only, no latency


def test_sram_port_limit():
    work = {"macs": 512, "sram_read_bytes": {Buffer.TOKEN: 4096, Buffer.TEMP: 100}}
    assert instruction_cost(ev(0, Unit.KVGEN, **work), CONFIG).occupancy == 1
    limited = CONFIG.with_values({"timing.sram_port_bytes_per_cycle": 64})
    assert instruction_cost(ev(0, Unit.KVGEN, **work), limited).occupancy == 64


def test_progress_is_reported():
    calls: list[tuple[int, int]] = []
    events = [ev(i, Unit.CTRL, opcode="nop") for i in range(10_000)]
    simulate(events, CONFIG, lambda done, total: calls.append((done, total)))
    assert calls[-1] == (10_000, 10_000)
    assert len(calls) > 1
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_hundred_thousand_events_simulate_quickly():
    # A software-pipelined tile loop: load -> DLZS -> SADS -> SU-FA -> store, 20,000 tiles.
    events = []
    for tile in range(20_000):
        pc = 5 * tile
        events += [
            ev(pc, Unit.DMA_LOAD, signal=0b1, dram_read_bytes=32768),
            ev(pc + 1, Unit.DLZS, wait=0b1, signal=0b10, shift_adds=1 << 20, lz_encodes=16384),
            ev(pc + 2, Unit.SADS, wait=0b10, signal=0b100, sort_rounds=1408),
            ev(pc + 3, Unit.SUFA, wait=0b100, signal=0b1000, macs=1 << 20, exps=4096),
            ev(pc + 4, Unit.DMA_STORE, wait=0b1000, dram_write_bytes=4096),
        ]
    began = time.perf_counter()
    result = simulate(events, CONFIG)
    elapsed = time.perf_counter() - began
    assert elapsed < 5.0, f"{len(events)} events took {elapsed:.2f} s"
    # SU-FA (2048 cycles a tile) is the bottleneck, so it sets the pace.
    assert result.units[Unit.SUFA].busy >= 20_000 * 2048
    assert result.total_cycles < 20_000 * 2048 * 1.01
    assert_accounting(result)


def test_dispatch_waits_while_a_unit_queue_is_full():
    """Dispatch is in program order into queues of QUEUE_DEPTH: a full DMA queue holds back a later CTRL op."""
    loads = [ev(pc, Unit.DMA_LOAD, dram_read_bytes=4096) for pc in range(QUEUE_DEPTH + 2)]
    result = simulate([*loads, ev(len(loads), Unit.CTRL)], CONFIG)
    # Two loads too many: the CTRL instruction waits until two loads have left the queue (started).
    assert result.start[-1] == result.start[1] > 0
    shallow = simulate([*loads[: QUEUE_DEPTH - 1], ev(QUEUE_DEPTH, Unit.CTRL)], CONFIG)
    assert shallow.start[-1] == 0
