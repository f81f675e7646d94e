"""Interpreter implementations of the `sofa_isa` dialect.

Each instruction op delegates to the functional `Machine` that the binary
simulator uses (`sofa_compiler/sim/functional.py`), so IR and binaries
execute identically. `sofa_isa.loop` runs its region `count` times;
`sofa_isa.program` runs its body. Use `run_ir` to load inputs, run and read
outputs in one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Operation

from dialects.sofa_isa import (
    AddiOp,
    BarrierOp,
    DmaGatherOp,
    DmaLoadOp,
    DmaScatterOp,
    DmaStoreOp,
    HaltOp,
    IsaDlzsKeyOp,
    IsaDlzsScoreOp,
    IsaInstructionOp,
    IsaSadsOp,
    KvgenOp,
    KvlistOp,
    KvmarkOp,
    LoopOp,
    PostOp,
    ProgramOp,
    RassOp,
    SetOp,
    SufaInitOp,
    SufaNormOp,
    SufaStepOp,
)
from sofa_compiler.isa.encoding import Instruction
from sofa_compiler.isa.ir import find_program, ir_to_program, op_to_instruction
from sofa_compiler.sim.functional import FunctionalResult, Machine
from sofa_compiler.sim.traps import Trap


class _Halted(Exception):
    pass


@register_impls
class SofaISAFunctions(InterpreterFunctions):
    """Runs `sofa_isa` ops on `machine`; pcs follow the flattened instruction order."""

    def __init__(self, machine: Machine | None = None):
        super().__init__()
        # Without a machine (e.g. registered generically by sofa-run-ir), use the paper's target.
        self.machine = machine if machine is not None else Machine()
        self.pcs: dict[Operation, int] = {}

    def _pc(self, op: Operation) -> int:
        return self.pcs.get(op, 0)

    def _run_block(self, interpreter: Interpreter, ops: Any) -> None:
        for op in ops:
            interpreter.run_op(op, ())

    def number(self, program: ProgramOp) -> None:
        pc = 0

        def visit(block: Any) -> None:
            nonlocal pc
            for op in block.ops:
                self.pcs[op] = pc
                pc += 1
                if isinstance(op, LoopOp):
                    visit(op.body.block)

        visit(program.body.block)

    @impl(ProgramOp)
    def run_program(self, interpreter: Interpreter, op: ProgramOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        self.number(op)
        try:
            self._run_block(interpreter, op.body.block.ops)
        except _Halted:
            pass
        return ()

    @impl(LoopOp)
    def run_loop(self, interpreter: Interpreter, op: LoopOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        self.machine.execute(op_to_loop_instruction(op), self._pc(op))
        for _ in range(op.count.value.data):
            self._run_block(interpreter, op.body.block.ops)
        return ()

    def run_instruction(self, interpreter: Interpreter, op: IsaInstructionOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        self.machine.execute(op_to_instruction(op), self._pc(op))
        if op.SPEC.mnemonic == "halt":
            raise _Halted()
        return ()

    @impl(HaltOp)
    def run_halt(self, interpreter: Interpreter, op: HaltOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(SetOp)
    def run_set(self, interpreter: Interpreter, op: SetOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(AddiOp)
    def run_addi(self, interpreter: Interpreter, op: AddiOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(BarrierOp)
    def run_barrier(self, interpreter: Interpreter, op: BarrierOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(PostOp)
    def run_post(self, interpreter: Interpreter, op: PostOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(DmaLoadOp)
    def run_dma_load(self, interpreter: Interpreter, op: DmaLoadOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(DmaGatherOp)
    def run_dma_gather(self, interpreter: Interpreter, op: DmaGatherOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(DmaStoreOp)
    def run_dma_store(self, interpreter: Interpreter, op: DmaStoreOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(IsaDlzsKeyOp)
    def run_dlzs_key(self, interpreter: Interpreter, op: IsaDlzsKeyOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(IsaDlzsScoreOp)
    def run_dlzs_score(self, interpreter: Interpreter, op: IsaDlzsScoreOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(IsaSadsOp)
    def run_sads(self, interpreter: Interpreter, op: IsaSadsOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(RassOp)
    def run_rass(self, interpreter: Interpreter, op: RassOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(KvgenOp)
    def run_kvgen(self, interpreter: Interpreter, op: KvgenOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(KvmarkOp)
    def run_kvmark(self, interpreter: Interpreter, op: KvmarkOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(KvlistOp)
    def run_kvlist(self, interpreter: Interpreter, op: KvlistOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(DmaScatterOp)
    def run_dma_scatter(self, interpreter: Interpreter, op: DmaScatterOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(SufaInitOp)
    def run_sufa_init(self, interpreter: Interpreter, op: SufaInitOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(SufaStepOp)
    def run_sufa_step(self, interpreter: Interpreter, op: SufaStepOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)

    @impl(SufaNormOp)
    def run_sufa_norm(self, interpreter: Interpreter, op: SufaNormOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.run_instruction(interpreter, op, args)


def op_to_loop_instruction(op: LoopOp) -> Instruction:
    """The `loop` instruction a LoopOp encodes as (body = flattened instruction count)."""
    body = sum(1 for _ in op.body.walk())
    return Instruction("loop", {"count": op.count.value.data, "body": body})


def run_ir(
    module: Operation,
    inputs: Mapping[str, np.ndarray],
    machine: Machine | None = None,
    expected_config_hash: str | bytes | None = None,
) -> FunctionalResult:
    """Run the `sofa_isa.program` in `module` through xDSL's interpreter."""
    program_op = find_program(module)
    program = ir_to_program(program_op)
    machine = machine or Machine(None, program.dram_bytes)
    machine.reset()
    machine.load(program, inputs, expected_config_hash)
    machine.prepare_tokens(program.code)
    interpreter = Interpreter(module if isinstance(module, ModuleOp) else program_op)
    interpreter.register_implementations(SofaISAFunctions(machine))
    interpreter.run_op(program_op, ())
    return FunctionalResult(
        machine.read_outputs(program), machine.events, machine.peak, machine.executed, list(machine.regs)
    )


__all__ = ["Context", "SofaISAFunctions", "Trap", "run_ir"]
