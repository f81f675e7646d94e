"""Converters between `sofa_isa` IR and `Program` (instruction lists).

`program_to_ir` wraps a program in ``builtin.module { sofa_isa.program {...} }``;
hardware loops become `sofa_isa.loop` regions. `ir_to_program` flattens them
back into ``loop count, body`` instructions. Together with the assembler and
the container these give text <-> binary <-> IR round trips.
"""

from __future__ import annotations

from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Block, Operation, Region

from dialects.sofa_isa import (
    INSTRUCTION_OPS,
    LOOP_MNEMONICS,
    IsaInstructionOp,
    LoopOp,
    LoopRegOp,
    ProgramOp,
    SegmentAttr,
    SymbolAttr,
)
from sofa_compiler.isa.container import Program, RawWord, Segment, Symbol
from sofa_compiler.isa.encoding import Instruction, make


class IRConversionError(ValueError):
    """A program cannot be expressed in IR, or IR is not a SOFA program."""


def instruction_to_op(instr: Instruction) -> IsaInstructionOp:
    return INSTRUCTION_OPS[instr.op].build_op(instr.args, instr.wait, instr.signal)


def op_to_instruction(op: IsaInstructionOp) -> Instruction:
    return make(op.SPEC.mnemonic, op.wait_mask, op.signal_mask, **op.field_values())


def _build_ops(code: list[Instruction | RawWord], start: int, end: int) -> list[Operation]:
    ops: list[Operation] = []
    pc = start
    while pc < end:
        instr = code[pc]
        if isinstance(instr, RawWord):
            raise IRConversionError(f"pc={pc}: illegal instruction word ({instr.reason}) has no IR form")
        if instr.op in LOOP_MNEMONICS:
            body_end = pc + 1 + instr.args["body"]
            if body_end > end:
                raise IRConversionError(f"pc={pc}: loop body runs past its enclosing block")
            loop_class = LoopOp if instr.op == "loop" else LoopRegOp
            ops.append(loop_class(instr.args["count"], _build_ops(code, pc + 1, body_end)))
            pc = body_end
        else:
            ops.append(instruction_to_op(instr))
            pc += 1
    return ops


def program_to_op(program: Program) -> ProgramOp:
    symbols = ArrayAttr([SymbolAttr(s.name, s.kind, s.dtype, s.shape, s.address, s.size) for s in program.symbols])
    segments = ArrayAttr([SegmentAttr(s.address, s.data) for s in program.segments])
    return ProgramOp.create(
        properties={
            "config_hash": StringAttr(program.config_hash.hex()),
            "dram_bytes": IntegerAttr(program.dram_bytes, i64),
            "symbols": symbols,
            "segments": segments,
        },
        regions=[Region(Block(_build_ops(program.code, 0, len(program.code))))],
    )


def program_to_ir(program: Program) -> ModuleOp:
    return ModuleOp([program_to_op(program)])


def _flatten(block: Block, out: list[Instruction]) -> None:
    for op in block.ops:
        if isinstance(op, LoopOp | LoopRegOp):
            mnemonic = "loop" if isinstance(op, LoopOp) else "loopr"
            at = len(out)
            out.append(Instruction(mnemonic, {}))
            _flatten(op.body.block, out)
            out[at] = make(mnemonic, count=op.count.value.data, body=len(out) - at - 1)
        elif isinstance(op, IsaInstructionOp):
            out.append(op_to_instruction(op))
        else:
            raise IRConversionError(f"'{op.name}' is not a sofa_isa instruction")


def find_program(root: Operation) -> ProgramOp:
    if isinstance(root, ProgramOp):
        return root
    for op in root.walk():
        if isinstance(op, ProgramOp):
            return op
    raise IRConversionError("no sofa_isa.program op found")


def ir_to_program(root: Operation) -> Program:
    op = find_program(root)
    code: list[Instruction] = []
    _flatten(op.body.block, code)
    symbols = [
        Symbol(
            s.sym_name.data,
            s.kind.data,
            s.dtype.data,
            tuple(d.data for d in s.shape.data),
            s.address.data,
            s.size.data,
        )
        for s in op.symbols.data
    ]
    segments = [Segment(s.address.data, bytes.fromhex(s.data.data)) for s in op.segments.data]
    return Program(code, symbols, segments, bytes.fromhex(op.config_hash.data), op.dram_bytes.value.data)
