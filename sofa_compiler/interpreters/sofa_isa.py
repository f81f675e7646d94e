"""Interpreter implementations of the `sofa_isa` dialect.

Every instruction op has an implementation; each executes its instruction on
the functional `Machine` of the binary simulator (`sofa_compiler/sim/functional.py`),
whose handlers hold the instruction semantics once, on the kernels of
`dialects.numerics`. IR and binaries therefore execute identically: the same
outputs, registers and events, bit for bit. `sofa_isa.loop` runs its region
`count` times, `sofa_isa.loopr` as many times as its count register says
(none when <= 0), `sofa_isa.program` runs its body until `halt`. Use
`run_ir` to load inputs, run and read outputs in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Block, Operation

from dialects.sofa_isa import (
    AddiOp,
    BarrierOp,
    DmaGatherOp,
    DmaLoadOp,
    DmaLz4Op,
    DmaPrefetchOp,
    DmaScatterOp,
    DmaStoreOp,
    Fa2StepOp,
    HaltOp,
    IsaDlzsKeyOp,
    IsaDlzsScoreOp,
    IsaMul4ScoreOp,
    IsaSadsOp,
    KvgenOp,
    KvlistOp,
    KvmarkOp,
    KvroundOp,
    LoopOp,
    LoopRegOp,
    PostOp,
    ProgramOp,
    RassOp,
    SadsBandOp,
    SadsBiasOp,
    SadsBudgetOp,
    SadsMaskOp,
    SadsResetOp,
    SetOp,
    SoftcapOp,
    SufaBiasOp,
    SufaDenseOp,
    SufaInitOp,
    SufaNormOp,
    SufaStepOp,
    TloadOp,
    TopkMaskOp,
)
from sofa_compiler.isa.encoding import Instruction
from sofa_compiler.isa.ir import find_program, ir_to_program
from sofa_compiler.sim.budget import check_budget
from sofa_compiler.sim.events import Event
from sofa_compiler.sim.functional import FunctionalResult, Machine
from sofa_compiler.sim.limits import DEFAULT_MAX_INSTRUCTIONS
from sofa_compiler.sim.timing import gc_paused
from sofa_compiler.sim.traps import Trap

Args = tuple[Any, ...]


class _Halted(Exception):
    """`halt` ends the program from inside any loop nest."""


@register_impls
class SofaISAFunctions(InterpreterFunctions):
    """Runs `sofa_isa` ops on `machine`; pcs follow the flattened instruction order."""

    def __init__(self, machine: Machine | None = None):
        super().__init__()
        # Without a machine (e.g. registered generically by sofa-run-ir), use the paper's target.
        self.machine = machine if machine is not None else Machine()
        self.code: dict[Operation, tuple[int, Instruction]] = {}

    def load_program(self, program: ProgramOp) -> None:
        """Give every op of `program` its pc and its instruction (loops: the ``loop``/``loopr`` header).

        A pre-order walk visits ops in the order `ir_to_program` flattens them,
        so the op at position pc is the instruction at pc. One `Instruction`
        per op also lets the machine decode each instruction once.
        """
        code = ir_to_program(program).code
        ops = list(program.body.walk())
        self.code = {op: (pc, instr) for pc, (op, instr) in enumerate(zip(ops, code, strict=True))}

    def execute(self, op: Operation) -> Args:
        """Execute `op`'s instruction on the machine (for a loop: only its header's event)."""
        pc, instruction = self.code[op]
        self.machine.execute(instruction, pc)
        return ()

    def run_body(self, interpreter: Interpreter, block: Block, times: int) -> None:
        for _ in range(times):
            for op in block.ops:
                interpreter.run_op(op, ())

    # -- region ops ------------------------------------------------------------------

    @impl(ProgramOp)
    def run_program(self, interpreter: Interpreter, op: ProgramOp, args: Args) -> Args:
        self.load_program(op)
        try:
            self.run_body(interpreter, op.body.block, 1)
        except _Halted:
            pass
        return ()

    @impl(LoopOp)
    def run_loop(self, interpreter: Interpreter, op: LoopOp, args: Args) -> Args:
        self.execute(op)
        self.run_body(interpreter, op.body.block, op.count.value.data)
        return ()

    @impl(LoopRegOp)
    def run_loopr(self, interpreter: Interpreter, op: LoopRegOp, args: Args) -> Args:
        self.execute(op)
        # A run-time count of zero or less skips the body (e.g. fully masked causal KV tiles).
        self.run_body(interpreter, op.body.block, max(self.machine.regs[op.count.value.data], 0))
        return ()

    # -- control -----------------------------------------------------------------------

    @impl(HaltOp)
    def run_halt(self, interpreter: Interpreter, op: HaltOp, args: Args) -> Args:
        self.execute(op)
        raise _Halted()

    @impl(SetOp)
    def run_set(self, interpreter: Interpreter, op: SetOp, args: Args) -> Args:
        return self.execute(op)

    @impl(AddiOp)
    def run_addi(self, interpreter: Interpreter, op: AddiOp, args: Args) -> Args:
        return self.execute(op)

    @impl(TloadOp)
    def run_tload(self, interpreter: Interpreter, op: TloadOp, args: Args) -> Args:
        return self.execute(op)

    @impl(SoftcapOp)
    def run_softcap(self, interpreter: Interpreter, op: SoftcapOp, args: Args) -> Args:
        return self.execute(op)

    @impl(BarrierOp)
    def run_barrier(self, interpreter: Interpreter, op: BarrierOp, args: Args) -> Args:
        return self.execute(op)

    @impl(PostOp)
    def run_post(self, interpreter: Interpreter, op: PostOp, args: Args) -> Args:
        return self.execute(op)

    # -- DMA ---------------------------------------------------------------------------

    @impl(DmaLoadOp)
    def run_dma_load(self, interpreter: Interpreter, op: DmaLoadOp, args: Args) -> Args:
        return self.execute(op)

    @impl(DmaPrefetchOp)
    def run_dma_prefetch(self, interpreter: Interpreter, op: DmaPrefetchOp, args: Args) -> Args:
        return self.execute(op)

    @impl(DmaGatherOp)
    def run_dma_gather(self, interpreter: Interpreter, op: DmaGatherOp, args: Args) -> Args:
        return self.execute(op)

    @impl(DmaScatterOp)
    def run_dma_scatter(self, interpreter: Interpreter, op: DmaScatterOp, args: Args) -> Args:
        return self.execute(op)

    @impl(DmaStoreOp)
    def run_dma_store(self, interpreter: Interpreter, op: DmaStoreOp, args: Args) -> Args:
        return self.execute(op)

    # -- prediction: DLZS and the baseline's 4-bit multipliers ---------------------------

    @impl(IsaDlzsKeyOp)
    def run_dlzs_key(self, interpreter: Interpreter, op: IsaDlzsKeyOp, args: Args) -> Args:
        return self.execute(op)

    @impl(IsaDlzsScoreOp)
    def run_dlzs_score(self, interpreter: Interpreter, op: IsaDlzsScoreOp, args: Args) -> Args:
        return self.execute(op)

    @impl(IsaMul4ScoreOp)
    def run_mul4_score(self, interpreter: Interpreter, op: IsaMul4ScoreOp, args: Args) -> Args:
        return self.execute(op)

    # -- selection: SADS, RASS, the needed-row bitmap and the baseline's top-k ---------

    @impl(IsaSadsOp)
    def run_sads(self, interpreter: Interpreter, op: IsaSadsOp, args: Args) -> Args:
        return self.execute(op)

    @impl(SadsMaskOp)
    def run_sads_mask(self, interpreter: Interpreter, op: SadsMaskOp, args: Args) -> Args:
        return self.execute(op)

    @impl(SadsBiasOp)
    def run_sads_bias(self, interpreter: Interpreter, op: SadsBiasOp, args: Args) -> Args:
        return self.execute(op)

    @impl(SadsBandOp)
    def run_sads_band(self, interpreter: Interpreter, op: SadsBandOp, args: Args) -> Args:
        return self.execute(op)

    @impl(RassOp)
    def run_rass(self, interpreter: Interpreter, op: RassOp, args: Args) -> Args:
        return self.execute(op)

    @impl(KvmarkOp)
    def run_kvmark(self, interpreter: Interpreter, op: KvmarkOp, args: Args) -> Args:
        return self.execute(op)

    @impl(KvlistOp)
    def run_kvlist(self, interpreter: Interpreter, op: KvlistOp, args: Args) -> Args:
        return self.execute(op)

    @impl(TopkMaskOp)
    def run_topk_mask(self, interpreter: Interpreter, op: TopkMaskOp, args: Args) -> Args:
        return self.execute(op)

    @impl(SadsResetOp)
    def run_sads_reset(self, interpreter: Interpreter, op: SadsResetOp, args: Args) -> Args:
        return self.execute(op)

    @impl(SadsBudgetOp)
    def run_sads_budget(self, interpreter: Interpreter, op: SadsBudgetOp, args: Args) -> Args:
        return self.execute(op)

    # -- K/V generation ------------------------------------------------------------------

    @impl(KvgenOp)
    def run_kvgen(self, interpreter: Interpreter, op: KvgenOp, args: Args) -> Args:
        return self.execute(op)

    @impl(KvroundOp)
    def run_kvround(self, interpreter: Interpreter, op: KvroundOp, args: Args) -> Args:
        return self.execute(op)

    # -- attention: SU-FA and the baseline's FlashAttention-2 step -------------------------

    @impl(SufaInitOp)
    def run_sufa_init(self, interpreter: Interpreter, op: SufaInitOp, args: Args) -> Args:
        return self.execute(op)

    @impl(SufaStepOp)
    def run_sufa_step(self, interpreter: Interpreter, op: SufaStepOp, args: Args) -> Args:
        return self.execute(op)

    @impl(SufaBiasOp)
    def run_sufa_bias(self, interpreter: Interpreter, op: SufaBiasOp, args: Args) -> Args:
        return self.execute(op)

    @impl(Fa2StepOp)
    def run_fa2_step(self, interpreter: Interpreter, op: Fa2StepOp, args: Args) -> Args:
        return self.execute(op)

    @impl(SufaNormOp)
    def run_sufa_norm(self, interpreter: Interpreter, op: SufaNormOp, args: Args) -> Args:
        return self.execute(op)

    @impl(DmaLz4Op)
    def run_dma_lz4(self, interpreter: Interpreter, op: DmaLz4Op, args: Args) -> Args:
        return self.execute(op)

    @impl(SufaDenseOp)
    def run_sufa_dense(self, interpreter: Interpreter, op: SufaDenseOp, args: Args) -> Args:
        return self.execute(op)


def run_ir(
    module: Operation,
    inputs: Mapping[str, np.ndarray],
    machine: Machine | None = None,
    expected_config_hash: str | bytes | None = None,
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS,
    on_event: Callable[[Event], None] | None = None,
) -> FunctionalResult:
    """Run the `sofa_isa.program` in `module` through xDSL's interpreter (budget and events as `Machine.run`)."""
    program_op = find_program(module)
    program = ir_to_program(program_op)
    machine = machine or Machine(None, program.dram_bytes)
    machine.reset(max_instructions, on_event)
    machine.load(program, inputs, expected_config_hash)
    check_budget(program.code, max_instructions, machine.dram)
    machine.prepare_tokens(program.code)
    interpreter = Interpreter(module if isinstance(module, ModuleOp) else program_op)
    interpreter.register_implementations(SofaISAFunctions(machine))
    # As in `Machine.run`: one tile per instruction, so single-threaded BLAS.
    with gc_paused(), threadpool_limits(limits=1, user_api="blas"):
        interpreter.run_op(program_op, ())
    return FunctionalResult(
        machine.read_outputs(program), machine.events, machine.peak, machine.executed, list(machine.regs)
    )


__all__ = ["Context", "SofaISAFunctions", "Trap", "run_ir"]
