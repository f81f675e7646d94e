"""Timing and energy model: turns the functional machine's events into cycles and pJ.

Machine model (docs/simulator.md has the full description):

- Every unit runs its own instructions in program order; units overlap.
- An instruction costs `occupancy` cycles of its unit (the issue interval:
  the next instruction of the unit may start after it) and its results, and
  the semaphores it signals, are ready `latency` cycles later (pipeline
  fill/drain, DRAM latency). Occupancy comes from the work counts divided by
  the unit's parallelism in `[target]`; latencies come from `[timing]`.
- Semaphores count: an instruction starts when its unit is free and every
  semaphore in its wait mask holds a token; it takes one token from each on
  start and adds one to each semaphore in its signal mask when its results
  are ready. Tokens are handed out in program order when two waiting
  instructions compete.
- A CTRL `barrier` starts once every earlier instruction has finished, and no
  later instruction starts before it has finished.

The simulation is a discrete-event loop over a heap of completion times; each
event is pushed and popped once, and each step looks at the heads of the
(seven) unit queues, so the cost is O(events · log(in-flight) + events · units).
"""

from __future__ import annotations

import gc
import heapq
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sofa_compiler.sim.events import Event, Unit, Work
from sofa_compiler.sim.traps import TokenDeadlock, token_deadlock

if TYPE_CHECKING:  # the config module validates with jsonschema, slow to import; the functional machine needs none
    from sofa_compiler.sim.config import HardwareConfig

ProgressCallback = Callable[[int, int], None]
"""Called as `progress(instructions_started, instructions_total)`."""

BARRIER_OPCODE = "barrier"
UNITS: tuple[Unit, ...] = tuple(Unit)
MEMORY_UNITS = frozenset({Unit.DMA_LOAD, Unit.DMA_STORE})
PROGRESS_STRIDE = 1 << 12


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@dataclass(frozen=True)
class Cost:
    """What one instruction costs its unit."""

    occupancy: int  # cycles before the unit can start its next instruction
    latency: int = 0  # further cycles before results and signals are ready


