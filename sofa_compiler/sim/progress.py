"""How far a simulated run has got, for progress bars with an honest ETA.

The functional machine executes the program and streams each instruction's
event into the timing model as it goes, so the functional machine's progress
is the run's. It does not know its total up front (loop counts may come from
registers): `LoopNestPosition` estimates the fraction done from where the
machine is in the program's loop nest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from dialects.sofa_isa import LOOP_MNEMONICS
from sofa_compiler.isa.encoding import Instruction

PROGRESS_STRIDE = 1 << 12
"""Instructions between two progress reports of the functional machine."""


class RunProgress(Protocol):
    """What a simulated run reports as it goes; `sofa_compiler.cli.simulation_progress` draws it."""

    def kernel(self, name: str) -> None:
        """A kernel call of a model starts."""

    def functional(self, executed: int, fraction: float) -> None:
        """The functional machine has executed `executed` instructions, about `fraction` (0..1) of the program."""


def _loop_body(instruction: Any) -> int | None:
    if isinstance(instruction, Instruction) and instruction.op in LOOP_MNEMONICS:
        return int(instruction.args["body"])
    return None


class LoopNestPosition:
    """The fraction of a program done at a position in its loop nest.

    Each instruction or loop in a body (or at the top level) weighs its
    static instruction count, a register loop count counting as one; inside
    a loop, each iteration is an equal share of it.
    """

    def __init__(self, code: Sequence[Any]):
        self.code = code
        self.before: dict[int, int] = {}  # pc -> static count of what precedes it in its body
        self.weight: dict[int, int] = {}  # pc -> its static count (a loop: with its iterations)
        self.body_total: dict[int, int] = {}  # loop pc -> static count of one iteration of its body
        self.total = max(self._measure(0, len(code)), 1)

    def _measure(self, start: int, end: int) -> int:
        done, pc = 0, start
        while pc < min(end, len(self.code)):
            instruction = self.code[pc]
            body = _loop_body(instruction)
            self.before[pc] = done
            if body is None:
                self.weight[pc] = 1
            else:
                count = int(instruction.args["count"]) if instruction.op == "loop" else 1
                self.body_total[pc] = max(self._measure(pc + 1, pc + 1 + body), 1)
                self.weight[pc] = 1 + max(count, 0) * self.body_total[pc]
            done += self.weight[pc]
            pc += 1 + (body or 0)
        return done

    def fraction(self, pc: int, loops: Sequence[Sequence[int]]) -> float:
        """`loops` is the machine's loop stack, outermost first: [body start, body end, iterations left, count]."""
        items = [loop[0] - 1 for loop in loops] + [pc]
        done_of_item = 0.0  # the innermost item, the instruction at pc, has not run yet
        for level in reversed(range(len(loops))):
            _, _, remaining, count = loops[level]
            item, loop_pc = items[level + 1], items[level]
            within = (self.before.get(item, 0) + self.weight.get(item, 0) * done_of_item) / self.body_total[loop_pc]
            done_of_item = (count - remaining + within) / count
        top = items[0]
        if top not in self.before:  # past the end
            return 1.0
        return min((self.before[top] + self.weight[top] * done_of_item) / self.total, 1.0)
