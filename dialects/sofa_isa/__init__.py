"""The `sofa_isa` dialect: one op per SOFA accelerator instruction.

The instruction table (`OPS`, in `specs`) is the single source of truth for
the instruction set: every instruction's mnemonic, opcode, unit and fields
(kind, width, legal range, element type). The binary encoder
(`sofa_compiler/isa/encoding.py`), the assembler, the functional simulator
and the ops here are all driven by or checked against it, and `docs/isa.md`
documents it for hardware review.

Operands are SRAM regions (``token[r3 + 4096]``: buffer, base register,
immediate byte offset) and DRAM addresses (``dram[r2 + 0]``), not tensors.
Every unit instruction also carries 8-bit ``wait`` and ``signal`` masks over
the 8 dependency semaphores.

Custom syntax (one op per instruction)::

    sofa_isa.program {config_hash = "...", dram_bytes = 65536 : i64, symbols = [...], segments = [...]} {
      sofa_isa.set rd = r1, imm = 0
      sofa_isa.loop count = 4 {
        sofa_isa.dlzs_score q = token[r1 + 0], khat = temp[r0 + 0], out = temp[r0 + 8192],
            lanes = 128, keys = 64, depth = 64, wait = 1, signal = 2
      }
      sofa_isa.halt
    }

Modules: `fields` (machine constants, operand values, field checks), `specs`
(the instruction table), `attrs` (attributes), `instruction` (the base op),
`ops` (one explicit class per instruction), `control` (loops and the program).
"""

from xdsl.ir import Dialect

from dialects.sofa_isa.attrs import SYMBOL_DTYPES, SYMBOL_KINDS, DramAttr, SegmentAttr, SramAttr, SymbolAttr
from dialects.sofa_isa.control import LoopOp, LoopRegOp, ProgramOp
from dialects.sofa_isa.fields import (
    BUFFERS,
    DRAM_OFFSET_BITS,
    DTYPES,
    ELEM_BYTES,
    HEADER_BITS,
    MAX_LOOP_DEPTH,
    REGISTERS,
    SEMAPHORES,
    SRAM_OFFSET_BITS,
    UNITS,
    WORD_BITS,
    Dram,
    FieldSpec,
    Sram,
    elem_type,
    field_problem,
    to_f32,
)
from dialects.sofa_isa.instruction import PROPERTY_TYPES, IsaInstructionOp, value_to_attr
from dialects.sofa_isa.ops import (
    INSTRUCTION_OPS,
    AddiOp,
    AttentionStepOp,
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
    PostOp,
    RassOp,
    SadsBandOp,
    SadsBiasOp,
    SadsBudgetOp,
    SadsFieldsOp,
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
from dialects.sofa_isa.specs import (
    BY_IR_NAME,
    BY_MNEMONIC,
    BY_OPCODE,
    LOOP_MNEMONICS,
    OPS,
    OpSpec,
    instruction_problems,
)

SofaISA = Dialect(
    "sofa_isa",
    [ProgramOp, LoopOp, LoopRegOp, *INSTRUCTION_OPS.values()],
    [SramAttr, DramAttr, SymbolAttr, SegmentAttr],
)

__all__ = [
    "BUFFERS",
    "BY_IR_NAME",
    "BY_MNEMONIC",
    "BY_OPCODE",
    "DRAM_OFFSET_BITS",
    "DTYPES",
    "ELEM_BYTES",
    "HEADER_BITS",
    "INSTRUCTION_OPS",
    "LOOP_MNEMONICS",
    "MAX_LOOP_DEPTH",
    "OPS",
    "PROPERTY_TYPES",
    "REGISTERS",
    "SEMAPHORES",
    "SRAM_OFFSET_BITS",
    "SYMBOL_DTYPES",
    "SYMBOL_KINDS",
    "UNITS",
    "WORD_BITS",
    "AddiOp",
    "AttentionStepOp",
    "BarrierOp",
    "DmaGatherOp",
    "DmaLoadOp",
    "DmaLz4Op",
    "DmaPrefetchOp",
    "DmaScatterOp",
    "DmaStoreOp",
    "Dram",
    "DramAttr",
    "Fa2StepOp",
    "FieldSpec",
    "HaltOp",
    "IsaDlzsKeyOp",
    "IsaDlzsScoreOp",
    "IsaInstructionOp",
    "IsaMul4ScoreOp",
    "IsaSadsOp",
    "KvgenOp",
    "KvlistOp",
    "KvmarkOp",
    "KvroundOp",
    "LoopOp",
    "LoopRegOp",
    "OpSpec",
    "PostOp",
    "ProgramOp",
    "RassOp",
    "SadsBandOp",
    "SadsBiasOp",
    "SadsBudgetOp",
    "SadsFieldsOp",
    "SadsMaskOp",
    "SadsResetOp",
    "SegmentAttr",
    "SetOp",
    "SofaISA",
    "SoftcapOp",
    "Sram",
    "SramAttr",
    "SufaBiasOp",
    "SufaDenseOp",
    "SufaInitOp",
    "SufaNormOp",
    "SufaStepOp",
    "SymbolAttr",
    "TloadOp",
    "TopkMaskOp",
    "elem_type",
    "field_problem",
    "instruction_problems",
    "to_f32",
    "value_to_attr",
]