@dataclass(frozen=True)
class CostModel:
    """A config's throughput and latency figures, read once for the hot loop."""

    dlzs_pes: int
    lze_units: int
    sads_cores: int
    sads_inputs_per_round: int
    kvgen_pes: int
    sufa_rows: int
    sufa_pes: int
    exp_units: int
    div_units: int
    dram_bytes_per_cycle: float
    dram_latency: int
    ctrl_cycles: int
    dma_setup: int
    dlzs_pipeline: int
    sads_round: int
    sads_pipeline: int
    kvgen_pipeline: int
    sufa_pipeline: int
    exp_latency: int
    div_latency: int
    max_update: int
    sram_port: int

    @staticmethod
    def of(config: HardwareConfig) -> CostModel:
        t, timing = config.target, config.timing
        return CostModel(
            dlzs_pes=int(t["dlzs_rows"]) * int(t["dlzs_cols"]),
            lze_units=int(t["lze_units"]),
            sads_cores=int(t["sads_cores"]),
            sads_inputs_per_round=int(t["sads_inputs_per_round"]),
            kvgen_pes=int(t["kvgen_rows"]) * int(t["kvgen_cols"]),
            sufa_rows=int(t["sufa_rows"]),
            sufa_pes=int(t["sufa_rows"]) * int(t["sufa_cols"]),
            exp_units=int(t["exp_units"]),
            div_units=int(t["div_units"]),
            dram_bytes_per_cycle=config.dram_bytes_per_cycle,
            dram_latency=config.dram_latency_cycles,
            ctrl_cycles=int(timing["ctrl_cycles"]),
            dma_setup=int(timing["dma_setup_cycles"]),
            dlzs_pipeline=int(timing["dlzs_pipeline_cycles"]),
            sads_round=int(timing["sads_round_cycles"]),
            sads_pipeline=int(timing["sads_pipeline_cycles"]),
            kvgen_pipeline=int(timing["kvgen_pipeline_cycles"]),
            sufa_pipeline=int(timing["sufa_pipeline_cycles"]),
            exp_latency=int(timing["exp_latency"]),
            div_latency=int(timing["div_latency"]),
            max_update=int(timing["max_update_cycles"]),
            sram_port=int(timing["sram_port_bytes_per_cycle"]),
        )

    def sram_cycles(self, work: Work) -> int:
        # Optional port limit: each buffer serves at most `sram_port` bytes a cycle.
        if not self.sram_port or not (work.sram_read_bytes or work.sram_write_bytes):
            return 0
        per_buffer: dict[str, int] = {}
        for traffic in (work.sram_read_bytes, work.sram_write_bytes):
            for buffer, count in traffic.items():
                per_buffer[buffer] = per_buffer.get(buffer, 0) + count
        return max(ceil_div(count, self.sram_port) for count in per_buffer.values())

    def dma(self, work: Work, nbytes: int) -> Cost:
        # Requests are pipelined: the engine streams at peak bandwidth and the
        # DRAM latency is paid once, by the last byte.
        latency = self.dram_latency if nbytes or work.dram_requests else 0
        return Cost(self.dma_setup + ceil_div_real(nbytes, self.dram_bytes_per_cycle), latency)

    def dlzs(self, work: Work) -> Cost:
        # LZ encoding (Q -> 5-bit LZ) feeds the shift array, so it comes first.
        # The baseline's 4-bit multipliers take the shift-adders' place in the array.
        shift = ceil_div(work.shift_adds + work.mul4_macs, self.dlzs_pes)
        encode = ceil_div(work.lz_encodes, self.lze_units)
        return Cost(shift + encode, self.dlzs_pipeline)

    def sads(self, work: Work) -> Cost:
        sort = ceil_div(work.sort_rounds, self.sads_cores) * self.sads_round
        # The clipping units sit in line with the sorters (values below the
        # threshold are zeroed as they stream in), each seeing one round's inputs per cycle.
        clip = ceil_div(work.compares, self.sads_cores * self.sads_inputs_per_round)
        return Cost(max(sort, clip), self.sads_pipeline)

    def kvgen(self, work: Work) -> Cost:
        return Cost(ceil_div(work.macs, self.kvgen_pes), self.kvgen_pipeline)

    def sufa(self, work: Work) -> Cost:
        # SA-1, AP (EXP), SA-2 and the O-update (DIV) form one pipeline: the
        # slowest stage sets the rate. AP mode-1 (max update) stalls its PE line.
        streams = max(
            ceil_div(work.macs, self.sufa_pes),
            ceil_div(work.exps, self.exp_units),
            ceil_div(work.divs, self.div_units),
            ceil_div(work.compares, self.sufa_rows),
        )
        max_updates = ceil_div(work.max_updates, self.sufa_rows) * self.max_update
        latency = self.sufa_pipeline
        latency += self.exp_latency if work.exps else 0
        latency += self.div_latency if work.divs else 0
        return Cost(streams + max_updates, latency)

    def cost(self, event: Event) -> Cost:
        work = event.work
        match event.unit:
            case Unit.CTRL:
                cost = Cost(self.ctrl_cycles)
            case Unit.DMA_LOAD:
                cost = self.dma(work, work.dram_read_bytes)
            case Unit.DMA_STORE:
                cost = self.dma(work, work.dram_write_bytes)
            case Unit.DLZS:
                cost = self.dlzs(work)
            case Unit.SADS:
                cost = self.sads(work)
            case Unit.KVGEN:
                cost = self.kvgen(work)
            case Unit.SUFA:
                cost = self.sufa(work)
        # Every instruction takes at least one issue cycle, and no less than its SRAM traffic needs.
        return Cost(max(1, cost.occupancy, self.sram_cycles(work)), cost.latency)


def ceil_div_real(amount: int, rate: float) -> int:
    """ceil(amount / rate), tolerant of float noise (4096 / 512.0000000001 is 8)."""
    quotient = amount / rate
    whole = int(quotient)
    return whole if quotient - whole <= 1e-9 else whole + 1


def instruction_cost(event: Event, config: HardwareConfig) -> Cost:
    """Occupancy and latency of one executed instruction on `config`'s hardware."""
    return CostModel.of(config).cost(event)


@dataclass
class UnitStats:
    """Cycle accounting of one unit; busy + memory_stall + dependency_stall + idle == total."""

    instructions: int = 0
    busy: int = 0  # some instruction of the unit is in flight (issue or pipeline drain)
    memory_stall: int = 0  # next instruction ready in order, waiting on a token a DMA signalled
    dependency_stall: int = 0  # ... waiting on a token (or barrier) from a compute unit
    idle: int = 0  # nothing left to do, or the unit was not needed

    @property
    def stall(self) -> int:
        return self.memory_stall + self.dependency_stall


@dataclass
class TimingResult:
    """Per-instruction schedule and per-unit cycle accounting of one run."""

    config: HardwareConfig
    events: Sequence[Event]
    start: list[int]  # cycle each instruction started
    issue_end: list[int]  # cycle its unit was free again
    end: list[int]  # cycle its results and signals were ready
    total_cycles: int
    units: dict[Unit, UnitStats] = field(default_factory=dict)

    @property
    def time_us(self) -> float:
        return self.total_cycles / float(self.config.target["clock_mhz"])


def _bits(mask: int) -> tuple[int, ...]:
    bits = []
    while mask:
        low = mask & -mask
        bits.append(low.bit_length() - 1)
        mask ^= low
    return tuple(bits)


