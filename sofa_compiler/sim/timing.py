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
- Instructions are dispatched to the unit queues in program order; a unit's
  queue holds `QUEUE_DEPTH` instructions, and dispatch waits while the next
  instruction's queue is full.

The simulation is a discrete-event loop over a heap of completion times; each
event is pushed and popped once, and each step looks at the heads of the
(seven) unit queues, so the cost is O(events · log(in-flight) + events · units).
`StreamingTiming` takes the events one at a time as the functional machine executes
them, so memory does not grow with the length of a run (see `QUEUE_DEPTH`).
"""

from __future__ import annotations

import functools
import gc
import heapq
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sofa_compiler.isa.container import Program
from sofa_compiler.isa.encoding import Instruction
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
    """Cycle accounting of one run: per unit, in total, and (when kept) per instruction.

    `events`, `start`, `issue_end` and `end` list every instruction only when
    the run kept them (`simulate`, or `StreamingTiming(keep_events=True)` for a
    trace); a streamed run keeps the totals: `instructions`, `work` (every
    `Work` count summed) and `opcodes` (executions per opcode).
    """

    config: HardwareConfig
    events: Sequence[Event]
    start: list[int]  # cycle each instruction started
    issue_end: list[int]  # cycle its unit was free again
    end: list[int]  # cycle its results and signals were ready
    total_cycles: int
    units: dict[Unit, UnitStats] = field(default_factory=dict)
    instructions: int = 0
    work: Work = field(default_factory=Work)
    opcodes: dict[str, int] = field(default_factory=dict)

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


NO_BARRIER = 1 << 62
"""The gate when no unfinished barrier is known: above every instruction index."""

QUEUE_DEPTH = 1 << 15
"""Instructions each unit's queue holds; dispatch, in program order, stalls while the next one's queue is full.

Compiled kernels synchronise their units through semaphores, so no queue
gets anywhere near this deep and the bound never delays them; it matters
for a unit that falls ever further behind (a DMA loop that the control unit
outruns), and it is what bounds the timing model's memory: at most about
`QUEUE_DEPTH` unstarted instructions per unit, however long the run.
"""

BATCH = 256
"""Instructions `StreamingTiming.add` collects before it runs the loop; any batch gives the same schedule (the loop
only advances past what the instructions seen so far decide), a larger one pays the loop's overhead less often."""


def _add_work(total: dict[str, Any], work: Work) -> None:
    """Add `work`'s counts to `total` (a `Work`'s ``__dict__``); most counts are zero, so test before adding."""
    for key, value in work.__dict__.items():
        if value:
            if key in _SRAM_FIELDS:
                counts = total[key]
                for buffer, count in value.items():
                    counts[buffer] = counts.get(buffer, 0) + count
            else:
                total[key] += value


_SRAM_FIELDS = frozenset({"sram_read_bytes", "sram_write_bytes"})


@functools.cache
def _mask_bits(mask: int) -> tuple[int, ...]:
    return _bits(mask)


