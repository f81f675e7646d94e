"""Instructions as Python values, and their 256-bit binary encoding.

The field table lives in `dialects.sofa_isa.OPS`; this module packs and
unpacks it. Layout of one 32-byte little-endian word (bit 0 = LSB of byte 0):

* bits 0-7: opcode (0x00 and unlisted values are illegal);
* bits 8-15: wait mask; bits 16-23: signal mask;
* bits 24 and up: the instruction's fields in table order, each ``bits`` wide;
  an SRAM operand is buffer (2 bits), register (4), offset (18) from low to
  high; a DRAM operand is register (4), offset (32);
* every bit above the last field is reserved and must be zero.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dialects.sofa_isa import (
    BUFFERS,
    BY_MNEMONIC,
    BY_OPCODE,
    DRAM_OFFSET_BITS,
    DTYPES,
    SRAM_OFFSET_BITS,
    WORD_BITS,
    Dram,
    FieldSpec,
    OpSpec,
    Sram,
    instruction_problems,
    to_f32,
)

WORD_BYTES = WORD_BITS // 8


class EncodeError(ValueError):
    """An instruction cannot be encoded: an unknown mnemonic or an illegal field."""


class DecodeError(ValueError):
    """A word is not a legal instruction (illegal opcode, field or reserved bits)."""


@dataclass(eq=True)
class Instruction:
    """One instruction: mnemonic, field values (`Sram`, `Dram`, int, float, str) and token masks."""

    op: str
    args: dict[str, Any] = field(default_factory=dict)
    wait: int = 0
    signal: int = 0

    @property
    def spec(self) -> OpSpec:
        return BY_MNEMONIC[self.op]

    @property
    def unit(self) -> str:
        return self.spec.unit

    def problems(self) -> list[str]:
        if self.op not in BY_MNEMONIC:
            return [f"unknown instruction '{self.op}'"]
        return instruction_problems(self.spec, self.args, self.wait, self.signal)

    def check(self) -> Instruction:
        """Raise `EncodeError` on the first problem; return self."""
        if problems := self.problems():
            raise EncodeError(problems[0])
        return self

    def normalized(self) -> Instruction:
        """A copy with floats rounded to fp32 (what the binary holds)."""
        args = {k: (to_f32(v) if self.spec.field(k).kind == "f32" else v) for k, v in self.args.items()}
        return Instruction(self.op, args, self.wait, self.signal)

    def __str__(self) -> str:
        return format_instruction(self)


def format_value(spec_field: FieldSpec, value: Any) -> str:
    match spec_field.kind:
        case "sram":
            return f"{value.buffer}[r{value.reg}+{value.offset}]"
        case "dram":
            return f"dram[r{value.reg}+{value.offset}]"
        case "reg":
            return f"r{value}"
        case "f32":
            v = to_f32(value)
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return repr(v)
        case _:
            return str(value)


def format_instruction(instr: Instruction) -> str:
    """Canonical assembly text of one instruction (no indentation)."""
    spec = BY_MNEMONIC.get(instr.op)
    if spec is None:
        return f"<illegal {instr.op}>"
    parts = [f"{f.name}={format_value(f, instr.args[f.name])}" for f in spec.fields if f.name in instr.args]
    text = instr.op + (" " + ", ".join(parts) if parts else "")
    masks = []
    if instr.wait:
        masks.append(f"wait=0b{instr.wait:b}")
    if instr.signal:
        masks.append(f"signal=0b{instr.signal:b}")
    if masks:
        text += " ; " + " ".join(masks)
    return text


def _pack_field(spec_field: FieldSpec, value: Any) -> int:
    match spec_field.kind:
        case "sram":
            return BUFFERS.index(value.buffer) | (value.reg << 2) | (value.offset << 6)
        case "dram":
            return value.reg | (value.offset << 4)
        case "int":
            return value & ((1 << spec_field.bits) - 1)
        case "f32":
            return struct.unpack("<I", struct.pack("<f", float(value)))[0]
        case "dtype":
            return DTYPES.index(value)
        case _:
            return int(value)


def encode(instr: Instruction) -> bytes:
    """The 32-byte word of one instruction; `EncodeError` names any illegal field."""
    instr.check()
    spec = instr.spec
    word = spec.opcode | (instr.wait << 8) | (instr.signal << 16)
    for spec_field, bit in spec.layout():
        word |= _pack_field(spec_field, instr.args[spec_field.name]) << bit
    return word.to_bytes(WORD_BYTES, "little")


def _unpack_field(spec_field: FieldSpec, raw: int) -> Any:
    match spec_field.kind:
        case "sram":
            code = raw & 0b11
            if code >= len(BUFFERS):
                raise DecodeError(f"field '{spec_field.name}': illegal SRAM buffer code {code}")
            return Sram(BUFFERS[code], (raw >> 2) & 0xF, (raw >> 6) & ((1 << SRAM_OFFSET_BITS) - 1))
        case "dram":
            return Dram(raw & 0xF, (raw >> 4) & ((1 << DRAM_OFFSET_BITS) - 1))
        case "int":
            sign = 1 << (spec_field.bits - 1)
            return (raw ^ sign) - sign
        case "f32":
            return struct.unpack("<f", struct.pack("<I", raw))[0]
        case "dtype":
            if raw >= len(DTYPES):
                raise DecodeError(f"field '{spec_field.name}': illegal dtype code {raw}")
            return DTYPES[raw]
        case _:
            return raw


def decode(word: bytes) -> Instruction:
    """Decode one 32-byte word; `DecodeError` on an illegal opcode, field or reserved bit."""
    if len(word) != WORD_BYTES:
        raise DecodeError(f"instruction word has {len(word)} bytes, expected {WORD_BYTES}")
    value = int.from_bytes(word, "little")
    opcode = value & 0xFF
    spec = BY_OPCODE.get(opcode)
    if spec is None:
        raise DecodeError(f"illegal opcode {opcode:#04x}")
    wait, signal = (value >> 8) & 0xFF, (value >> 16) & 0xFF
    args = {}
    for spec_field, bit in spec.layout():
        args[spec_field.name] = _unpack_field(spec_field, (value >> bit) & ((1 << spec_field.bits) - 1))
    if value >> spec.used_bits:
        raise DecodeError(f"{spec.mnemonic}: reserved bits above bit {spec.used_bits} are not zero")
    instr = Instruction(spec.mnemonic, args, wait, signal)
    if problems := instr.problems():
        raise DecodeError(problems[0])
    return instr


def make(op: str, wait: int = 0, signal: int = 0, **args: Any) -> Instruction:
    """Build and check an instruction: ``make("set", rd=1, imm=0)``."""
    if op not in BY_MNEMONIC:
        raise EncodeError(f"unknown instruction '{op}'")
    return Instruction(op, dict(args), wait, signal).check().normalized()


def layout_table(spec: OpSpec) -> list[Mapping[str, Any]]:
    """Rows (field, bits, msb:lsb, range) describing `spec`'s word layout, for docs and objdump."""
    rows = [
        {"field": "opcode", "bits": "7:0", "width": 8, "range": f"{spec.opcode:#04x}"},
        {"field": "wait", "bits": "15:8", "width": 8, "range": "0..0xff"},
        {"field": "signal", "bits": "23:16", "width": 8, "range": "0..0xff"},
    ]
    for spec_field, bit in spec.layout():
        match spec_field.kind:
            case "sram":
                legal = f"buf 2b (token=0, weight=1, temp=2) \\| reg 4b \\| offset 18b 0..{spec_field.hi}"
            case "dram":
                legal = f"reg 4b \\| offset 32b 0..{spec_field.hi}"
            case "reg":
                legal = "r0..r15"
            case "f32":
                legal = "binary32; " + ("> 0 or +inf" if spec_field.name == "radius" else "finite, > 0")
            case "dtype":
                legal = "0 = f16, 1 = f32"
            case _:
                legal = f"{spec_field.lo}..{spec_field.hi}"
        rows.append(
            {
                "field": spec_field.name,
                "bits": f"{bit + spec_field.bits - 1}:{bit}",
                "width": spec_field.bits,
                "range": legal,
                "elem": spec_field.elem,
                "doc": spec_field.doc,
            }
        )
    return rows


def opcode_section(spec: OpSpec) -> str:
    """The Markdown section `docs/isa.md` holds for one instruction (kept in sync by a test)."""
    lines = [
        f"### `{spec.mnemonic}` — opcode `{spec.opcode:#04x}`, unit `{spec.unit}`",
        "",
        spec.doc,
        "",
        "| field | bits | width | legal values | element | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for row in layout_table(spec):
        lines.append(
            f"| `{row['field']}` | {row['bits']} | {row['width']} | {row['range']} | {row.get('elem', '')} "
            f"| {row.get('doc', '')} |"
        )
    used = 24 + sum(field.bits for field in spec.fields)
    last = max((bit + field.bits for field, bit in spec.layout()), default=24)
    lines += ["", f"Bits {max(used, last)}..255 are reserved (zero)."]
    return "\n".join(lines) + "\n"
