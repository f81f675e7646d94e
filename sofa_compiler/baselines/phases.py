"""A baseline's work as a stream of unit instructions, scheduled and priced by the simulator's own model.

The baselines are not compiled to ISA programs: their whole-row phases need
row lengths that change from row to row, which the ISA's fixed-size DMA
instructions cannot say without unrolling every row. Instead each step of a
phase is written as the `Event`s the functional machine would have produced
(one per unit instruction, with its `Work` counts), and the timing model
(`StreamingTiming`, `CostModel`) and the energy model (`energy_pj`) price
them exactly as they price a simulated kernel: the same unit rates,
latencies, overlap rules and pJ.

Within a phase, steps are double-buffered as the compiled kernels are: a
step's instructions form a chain (each waits for the one before), the first
takes one of two buffer credits and the last returns it, so step j+1's loads
overlap step j's compute. Phases are separated by barriers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sofa_compiler.sim.config import HardwareConfig
from sofa_compiler.sim.energy import energy_pj
from sofa_compiler.sim.events import Buffer, Event, Unit, Work
from sofa_compiler.sim.timing import StreamingTiming, TimingResult, gc_paused

BUFFER_CREDITS = 2
"""Buffer sets per phase (`tile_plan.KV_BUFFER_SETS` in the compiled kernels)."""

FREE = 7
"""The semaphore that counts free buffer sets; semaphores 0..6 link a step's instructions."""


def dma_load(nbytes: int, requests: int = 1) -> tuple[Unit, Work]:
    """A DMA load of `nbytes` in `requests` contiguous bursts, into SRAM."""
    return Unit.DMA_LOAD, Work(
        dram_read_bytes=nbytes, dram_requests=requests, sram_write_bytes={Buffer.TOKEN: nbytes} if nbytes else {}
    )


def dma_store(nbytes: int, requests: int = 1) -> tuple[Unit, Work]:
    return Unit.DMA_STORE, Work(
        dram_write_bytes=nbytes, dram_requests=requests, sram_read_bytes={Buffer.TOKEN: nbytes} if nbytes else {}
    )


def compute(unit: Unit, work: Work, reads: int = 0, writes: int = 0) -> tuple[Unit, Work]:
    """A compute instruction on `unit` that reads `reads` and writes `writes` SRAM bytes."""
    work.sram_read_bytes = {Buffer.TOKEN: reads} if reads else {}
    work.sram_write_bytes = {Buffer.TOKEN: writes} if writes else {}
    return unit, work


@dataclass
class PhaseProgram:
    """A baseline's instructions in program order, as events."""

    events: list[Event] = field(default_factory=list)

    def _add(self, unit: Unit, opcode: str, work: Work, wait: int = 0, signal: int = 0) -> None:
        self.events.append(Event(len(self.events), unit, opcode, wait, signal, work, f"{unit}.{opcode}"))

    def start(self) -> None:
        """The buffer credits (once, before the first phase)."""
        for _ in range(BUFFER_CREDITS):
            self._add(Unit.CTRL, "post", Work(), signal=1 << FREE)

    def barrier(self) -> None:
        self._add(Unit.CTRL, "barrier", Work())

    def single(self, *instructions: tuple[Unit, Work]) -> None:
        """Instructions between two barriers (a query tile's Q load, its output store)."""
        self.barrier()
        for unit, work in instructions:
            self._add(unit, unit.value, work)
        self.barrier()

    def step(self, chain: Sequence[tuple[Unit, Work]]) -> None:
        """One double-buffered step: each instruction waits for the previous one; the first
        takes a buffer credit, the last gives it back."""
        if len(chain) > FREE:
            raise ValueError(f"a step of {len(chain)} instructions needs more than {FREE} link semaphores")
        for index, (unit, work) in enumerate(chain):
            wait = 1 << (FREE if index == 0 else index - 1)
            signal = 1 << (FREE if index == len(chain) - 1 else index)
            self._add(unit, unit.value, work, wait, signal)


@dataclass(frozen=True)
class Priced:
    """A baseline's cycles, DRAM traffic and energy, from the simulator's timing and energy models."""

    timing: TimingResult
    energy: dict[str, float]

    @property
    def cycles(self) -> int:
        return self.timing.total_cycles

    @property
    def dram_bytes(self) -> int:
        return self.timing.work.dram_read_bytes + self.timing.work.dram_write_bytes

    @property
    def energy_pj(self) -> float:
        return sum(self.energy.values())


def price(program: PhaseProgram, config: HardwareConfig) -> Priced:
    """Schedule `program` on `config`'s hardware and price it."""
    with gc_paused():
        timeline = StreamingTiming(config, units={event.unit for event in program.events})
        for event in program.events:
            timeline.add(event)
        timing = timeline.finish()
    return Priced(timing, energy_pj(timing))