class _Scheduler:
    """The discrete-event loop; one instance per `simulate` call.

    Units are numbered by their position in `UNITS`; per-instruction data
    lives in flat lists, since this loop is the simulator's hot path.
    """

    def __init__(self, events: Sequence[Event], config: HardwareConfig):
        self.events = events
        n = len(events)
        unit_number = {unit: number for number, unit in enumerate(UNITS)}
        model = CostModel.of(config)
        self.costs = [model.cost(event) for event in events]
        self.waits = [_bits(event.wait_mask) for event in events]
        self.signals = [_bits(event.signal_mask) for event in events]
        self.from_memory = [event.unit in MEMORY_UNITS for event in events]
        self.queues: list[list[int]] = [[] for _ in UNITS]
        for index, event in enumerate(events):
            self.queues[unit_number[event.unit]].append(index)
        barriers = [i for i, e in enumerate(events) if e.unit is Unit.CTRL and e.opcode == BARRIER_OPCODE]
        self.barriers = [*barriers, n]  # sentinel: no more barriers
        self.barrier_pos = 0
        self.gate = self.barriers[0]  # the next unfinished barrier; later instructions wait for it
        self.head = [0] * len(UNITS)
        self.unit_free = [0] * len(UNITS)  # when the unit's head became ready in order
        self.covered = [0] * len(UNITS)  # end of the union of the unit's in-flight intervals
        self.stats = [UnitStats(instructions=len(queue)) for queue in self.queues]
        # Available tokens per semaphore: FIFO of (ready cycle, signalled by a DMA).
        self.tokens: dict[int, deque[tuple[int, bool]]] = {}
        self.heap: list[tuple[int, int]] = []  # (cycle, instruction) completions; instruction -1 = unit wake-up
        self.start = [0] * n
        self.issue_end = [0] * n
        self.end = [0] * n
        self.started = 0
        self.in_flight = 0
        self.release = (0, False)  # (cycle, memory-caused) of the last finished barrier
        self.last_done = (0, False)  # (cycle, memory-caused) of the latest completion
        self.barrier_cause = False  # memory-caused, for the barrier in flight

    def can_start(self, index: int) -> bool:
        if index > self.gate:
            return False
        if index == self.gate and (self.started != index or self.in_flight):
            return False
        tokens = self.tokens
        return all(tokens.get(bit) for bit in self.waits[index])

    def begin(self, unit: int, index: int, now: int) -> None:
        cost = self.costs[index]
        is_barrier = index == self.gate
        # The latest of the things it waited for decides what kind of stall it was:
        # a barrier waits for the last completion, others for the last barrier and their tokens.
        cause_time, cause_memory = self.last_done if is_barrier else self.release
        for bit in self.waits[index]:
            token_time, token_memory = self.tokens[bit].popleft()
            if token_time >= cause_time:
                cause_time, cause_memory = token_time, token_memory
        if is_barrier:
            self.barrier_cause = cause_memory
        stats, covered = self.stats[unit], self.covered[unit]
        stall = now - max(self.unit_free[unit], covered)
        if stall > 0:
            if cause_memory:
                stats.memory_stall += stall
            else:
                stats.dependency_stall += stall
        issue_end = now + cost.occupancy
        end = issue_end + cost.latency
        stats.busy += end - max(now, covered)
        self.covered[unit] = max(covered, end)
        self.start[index], self.issue_end[index], self.end[index] = now, issue_end, end
        self.unit_free[unit] = issue_end
        self.head[unit] += 1
        self.started += 1
        self.in_flight += 1
        heapq.heappush(self.heap, (end, index))
        if cost.latency:
            heapq.heappush(self.heap, (issue_end, -1))  # wake the unit when it frees up

    def finish(self, index: int, now: int) -> None:
        if index < 0:
            return
        self.in_flight -= 1
        memory = self.from_memory[index]
        self.last_done = (now, memory)
        for bit in self.signals[index]:
            self.tokens.setdefault(bit, deque()).append((now, memory))
        if index == self.gate:
            self.barrier_pos += 1
            self.gate = self.barriers[self.barrier_pos]
            # Instructions held back by the barrier stalled on whatever the barrier waited for.
            self.release = (now, self.barrier_cause)

    def start_ready(self, now: int) -> None:
        """Start, in program order, every head instruction that can start at `now`.

        One pass suffices: every instruction occupies its unit for at least a
        cycle and signals no earlier than that, so a start never enables
        another start at the same cycle.
        """
        head, unit_free, queues = self.head, self.unit_free, self.queues
        heads = [
            (queue[head[unit]], unit)
            for unit, queue in enumerate(queues)
            if unit_free[unit] <= now and head[unit] < len(queue)
        ]
        if len(heads) > 1:
            heads.sort()
        tokens, waits = self.tokens, self.waits
        for index, unit in heads:
            # `can_start`, inlined: this is the hot loop.
            gate = self.gate
            if index > gate or (index == gate and (self.started != index or self.in_flight)):
                continue
            for bit in waits[index]:
                if not tokens.get(bit):
                    break
            else:
                self.begin(unit, index, now)

    def deadlock(self) -> TokenDeadlock:
        blocked = sorted(
            (queue[self.head[unit]], UNITS[unit])
            for unit, queue in enumerate(self.queues)
            if self.head[unit] < len(queue)
        )
        index, _ = blocked[0]
        event = self.events[index]
        text = event.text or f"{event.unit}.{event.opcode}"
        missing = sum(1 << bit for bit in self.waits[index] if not self.tokens.get(bit))
        others = "; ".join(
            f"{unit} at pc {self.events[i].pc} waits on {_mask_text(self.events[i].wait_mask)}"
            for i, unit in blocked[1:]
        )
        detail = f"{event.unit}; also blocked: {others}" if others else str(event.unit)
        if missing:
            return token_deadlock(event.pc, text, missing, detail)
        # Unreachable while every earlier instruction is either done or blocked on a token; kept for safety.
        return TokenDeadlock(event.pc, text, f"token deadlock: no unit can make progress ({detail})")