class StreamingTiming:
    """The discrete-event loop, fed one event at a time in program order (`add`), then `finish`ed.

    Memory holds the instructions not yet finished (at most about
    `QUEUE_DEPTH` per unit) plus per-unit and total counts, so a run of any
    length fits. The schedule does not depend on how the events are fed: the
    loop only moves past a cycle once the instructions not yet seen cannot
    start at it (every unit the program uses has its next instruction queued,
    or a barrier or a full queue holds later ones back). With
    `keep_events` it also keeps every event and its schedule (for traces).
    Units are numbered by their position in `UNITS`; this is the simulator's
    hot path, so per-instruction data lives in plain tuples.
    """

    def __init__(
        self,
        config: HardwareConfig,
        progress: ProgressCallback | None = None,
        keep_events: bool = False,
        units: Collection[Unit] = UNITS,
    ):
        self.config = config
        self.model = CostModel.of(config)
        self.progress = progress
        self.keep = keep_events
        self.unit_number = {unit: number for number, unit in enumerate(UNITS)}
        # Units the program has no instruction for never get one: the loop need not wait to see their next.
        self.idle_units = [unit not in units for unit in UNITS]
        # index -> (event, cost, waits, signals, from memory), from `add` until its completion.
        self.info: dict[int, tuple[Event, Cost, tuple[int, ...], tuple[int, ...], bool]] = {}
        self.queues: list[deque[int]] = [deque() for _ in UNITS]
        self.dispatched = NO_BARRIER  # the first instruction not yet dispatched (its unit's queue is full)
        self.barriers: deque[int] = deque()  # known unfinished barriers
        self.gate = NO_BARRIER  # the next unfinished barrier; later instructions wait for it
        self.count = 0  # instructions added
        self.ended = False
        self.unit_free = [0] * len(UNITS)  # when the unit's head became ready in order
        self.covered = [0] * len(UNITS)  # end of the union of the unit's in-flight intervals
        self.stats = [UnitStats() for _ in UNITS]
        # Available tokens per semaphore: FIFO of (ready cycle, signalled by a DMA).
        self.tokens: dict[int, deque[tuple[int, bool]]] = {}
        self.heap: list[tuple[int, int]] = []  # (cycle, instruction) completions; instruction -1 = unit wake-up
        self.now = 0
        self.started = 0
        self.in_flight = 0
        self.total_cycles = 0
        self.release = (0, False)  # (cycle, memory-caused) of the last finished barrier
        self.last_done = (0, False)  # (cycle, memory-caused) of the latest completion
        self.barrier_cause = False  # memory-caused, for the barrier in flight
        self.next_report = PROGRESS_STRIDE
        self.next_advance = BATCH  # `add` runs the loop once per BATCH instructions
        self.work = Work()
        self.work_counts = self.work.__dict__
        self.opcodes: dict[str, int] = {}
        self.events: list[Event] = []
        self.start: list[int] = []
        self.issue_end: list[int] = []
        self.end: list[int] = []

    def add(self, event: Event) -> None:
        """The next executed instruction, in program order."""
        index = self.count
        self.count += 1
        unit = event.unit
        number = self.unit_number[unit]
        self.info[index] = (
            event,
            self.model.cost(event),
            _mask_bits(event.wait_mask),
            _mask_bits(event.signal_mask),
            unit in MEMORY_UNITS,
        )
        queue = self.queues[number]
        queue.append(index)
        if len(queue) == QUEUE_DEPTH + 1:
            self.dispatched = min(self.dispatched, index)
        self.stats[number].instructions += 1
        opcode = event.opcode
        if opcode == BARRIER_OPCODE and unit is Unit.CTRL:
            self.barriers.append(index)
            self.gate = self.barriers[0]
        _add_work(self.work_counts, event.work)
        opcodes = self.opcodes
        opcodes[opcode] = opcodes.get(opcode, 0) + 1
        if self.keep:
            self.events.append(event)
            self.start.append(0)
            self.issue_end.append(0)
            self.end.append(0)
        if self.count >= self.next_advance:
            self.next_advance = self.count + BATCH
            self._advance()

    def finish(self) -> TimingResult:
        """Schedule what is left; the result. Raises `TokenDeadlock` (a `Trap`) on a token deadlock."""
        self.ended = True
        self._advance()
        for stats in self.stats:
            stats.idle = self.total_cycles - stats.busy - stats.stall
        if self.progress is not None:
            self.progress(self.count, self.count)
        units = dict(zip(UNITS, self.stats, strict=True))
        events = self.events if self.keep else []
        return TimingResult(
            self.config,
            events,
            self.start,
            self.issue_end,
            self.end,
            self.total_cycles,
            units,
            self.count,
            self.work,
            dict(sorted(self.opcodes.items())),
        )

    def sees_ahead(self) -> bool:
        """Whether the instructions not yet added cannot start now: the schedule so far is then exact."""
        if self.ended or self.gate != NO_BARRIER or self.dispatched != NO_BARRIER:
            return True
        return all(queue or idle for queue, idle in zip(self.queues, self.idle_units, strict=True))

    def dispatch_limit(self) -> int:
        """The first instruction not yet dispatched: the first that finds its unit's queue full."""
        return min((queue[QUEUE_DEPTH] for queue in self.queues if len(queue) > QUEUE_DEPTH), default=NO_BARRIER)

    def _advance(self) -> None:
        """Run the loop as far as the instructions added so far decide it."""
        heap = self.heap
        while True:
            self.start_ready(self.now)
            if self.progress is not None and self.started >= self.next_report:
                self.progress(self.started, self.count)
                self.next_report = self.started + PROGRESS_STRIDE
            waiting = self.count - self.started
            if not waiting:
                return
            if not self.sees_ahead():
                return  # wait for more instructions
            if not heap:
                raise self.deadlock()
            now = self.now = heap[0][0]
            while heap and heap[0][0] == now:
                self.complete(heapq.heappop(heap)[1], now)

    def begin(self, unit: int, index: int, now: int) -> None:
        _, cost, waits, _, _ = self.info[index]
        is_barrier = index == self.gate
        # The latest of the things it waited for decides what kind of stall it was:
        # a barrier waits for the last completion, others for the last barrier and their tokens.
        cause_time, cause_memory = self.last_done if is_barrier else self.release
        for bit in waits:
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
        if self.keep:
            self.start[index], self.issue_end[index], self.end[index] = now, issue_end, end
        if end > self.total_cycles:
            self.total_cycles = end
        self.unit_free[unit] = issue_end
        queue = self.queues[unit]
        queue.popleft()
        if len(queue) >= QUEUE_DEPTH:  # it was full: the next one waiting for its queue may now be dispatched
            self.dispatched = self.dispatch_limit()
        self.started += 1
        self.in_flight += 1
        heapq.heappush(self.heap, (end, index))
        if cost.latency:
            heapq.heappush(self.heap, (issue_end, -1))  # wake the unit when it frees up

    def complete(self, index: int, now: int) -> None:
        if index < 0:
            return
        _, _, _, signals, memory = self.info.pop(index)
        self.in_flight -= 1
        self.last_done = (now, memory)
        for bit in signals:
            self.tokens.setdefault(bit, deque()).append((now, memory))
        if index == self.gate:
            self.barriers.popleft()
            self.gate = self.barriers[0] if self.barriers else NO_BARRIER
            # Instructions held back by the barrier stalled on whatever the barrier waited for.
            self.release = (now, self.barrier_cause)

    def start_ready(self, now: int) -> None:
        """Start, in program order, every head instruction that can start at `now`.

        One pass suffices: every instruction occupies its unit for at least a
        cycle and signals no earlier than that, so a start never enables
        another start at the same cycle.
        """
        unit_free, queues = self.unit_free, self.queues
        heads = [(queue[0], unit) for unit, queue in enumerate(queues) if queue and unit_free[unit] <= now]
        if len(heads) > 1:
            heads.sort()
        tokens, info = self.tokens, self.info
        for index, unit in heads:
            gate = self.gate
            if index > gate or (index == gate and (self.started != index or self.in_flight)):
                continue
            if index >= self.dispatched:  # (a start above may have made room)
                continue
            for bit in info[index][2]:
                if not tokens.get(bit):
                    break
            else:
                self.begin(unit, index, now)

    def deadlock(self) -> TokenDeadlock:
        blocked = sorted((queue[0], UNITS[unit]) for unit, queue in enumerate(self.queues) if queue)
        index, _ = blocked[0]
        event, _, waits, _, _ = self.info[index]
        text = event.text or f"{event.unit}.{event.opcode}"
        missing = sum(1 << bit for bit in waits if not self.tokens.get(bit))
        others = "; ".join(
            f"{unit} at pc {self.info[i][0].pc} waits on {_mask_text(self.info[i][0].wait_mask)}"
            for i, unit in blocked[1:]
        )
        detail = f"{event.unit}; also blocked: {others}" if others else str(event.unit)
        if missing:
            return token_deadlock(event.pc, text, missing, detail)
        # Unreachable while every earlier instruction is either done or blocked on a token; kept for safety.
        return TokenDeadlock(event.pc, text, f"token deadlock: no unit can make progress ({detail})")


