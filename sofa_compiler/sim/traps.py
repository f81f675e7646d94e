"""Traps: how the SOFA machine stops on an invalid program.

Every trap names the program counter, the instruction (as disassembly) and
the reason; ``str(trap)`` is ``trap at pc=N (instr text): reason``. The
functional machine raises them; the timing model raises `TokenDeadlock`
through `token_deadlock` when no unit can make progress.
"""

from __future__ import annotations

from enum import StrEnum


class TrapKind(StrEnum):
    ADDRESS = "address"  # DRAM or SRAM address out of range (negative, past DRAM, outside a gather window)
    SRAM_OVERFLOW = "sram-overflow"  # an SRAM access extends past the buffer's capacity
    ILLEGAL = "illegal"  # illegal opcode, field, alignment, loop structure or unit state
    DEADLOCK = "deadlock"  # a semaphore wait that can never be satisfied
    CONFIG_HASH = "config-hash"  # program built for another target
    INPUT = "input"  # inputs do not match the symbol table
    BUDGET = "budget"  # the run executed its instruction budget (a runaway loop)


class Trap(Exception):
    """The machine stopped: `pc`, the instruction `text` and the `reason`."""

    def __init__(self, pc: int, text: str, reason: str, kind: TrapKind = TrapKind.ILLEGAL):
        super().__init__(pc, text, reason, kind)
        self.pc = pc
        self.text = text
        self.reason = reason
        self.kind = kind

    def __str__(self) -> str:
        return f"trap at pc={self.pc} ({self.text}): {self.reason}"


class TokenDeadlock(Trap):
    """No unit can issue: every pending instruction waits on a semaphore nobody will signal."""

    def __init__(self, pc: int, text: str, reason: str):
        super().__init__(pc, text, reason, TrapKind.DEADLOCK)


def token_deadlock(pc: int, text: str, semaphores: int, detail: str = "") -> TokenDeadlock:
    """The trap a timing model raises when the instruction at `pc` waits forever on `semaphores` (a mask)."""
    bits = ", ".join(f"s{b}" for b in range(8) if semaphores >> b & 1)
    reason = f"token deadlock: waiting on {bits} and no unit can signal"
    return TokenDeadlock(pc, text, reason + (f" ({detail})" if detail else ""))