def _mask_text(mask: int) -> str:
    return ", ".join(f"s{bit}" for bit in _bits(mask)) or "nothing"


def simulate(events: Sequence[Event], config: HardwareConfig, progress: ProgressCallback | None = None) -> TimingResult:
    """Schedule `events` on `config`'s hardware. Raises `TokenDeadlock` (a `Trap`) on a token deadlock."""
    with gc_paused():
        return _simulate(events, config, progress)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a loop that allocates many objects and no cycles.

    Without this, the collector rescans the (large) event list over and over and
    triples the time of a 1e5-event simulation or trace.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _simulate(events: Sequence[Event], config: HardwareConfig, progress: ProgressCallback | None) -> TimingResult:
    s = _Scheduler(events, config)
    total = len(events)
    heap = s.heap
    now = 0
    next_report = PROGRESS_STRIDE
    while s.started < total:
        s.start_ready(now)
        if progress is not None and s.started >= next_report:
            progress(s.started, total)
            next_report = s.started + PROGRESS_STRIDE
        if s.started == total:
            break
        if not heap:
            raise s.deadlock()
        now = heap[0][0]
        while heap and heap[0][0] == now:
            s.finish(heapq.heappop(heap)[1], now)
    total_cycles = max(s.end, default=0)
    for stats in s.stats:
        stats.idle = total_cycles - stats.busy - stats.stall
    if progress is not None:
        progress(total, total)
    units = dict(zip(UNITS, s.stats, strict=True))
    return TimingResult(config, events, s.start, s.issue_end, s.end, total_cycles, units)


ENERGY_KEYS: dict[Unit, str] = {Unit.DLZS: "dlzs", Unit.SADS: "sads", Unit.KVGEN: "kvgen", Unit.SUFA: "sufa"}
"""Units with their own Table III power; CTRL and the DMA engines are in `other`."""


def energy_pj(result: TimingResult) -> dict[str, float]:
    """Energy by component in pJ: dlzs, sads, kvgen, sufa, sram, other, dram, io.

    - Engines draw their pJ/cycle while busy and `idle_power_fraction` of it
      otherwise (stalls included: a waiting engine is clock-gated, not off).
    - SRAM: `sram_pj_per_cycle` is the draw at `sram_reference_bytes_per_cycle`
      of traffic, so each byte costs pJ/cycle / reference bytes; the cycles
      not covered by traffic draw the idle fraction.
    - `other` (scheduler, controller, DMA engines) is always on.
    - DRAM and interface energy are per bit moved.
    """
    energy, total = result.config.energy, result.total_cycles
    idle = float(energy["idle_power_fraction"])
    out: dict[str, float] = {}
    for unit, key in ENERGY_KEYS.items():
        power = float(energy[f"{key}_pj_per_cycle"])
        busy = result.units[unit].busy
        out[key] = busy * power + (total - busy) * power * idle
    sram_bytes = dram_bits = 0
    for event in result.events:
        work = event.work
        sram_bytes += sum(work.sram_read_bytes.values()) + sum(work.sram_write_bytes.values())
        dram_bits += 8 * (work.dram_read_bytes + work.dram_write_bytes)
    sram_power = float(energy["sram_pj_per_cycle"])
    sram_active = sram_bytes / float(energy["sram_reference_bytes_per_cycle"])
    out["sram"] = sram_active * sram_power + max(0.0, total - sram_active) * sram_power * idle
    out["other"] = total * float(energy["other_pj_per_cycle"])
    out["dram"] = dram_bits * float(energy["dram_pj_per_bit"])
    out["io"] = dram_bits * float(energy["io_pj_per_bit"])
    return out