def program_units(program: Program) -> frozenset[Unit]:
    """The units `program`'s code has instructions for (a `StreamingTiming`'s `units`)."""
    return frozenset(Unit(instr.unit) for instr in program.code if isinstance(instr, Instruction))


def _mask_text(mask: int) -> str:
    return ", ".join(f"s{bit}" for bit in _bits(mask)) or "nothing"


def simulate(events: Sequence[Event], config: HardwareConfig, progress: ProgressCallback | None = None) -> TimingResult:
    """Schedule a whole list of `events` on `config`'s hardware, keeping the per-instruction schedule.

    Raises `TokenDeadlock` (a `Trap`) on a token deadlock. A run too long to
    keep in memory streams its events into a `StreamingTiming` instead.
    """
    with gc_paused():
        timeline = StreamingTiming(config, progress, keep_events=True)
        for event in events:
            timeline.add(event)
        return timeline.finish()


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
        power = result.config.unit_pj_per_cycle(key, result.work.shift_adds, result.work.mul4_macs)
        busy = result.units[unit].busy
        out[key] = busy * power + (total - busy) * power * idle
    work = result.work
    sram_bytes = sum(work.sram_read_bytes.values()) + sum(work.sram_write_bytes.values())
    dram_bits = 8 * (work.dram_read_bytes + work.dram_write_bytes)
    sram_power = float(energy["sram_pj_per_cycle"])
    sram_active = sram_bytes / float(energy["sram_reference_bytes_per_cycle"])
    out["sram"] = sram_active * sram_power + max(0.0, total - sram_active) * sram_power * idle
    out["other"] = total * float(energy["other_pj_per_cycle"])
    out["dram"] = dram_bits * float(energy["dram_pj_per_bit"])
    out["io"] = dram_bits * float(energy["io_pj_per_bit"])
    return out
