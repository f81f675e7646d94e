"""The `sofa_isa` interpreter runs every kernel the compiler emits, exactly like the binary simulator."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.passes import ModulePass

from dialects.sofa_isa import INSTRUCTION_OPS, LOOP_MNEMONICS, OPS, LoopOp, LoopRegOp, ProgramOp
from passes.coordinated_tiling import CoordinatedTilingPass, SeparateStageTilingPass
from passes.lower_to_isa import LowerToIsaPass
from sofa_compiler.driver import compile_model
from sofa_compiler.interpreters.sofa_isa import SofaISAFunctions, run_ir
from sofa_compiler.isa.container import Program
from sofa_compiler.isa.ir import ir_to_program, program_to_ir
from sofa_compiler.sim.functional import Machine, random_inputs
from sofa_compiler.tools.sofa_run_ir import sofa_context

REPO = Path(__file__).resolve().parents[2]

IMPLEMENTED: set[type[Operation]] = {
    op_type
    for op_type, _ in SofaISAFunctions._impls()  # pyright: ignore[reportPrivateUsage]
}

LOOP_CLASSES: dict[str, type[Operation]] = {"loop": LoopOp, "loopr": LoopRegOp}


def lowering_mnemonics() -> set[str]:
    """Every mnemonic that a string literal in `passes/` names: what the lowering can emit."""
    mnemonics = {spec.mnemonic for spec in OPS}
    found: set[str] = set()
    for path in (REPO / "passes").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in mnemonics:
                found.add(node.value)
    return found


def test_every_instruction_the_lowering_emits_has_an_implementation():
    emitted = lowering_mnemonics()
    # The scan sees the lowering's mnemonics, the baseline's and the ablations' included.
    assert {"sads", "sufa.step", "fa2.step", "mul4.score", "topk.mask", "kvgen", "dma.scatter"} <= emitted
    classes = {**INSTRUCTION_OPS, **LOOP_CLASSES}
    missing = sorted(m for m in emitted if classes[m] not in IMPLEMENTED)
    assert missing == []


def test_every_op_of_the_dialect_has_an_implementation():
    assert set(LOOP_CLASSES) == set(LOOP_MNEMONICS)
    ops = {ProgramOp, *LOOP_CLASSES.values(), *INSTRUCTION_OPS.values()}
    assert sorted(cls.name for cls in ops - IMPLEMENTED) == []


ATTENTION = """
func.func @main(%q: tensor<1x2x40x8xf32>, %k: tensor<1x1x70x8xf32>, %v: tensor<1x1x70x4xf32>) -> tensor<1x2x40x4xf32> {
  %o = sofa.attention %q, %k, %v scale 0.25 heads 2 / 1 causal : tensor<1x2x40x8xf32>, tensor<1x1x70x8xf32>, tensor<1x1x70x4xf32> -> tensor<1x2x40x4xf32>
  func.return %o : tensor<1x2x40x4xf32>
}
"""
"""Causal GQA attention, 40 queries and 70 keys: a partial KV tile and KV tiles that causality skips."""

SEPARATE = LowerToIsaPass(pipeline="separate", attention="fa2", rass=False)

KERNELS: dict[str, tuple[list[ModulePass], set[str]]] = {
    "causal": ([CoordinatedTilingPass(keep=0.25, tile=32), LowerToIsaPass()], {"loopr", "sads", "sufa.step"}),
    "ablation-mul4-fa2": (
        [CoordinatedTilingPass(keep=0.25, tile=32, predictor="mul4"), LowerToIsaPass(attention="fa2", rass=False)],
        {"loopr", "mul4.score", "fa2.step"},
    ),
    "separate": ([SeparateStageTilingPass(keep=0.25, tile=32), SEPARATE], {"dlzs.score", "topk.mask", "fa2.step"}),
    "separate-mul4": (
        [SeparateStageTilingPass(keep=0.25, tile=32, predictor="mul4"), SEPARATE],
        {"mul4.score", "topk.mask", "fa2.step"},
    ),
}


def compile_attention(passes: list[ModulePass]) -> ProgramOp:
    ctx: Context = sofa_context()
    module: ModuleOp = Parser(ctx, ATTENTION).parse_module()
    for compiler_pass in passes:
        compiler_pass.apply(ctx, module)
    module.verify()
    return next(op for op in module.walk() if isinstance(op, ProgramOp))


def assert_interpreter_matches_machine(program_op: ProgramOp, program: Program, expected: set[str]) -> None:
    inputs = random_inputs(program, seed=1)
    direct = Machine(None, program.dram_bytes).run(program, inputs)
    via_ir = run_ir(program_op, inputs)
    assert expected <= {event.opcode for event in via_ir.events}
    assert via_ir.outputs.keys() == direct.outputs.keys()
    for name, value in direct.outputs.items():
        assert value.tobytes() == via_ir.outputs[name].tobytes(), name
    assert np.isfinite(via_ir.outputs["o"]).all()
    assert via_ir.events == direct.events
    assert via_ir.registers == direct.registers


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_compiled_kernel_runs_as_on_the_machine(kernel: str):
    passes, expected = KERNELS[kernel]
    program_op = compile_attention(passes)
    assert_interpreter_matches_machine(program_op, ir_to_program(program_op), expected)


def test_kv_generation_kernel_runs_as_on_the_machine():
    compiled = compile_model(REPO / "tests" / "fixtures" / "attn24_projection.onnx", keep=0.5)
    (program,) = compiled.programs.values()
    program_op = program_to_ir(program).body.block.first_op
    assert isinstance(program_op, ProgramOp)
    assert_interpreter_matches_machine(program_op, program, {"dlzs.key", "kvmark", "kvlist", "kvgen", "dma.scatter"})
