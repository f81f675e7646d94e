"""Instruction fields: machine constants, operand values, `FieldSpec` and its value checks.

Pure data, no xDSL: the encoder, the assembler and the simulator use these
as much as the IR does.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WORD_BITS = 256
"""Every instruction is one 256-bit (32-byte) little-endian word."""

HEADER_BITS = 24
"""Bits 0-7 opcode, 8-15 wait mask, 16-23 signal mask; fields start at bit 24."""

SEMAPHORES = 8
REGISTERS = 16
MAX_LOOP_DEPTH = 4

BUFFERS = ("token", "weight", "temp")
"""SRAM buffer codes 0, 1, 2 (code 3 is illegal)."""

DTYPES = ("f16", "f32")
"""Storage dtype codes for the `dtype` field: 0 = f16, 1 = f32."""

SRAM_OFFSET_BITS = 18
DRAM_OFFSET_BITS = 32

UNITS = ("ctrl", "dma_load", "dma_store", "dlzs", "sads", "kvgen", "sufa")
"""Unit names; the same strings as `sofa_compiler.sim.events.Unit`."""

ELEM_BYTES = {"u8": 1, "i8": 1, "f16": 2, "f32": 4, "i32": 4}

FP32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Sram:
    """An SRAM operand: byte address ``r[reg] + offset`` in `buffer`."""

    buffer: str
    reg: int
    offset: int

    def __str__(self) -> str:
        return f"{self.buffer}[r{self.reg}+{self.offset}]"


@dataclass(frozen=True)
class Dram:
    """A DRAM operand: byte address ``r[reg] + offset``."""

    reg: int
    offset: int

    def __str__(self) -> str:
        return f"dram[r{self.reg}+{self.offset}]"


@dataclass(frozen=True)
class FieldSpec:
    """One instruction field.

    ``kind`` is one of:

    * ``sram``: 2-bit buffer, 4-bit register, 18-bit unsigned byte offset;
    * ``dram``: 4-bit register, 32-bit unsigned byte offset;
    * ``reg``: a 4-bit register number;
    * ``uint`` / ``int``: an unsigned / two's-complement integer of ``bits`` bits,
      legal in ``[lo, hi]``;
    * ``f32``: IEEE-754 binary32 bits (``positive`` fields: > 0 or +inf);
    * ``dtype``: 2-bit storage type code (`DTYPES`);
    * ``flag``: 1 bit.

    ``elem`` names the element type an SRAM operand holds (``u8``, ``i8``,
    ``f16``, ``f32``, ``i32``, or ``dtype`` for the instruction's dtype field);
    its effective address must be aligned to that element size.
    """

    name: str
    kind: str
    bits: int
    lo: int = 0
    hi: int = 0
    elem: str = ""
    doc: str = ""

    @property
    def width(self) -> int:
        return self.bits


# -- field constructors, one per kind ---------------------------------------------


def sram_field(name: str, elem: str, doc: str) -> FieldSpec:
    return FieldSpec(name, "sram", 2 + 4 + SRAM_OFFSET_BITS, 0, (1 << SRAM_OFFSET_BITS) - 1, elem, doc)


def dram_field(name: str, doc: str) -> FieldSpec:
    return FieldSpec(name, "dram", 4 + DRAM_OFFSET_BITS, 0, (1 << DRAM_OFFSET_BITS) - 1, "", doc)


def reg_field(name: str, doc: str) -> FieldSpec:
    return FieldSpec(name, "reg", 4, 0, REGISTERS - 1, "", doc)


def uint_field(name: str, bits: int, doc: str, lo: int = 1, hi: int | None = None) -> FieldSpec:
    return FieldSpec(name, "uint", bits, lo, (1 << bits) - 1 if hi is None else hi, "", doc)


def int_field(name: str, bits: int, doc: str) -> FieldSpec:
    return FieldSpec(name, "int", bits, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, "", doc)


def f32_field(name: str, doc: str) -> FieldSpec:
    return FieldSpec(name, "f32", 32, 0, 0, "", doc)


def flag_field(name: str, doc: str) -> FieldSpec:
    return FieldSpec(name, "flag", 1, 0, 1, "", doc)


def dtype_field(name: str, doc: str) -> FieldSpec:
    return FieldSpec(name, "dtype", 2, 0, len(DTYPES) - 1, "", doc)


# -- values ------------------------------------------------------------------------


def elem_type(field: FieldSpec, args: Mapping[str, Any]) -> str:
    """The element type of an SRAM field, resolving ``dtype``."""
    return str(args.get("dtype", "f32")) if field.elem == "dtype" else field.elem


def to_f32(value: float) -> float:
    """Round a Python float to the nearest binary32 value."""
    return struct.unpack("<f", struct.pack("<f", float(value)))[0]


def _base_offset_problem(name: str, reg: int, offset: int, hi: int, memory: str) -> str | None:
    if not 0 <= reg < REGISTERS:
        return f"field '{name}': register r{reg} out of range (r0..r15)"
    if not 0 <= offset <= hi:
        return f"field '{name}': {memory} offset {offset} out of range [0, {hi}]"
    return None


def _f32_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return f"field '{name}' must be a number, got {value!r}"
    v = float(value)
    if math.isnan(v):
        return f"field '{name}' must not be NaN"
    if name == "radius" and not v > 0:
        return f"field 'radius' = {v} must be positive (or inf)"
    if name == "scale" and not (math.isfinite(v) and v > 0):
        return f"field 'scale' = {v} must be finite and positive"
    if name == "cap" and not (math.isfinite(v) and v >= 0):
        return f"field 'cap' = {v} must be finite and non-negative (0: no cap)"
    if math.isfinite(v) and abs(v) > FP32_MAX:
        return f"field '{name}' = {v} overflows fp32"
    return None


def field_problem(field: FieldSpec, value: Any) -> str | None:
    """Why `value` is illegal for `field`, or None."""
    name = field.name
    match field.kind:
        case "sram":
            if not isinstance(value, Sram):
                return f"field '{name}' must be an SRAM operand, got {value!r}"
            if value.buffer not in BUFFERS:
                return f"field '{name}': unknown SRAM buffer '{value.buffer}' (expected {', '.join(BUFFERS)})"
            return _base_offset_problem(name, value.reg, value.offset, field.hi, "SRAM")
        case "dram":
            if not isinstance(value, Dram):
                return f"field '{name}' must be a DRAM operand, got {value!r}"
            return _base_offset_problem(name, value.reg, value.offset, field.hi, "DRAM")
        case "reg" | "uint" | "int" | "flag":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"field '{name}' must be an integer, got {value!r}"
            if not field.lo <= value <= field.hi:
                what = f"r{value}" if field.kind == "reg" else str(value)
                return f"field '{name}' = {what} out of range [{field.lo}, {field.hi}]"
        case "f32":
            return _f32_problem(name, value)
        case "dtype":
            if value not in DTYPES:
                return f"field '{name}' = {value!r} must be one of {', '.join(DTYPES)}"
    return None
