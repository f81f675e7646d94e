"""How many instructions a program executes, known before it runs, and the budget check built on it.

The ISA has no branches: control flow is hardware loops, and the only
run-time loop count (`loopr`) reads a register that only `set` and `addi`
write, never data. So the number of instructions a run executes up to its
`halt` (or the trap that ends it first) is a function of the code alone.
`executed_instructions` computes it without touching data: a loop whose
body only steps registers (`addi rX, rX, imm`) is counted in closed form (its
count times one pass, each register stepped count times), and the rest
(bodies that hold a `loopr`, or copy and set registers) are walked pass by
pass, about 1 µs per walked instruction, at most `MAX_WALKED` of them. A
program that would pass its budget is refused before its first instruction
runs, and so is one whose count needs more walking than that (no compiled
kernel comes near: they walk under 50,000).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dialects.sofa_isa import LOOP_MNEMONICS, REGISTERS
from sofa_compiler.isa.encoding import Instruction, format_instruction
from sofa_compiler.sim.semantics import _wrap32, write_register
from sofa_compiler.sim.traps import Trap, TrapKind


@dataclass(frozen=True)
class BodySummary:
    """One pass of a loop body: the instructions it executes, the steps it adds to registers, the values it sets.

    ``assignments`` maps a register to (source register or None, immediate):
    the body sets it to ``r[source] + imm`` from a source the body never
    writes, so any number of passes leaves the value of one.
    """

    instructions: int
    increments: dict[int, int]
    assignments: dict[int, tuple[int | None, int]]

    def apply(self, regs: list[int], times: int) -> None:
        """`regs` after `times` >= 1 passes."""
        values = {rd: (regs[rs] if rs else 0) + imm for rd, (rs, imm) in self.assignments.items()}
        for reg, step in self.increments.items():
            regs[reg] = _wrap32(regs[reg] + times * step)
        for reg, value in values.items():
            regs[reg] = _wrap32(value)


MAX_WALKED = 2_000_000
"""Instructions the count may walk one by one (about 1 µs each): compiled kernels walk under 50,000."""


class UncountableError(Exception):
    """The count needs more than `MAX_WALKED` instructions walked one by one."""

    def __init__(self, pc: int):
        super().__init__(pc)
        self.pc = pc


def executed_instructions(code: Sequence[Any], limit: int, dram: np.ndarray | None = None) -> tuple[int, int]:
    """(instructions a run of `code` executes, pc where the count passed `limit`, or -1).

    The count stops growing once it passes `limit` (it is then only known to
    be larger); `UncountableError` once it walks `MAX_WALKED` instructions.
    `code` must have passed `functional.check_loops`. A run that
    traps (an illegal word, running past the end) is counted up to its trap;
    data-dependent traps can only end a run sooner. `tload`s read their table words from `dram`
    (the loaded program's image; its tables are constant).
    """
    summaries = _closed_form_bodies(code)
    regs = [0] * REGISTERS
    stack: list[list[int]] = []  # [start, end, remaining]
    count, pc, walked = 0, 0, 0
    while True:
        if pc >= len(code) or not isinstance(code[pc], Instruction):
            return count, -1
        instr = code[pc]
        count += 1
        walked += 1
        if walked > MAX_WALKED:
            raise UncountableError(pc)
        if count > limit:
            return count, pc
        if instr.op == "halt":
            return count, -1
        if instr.op in LOOP_MNEMONICS:
            # The count is read once, on entry (a loopr body may step its own count register).
            times = instr.args["count"] if instr.op == "loop" else regs[instr.args["count"]]
            body_end = pc + 1 + instr.args["body"]
            summary = summaries.get(pc)
            if times > 0 and summary is None:
                stack.append([pc + 1, body_end, times])
                pc += 1
                continue
            if times > 0 and summary is not None:
                count += times * summary.instructions
                if count > limit:
                    return count, pc
                summary.apply(regs, times)
            pc = body_end
        else:
            write_register(regs, instr, dram)
            pc += 1
        pc = leave_finished_bodies(stack, pc)


def leave_finished_bodies(stack: list[list[int]], pc: int) -> int:
    """Where control goes once it reaches `pc`: back to a body's start while passes remain, else on.

    ``stack`` holds the open loops, innermost last, each ``[start, end, remaining, ...]``;
    loops whose last pass ends at `pc` are popped.
    """
    while stack and pc == stack[-1][1]:
        stack[-1][2] -= 1
        if stack[-1][2] > 0:
            return stack[-1][0]
        stack.pop()
    return pc


def _closed_form_bodies(code: Sequence[Any]) -> dict[int, BodySummary]:
    """{pc of a loop: its body's `BodySummary`} for the loops whose passes can be multiplied.

    A body qualifies when it always runs to its end (no `halt`, no illegal
    word), holds no `loopr` (whose count would vary between passes) nor `tload` (a table word), and
    writes each register it writes in one way: stepping it (`addi rX, rX,
    imm`: N passes add N steps) or setting it once from a constant or from a
    register the body never writes (N passes leave one pass's value). Its
    nested loops must qualify too. Compiled kernels step their addresses and
    set their loop bounds that way, so only their `loopr` nests are walked.
    """
    summaries: dict[int, BodySummary] = {}

    def summarise(start: int, end: int) -> BodySummary | None:
        instructions, pc = 0, start
        increments: dict[int, int] = defaultdict(int)
        assignments: dict[int, tuple[int | None, int]] = {}
        set_twice = False  # a register set twice: the order of the sets would matter
        while pc < end:
            instr = code[pc]
            if not isinstance(instr, Instruction) or instr.op in ("halt", "loopr", "tload"):
                return None
            instructions += 1
            rd = instr.args.get("rd", 0) if instr.op in ("set", "addi") else 0
            if rd and instr.op == "addi" and instr.args["rs"] == rd:
                increments[rd] += instr.args["imm"]
            elif rd:
                set_twice |= rd in assignments
                assignments[rd] = (instr.args["rs"] if instr.op == "addi" else None, instr.args["imm"])
            if instr.op == "loop":
                inner_end = pc + 1 + instr.args["body"]
                inner = summaries.get(pc) or summarise(pc + 1, inner_end)
                if inner is None:
                    return None
                summaries[pc] = inner
                instructions += instr.args["count"] * inner.instructions
                for reg, step in inner.increments.items():
                    increments[reg] += instr.args["count"] * step
                set_twice |= bool(assignments.keys() & inner.assignments.keys())
                assignments.update(inner.assignments)
                pc = inner_end
            else:
                pc += 1
        written = increments.keys() | assignments.keys()
        if set_twice or increments.keys() & assignments.keys() or any(rs in written for rs, _ in assignments.values()):
            return None
        return BodySummary(instructions, dict(increments), assignments)

    for pc, instr in enumerate(code):
        if isinstance(instr, Instruction) and instr.op in LOOP_MNEMONICS and pc not in summaries:
            summary = summarise(pc + 1, pc + 1 + instr.args["body"])
            if summary is not None:
                summaries[pc] = summary
    return summaries


def check_budget(code: Sequence[Any], max_instructions: int, dram: np.ndarray | None = None) -> int:
    """The instructions a run of `code` executes (its tables in `dram`); a `Trap` (kind budget) before it runs
    if past `max_instructions`."""
    try:
        count, pc = executed_instructions(code, max_instructions, dram)
    except UncountableError as error:
        raise Trap(
            error.pc,
            _text(code[error.pc]),
            f"the program's loops cannot be counted ahead within {MAX_WALKED:,} walked instructions "
            "(loop bodies that copy registers they also step); refused before running",
            TrapKind.BUDGET,
        ) from None
    if count <= max_instructions:
        return count
    raise Trap(
        pc,
        _text(code[pc]),
        f"the program would execute {_describe(count)}, past the instruction budget of {max_instructions:,}; "
        "refused before running (raise it with --max-instructions)",
        TrapKind.BUDGET,
    )


def _text(instr: Any) -> str:
    return format_instruction(instr) if isinstance(instr, Instruction) else str(instr)


def _describe(count: int) -> str:
    """`count` in words: the walk stops once past the budget, so a count reached by walking is a lower bound."""
    return f"at least {count:,} instructions" if count < 10**15 else f"at least 2^{count.bit_length() - 1} instructions"
