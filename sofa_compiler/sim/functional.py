"""The functional SOFA machine: executes programs in order on numpy memories.

The machine's memories and registers are `sofa_compiler/sim/state.py`; what
each instruction does is `semantics.py`, `on_demand.py`, `budgeted_sads.py` and `biased.py`, one whole tile
per instruction, so Python overhead is paid per tile, never per element. The
arithmetic is `dialects.numerics`, the same kernels as the `sofa` dialect's
interpreter, so results match it bit for bit.

Every executed instruction makes an `Event` with its `Work` (see
`sofa_compiler/sim/events.py`); the timing model turns events into cycles.
`run(..., on_event=timeline.add)` streams them into a `timing.StreamingTiming`
as they happen (memory then stays bounded however long the run); without
it they are kept in `FunctionalResult.events`. Every run has an instruction
budget (`limits.DEFAULT_MAX_INSTRUCTIONS` unless given), counted over every
executed instruction, loops included; a program that would pass it is refused
before it runs (`budget.check_budget`: the count follows from the code and its constant tables).

Run as a module for a quick check::

    python -m sofa_compiler.sim.functional prog.sofa [--inputs in.npz] [--seed 0] [--expected-hash HEX]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from dialects.sofa_isa import BY_MNEMONIC, LOOP_MNEMONICS, MAX_LOOP_DEPTH, SEMAPHORES
from sofa_compiler.isa.container import Program, RawWord
from sofa_compiler.isa.encoding import Instruction, format_instruction
from sofa_compiler.sim import biased, budgeted_sads, on_demand, semantics
from sofa_compiler.sim.budget import check_budget, leave_finished_bodies
from sofa_compiler.sim.events import Event, SramPeak, Unit, Work
from sofa_compiler.sim.inputs import random_inputs
from sofa_compiler.sim.limits import DEFAULT_MAX_INSTRUCTIONS, check_dram_bytes
from sofa_compiler.sim.progress import PROGRESS_STRIDE, LoopNestPosition
from sofa_compiler.sim.semantics import check_sufa as _check_sufa  # noqa: F401 (the name tests/sim use)
from sofa_compiler.sim.state import DEFAULT_SRAM, InputError, MachineState
from sofa_compiler.sim.timing import StreamingTiming, TimingResult, gc_paused, program_units
from sofa_compiler.sim.traps import Trap, TrapKind

if TYPE_CHECKING:  # the config module validates with jsonschema, slow to import
    from sofa_compiler.sim.config import HardwareConfig

__all__ = ["DEFAULT_SRAM", "FunctionalResult", "InputError", "Machine", "check_loops", "random_inputs"]

_HANDLERS = {**semantics.HANDLERS, **on_demand.HANDLERS, **budgeted_sads.HANDLERS, **biased.HANDLERS}


@dataclass
class FunctionalResult:
    outputs: dict[str, np.ndarray]
    events: list[Event]
    sram_peak: SramPeak
    instructions_executed: int
    registers: list[int] = field(default_factory=list)


def check_loops(code: list[Any]) -> None:
    """Trap unless every `loop` body lies inside the program and inside its enclosing loop, depth <= 4."""
    stack: list[int] = []  # end pcs (exclusive) of open loops
    for pc, instr in enumerate(code):
        while stack and pc >= stack[-1]:
            stack.pop()
        if isinstance(instr, Instruction) and instr.op in LOOP_MNEMONICS:
            end = pc + 1 + instr.args["body"]
            if end > len(code):
                raise Trap(pc, str(instr), f"loop body ends at pc={end}, past the end of the program ({len(code)})")
            if stack and end > stack[-1]:
                raise Trap(pc, str(instr), f"loop body ends at pc={end}, past its enclosing loop's end ({stack[-1]})")
            stack.append(end)
            if len(stack) > MAX_LOOP_DEPTH:
                raise Trap(pc, str(instr), f"loops nest {len(stack)} deep; the hardware supports {MAX_LOOP_DEPTH}")


class Machine(MachineState):
    """A SOFA machine that runs programs: in order, one instruction at a time, recording an `Event` for each.

    The memories, registers and constructor are `MachineState`'s.
    """

    def prepare_tokens(self, code: list[Any]) -> None:
        """Record which units signal each semaphore (for the functional deadlock check)."""
        self.signallers = [set() for _ in range(SEMAPHORES)]
        for instr in code:
            if isinstance(instr, Instruction):
                for bit in range(SEMAPHORES):
                    if instr.signal >> bit & 1:
                        self.signallers[bit].add(instr.unit)

    def run(
        self,
        program: Program,
        inputs: Mapping[str, Any],
        expected_config_hash: str | bytes | None = None,
        max_instructions: int = DEFAULT_MAX_INSTRUCTIONS,
        on_event: Callable[[Event], None] | None = None,
        progress: Callable[[int, float], None] | None = None,
    ) -> FunctionalResult:
        """Execute `program` from pc 0 to `halt`; traps raise `Trap` (past `max_instructions` too).

        Each event goes to `on_event` where given (the result's `events` is then
        empty), else into the result's `events`. `progress(executed, fraction)` is
        called every `PROGRESS_STRIDE` instructions and at the end (`fraction`
        estimated by `LoopNestPosition`).
        """
        self.reset(max_instructions, on_event)
        self.load(program, inputs, expected_config_hash)
        code = program.code
        check_loops(code)
        check_budget(code, max_instructions, self.dram)
        self.prepare_tokens(code)
        # One instruction is one small tile: BLAS threads only add synchronisation
        # (10x slower on a loaded 2-core machine), so the simulator runs them single-threaded.
        with gc_paused(), threadpool_limits(limits=1, user_api="blas"):
            self._run_code(code, progress)
        if progress is not None:
            progress(self.executed, 1.0)
        return FunctionalResult(self.read_outputs(program), self.events, self.peak, self.executed, list(self.regs))

    def _run_code(self, code: list[Any], progress: Callable[[int, float], None] | None) -> None:
        stack: list[list[int]] = []  # [start, end, remaining, count]
        pc = 0
        position = LoopNestPosition(code) if progress is not None else None
        next_report = PROGRESS_STRIDE if progress is not None else 1 << 62  # never, without a listener
        while True:
            if self.executed >= next_report and progress is not None and position is not None:
                progress(self.executed, position.fraction(pc, stack))
                next_report = self.executed + PROGRESS_STRIDE
            if pc >= len(code):
                raise Trap(pc, "end of program", "ran past the last instruction without 'halt'")
            instr = code[pc]
            if isinstance(instr, RawWord):
                raise Trap(pc, str(instr), f"illegal instruction: {instr.reason}")
            if instr.op == "halt":
                self.execute(instr, pc)
                break
            if instr.op in LOOP_MNEMONICS:
                self.execute(instr, pc)
                count = instr.args["count"] if instr.op == "loop" else self.regs[instr.args["count"]]
                body_end = pc + 1 + instr.args["body"]
                if count > 0:
                    stack.append([pc + 1, body_end, count, count])
                    pc += 1
                    continue
                # A run-time count of zero or less skips the body (e.g. fully masked KV tiles).
                pc = body_end
            else:
                self.execute(instr, pc)
                pc += 1
            pc = leave_finished_bodies(stack, pc)

    def execute(self, instr: Instruction, pc: int) -> Event:
        """Execute one instruction (a `loop` only records its event) and record its Event; trap past the budget."""
        if self.executed >= self.max_instructions:
            raise Trap(
                pc,
                str(instr),
                f"instruction budget of {self.max_instructions:,} exhausted (raise it with --max-instructions)",
                TrapKind.BUDGET,
            )
        # Loops execute the same instruction many times; decode and format it once.
        decoded = self._decoded.get(id(instr))
        if decoded is None:
            handler = _HANDLERS.get(instr.op)
            if handler is None or instr.op not in BY_MNEMONIC:
                raise Trap(pc, str(instr), f"illegal instruction '{instr.op}'")
            signals = tuple(bit for bit in range(SEMAPHORES) if instr.signal >> bit & 1)
            decoded = (instr, handler, Unit(instr.unit), signals, format_instruction(instr))
            self._decoded[id(instr)] = decoded
        _, handler, unit, signals, text = decoded
        if self.lanes is not None and instr.args.get("lanes", 0) > self.lanes:
            raise Trap(pc, str(instr), f"lanes = {instr.args['lanes']} exceeds the target's {self.lanes} lanes")
        if instr.wait:
            self._take_tokens(instr, pc)
        work = Work()
        handler(self, instr, pc, work)
        sems = self.sems
        for bit in signals:
            sems[bit] += 1
        event = Event(pc, unit, instr.op, instr.wait, instr.signal, work, text)
        self.record(event)
        self.executed += 1
        return event

    def _take_tokens(self, instr: Instruction, pc: int) -> None:
        for bit in range(SEMAPHORES):
            if not instr.wait >> bit & 1:
                continue
            if self.sems[bit] <= 0 and not (self.signallers[bit] - {instr.unit}):
                who = "no instruction signals it" if not self.signallers[bit] else "only its own unit signals it"
                raise Trap(
                    pc,
                    str(instr),
                    f"token deadlock: waits on s{bit} whose count is 0 and {who}",
                    TrapKind.DEADLOCK,
                )
            # Program order is a legal schedule unless another unit signals later;
            # the count may then go negative (the timing model decides the real order).
            self.sems[bit] -= 1


def run_with_timing(
    machine: Machine,
    program: Program,
    inputs: Mapping[str, Any],
    config: HardwareConfig,
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS,
    progress: Callable[[int, float], None] | None = None,
    keep_events: bool = False,
) -> tuple[FunctionalResult, TimingResult]:
    """Run `program` on `machine` (built for `config`), each event streaming into the timing model.

    Memory stays bounded however many instructions run, unless `keep_events` (for
    a trace) keeps every event and its schedule. The timing model runs alongside,
    so `progress(executed, fraction)` is the run's progress.
    """
    schedule = StreamingTiming(config, None, keep_events, units=program_units(program))
    with gc_paused():
        result = machine.run(program, inputs, config.config_hash(), max_instructions, schedule.add, progress=progress)
        return result, schedule.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sofa_compiler.sim.functional", description=__doc__.split("\n")[0])
    parser.add_argument("program", help="a .sofa container")
    parser.add_argument("--inputs", help=".npz with one array per input symbol (default: random)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    parser.add_argument("--expected-hash", help="the machine's target config hash (hex); mismatch traps")
    parser.add_argument("--dram-bytes", type=int, default=None, help="DRAM size (default: the program's)")
    args = parser.parse_args(argv)
    from sofa_compiler.isa.container import ContainerError

    try:
        with open(args.program, "rb") as handle:
            program = Program.from_bytes(handle.read())
        if args.inputs:
            with np.load(args.inputs) as data:
                inputs = {k: data[k] for k in data.files}
        else:
            inputs = random_inputs(program, args.seed)
        machine = Machine(DEFAULT_SRAM, check_dram_bytes(args.dram_bytes or program.dram_bytes))
        result = machine.run(program, inputs, args.expected_hash)
    except Trap as trap:
        print(str(trap), file=sys.stderr)
        return 2
    except (OSError, ContainerError, InputError, ValueError) as error:
        print(f"sofa-sim: error: {error}", file=sys.stderr)
        return 1
    print(f"instructions executed: {result.instructions_executed}")
    for name, value in result.outputs.items():
        flat = value.reshape(-1)
        print(f"output {name}: {value.dtype} {list(value.shape)} sum={float(np.sum(flat, dtype=np.float64)):.6g}")
        with np.printoptions(precision=6, threshold=16, edgeitems=4):
            print(f"  {flat[:8]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
