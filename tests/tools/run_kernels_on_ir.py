"""Run @main of a lowered module like `sofa-run-ir`, but every kernel on the `sofa_isa` IR interpreter.

Usage: run_kernels_on_ir.py FILE.mlir --random-inputs SEED --output OUT.npz

`sofa-run-ir` runs each `sofa.kernel_call` on the binary simulator; this
runs the kernel's `sofa_isa.program` op by op through xDSL's interpreter
(`sofa_compiler.interpreters.sofa_isa`) instead, on the same target, with
the same staging and the same random inputs, and saves the results under the
same keys. Per kernel it prints the instructions executed and the distinct
opcodes that ran, for FileCheck.
"""

import argparse
from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from dialects.sofa import KernelCallOp
from dialects.sofa_isa import ProgramOp
from sofa_compiler.interpreters import register_all
from sofa_compiler.interpreters.sofa import as_array
from sofa_compiler.interpreters.sofa_isa import run_ir
from sofa_compiler.isa.ir import ir_to_program
from sofa_compiler.runtime import kernel_operands, stage_attention_inputs, unstage_attention_output
from sofa_compiler.sim.config import load_config
from sofa_compiler.sim.functional import Machine
from sofa_compiler.tools.sofa_run_ir import Signature, parse_module, random_inputs, save_npz, sofa_context, to_array


@register_impls
class KernelsOnIr(InterpreterFunctions):
    def __init__(self, programs: dict[str, ProgramOp]):
        super().__init__()
        self.programs = programs
        self.config = load_config(None)

    @impl(KernelCallOp)
    def run_kernel_call(self, interpreter: Interpreter, op: KernelCallOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        name = op.kernel.data
        program_op = self.programs[name]
        program = ir_to_program(program_op)
        q, *tensors = (as_array(a) for a in args)
        given = dict(zip(kernel_operands(program)[1:], tensors, strict=True))
        inputs = stage_attention_inputs(program, q, given.get("k"), given.get("v"), given.get("x"))
        machine = Machine.from_target(self.config.as_target_dict(), dram_bytes=program.dram_bytes)
        result = run_ir(program_op, inputs, machine, self.config.config_hash())
        opcodes = sorted({event.opcode for event in result.events})
        print(f"kernel {name}: {result.instructions_executed} instructions: {' '.join(opcodes)}")
        return (unstage_attention_output(program, result.outputs["o"], q.shape),)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--random-inputs", type=int, required=True, metavar="SEED")
    parser.add_argument("--output", required=True, metavar="OUT.npz")
    args = parser.parse_args()
    module = parse_module(sofa_context(), args.file)
    programs = {op.sym_name.data: op for op in module.walk() if isinstance(op, ProgramOp) and op.sym_name is not None}
    interpreter = Interpreter(module)
    register_all(interpreter)
    interpreter.register_implementations(KernelsOnIr(programs))
    func = interpreter.get_op_for_symbol("main")
    sig = Signature.of(func)
    values = interpreter.call_op(func, tuple(random_inputs(sig, args.random_inputs)))
    results = [to_array(i, typ, value) for i, (typ, value) in enumerate(zip(sig.result_types, values, strict=True))]
    save_npz(args.output, results)
    for i, result in enumerate(results):
        print(f"result[{i}]: {result.shape} {result.dtype} finite={bool(np.isfinite(result).all())}")


if __name__ == "__main__":
    main()
