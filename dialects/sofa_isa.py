"""The `sofa_isa` dialect: one op per SOFA accelerator instruction.

This module is the single source of truth for the instruction set: the
opcode table (`OPS`) defines every instruction's mnemonic, opcode, unit and
fields (kind, width, legal range, element type). The binary encoder
(`sofa_compiler/isa/encoding.py`), the assembler, the functional simulator
and the ops below are all generated from or checked against it, and
`docs/isa.md` documents it for hardware review.

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
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    Float32Type,
    FloatAttr,
    IntAttr,
    IntegerAttr,
    StringAttr,
    f32,
    i64,
)
from xdsl.ir import Attribute, Block, Dialect, ParametrizedAttribute, Region
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    region_def,
    traits_def,
)
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.traits import NoTerminator
from xdsl.utils.exceptions import VerifyException

# ---------------------------------------------------------------------------
# The instruction set (pure data; no xDSL here)
# ---------------------------------------------------------------------------

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


def _sram(name: str, elem: str, doc: str) -> FieldSpec:
    return FieldSpec(name, "sram", 2 + 4 + SRAM_OFFSET_BITS, 0, (1 << SRAM_OFFSET_BITS) - 1, elem, doc)


def _dram(name: str, doc: str) -> FieldSpec:
    return FieldSpec(name, "dram", 4 + DRAM_OFFSET_BITS, 0, (1 << DRAM_OFFSET_BITS) - 1, "", doc)


def _reg(name: str, doc: str) -> FieldSpec:
    return FieldSpec(name, "reg", 4, 0, REGISTERS - 1, "", doc)


def _uint(name: str, bits: int, doc: str, lo: int = 1, hi: int | None = None) -> FieldSpec:
    return FieldSpec(name, "uint", bits, lo, (1 << bits) - 1 if hi is None else hi, "", doc)


def _int(name: str, bits: int, doc: str) -> FieldSpec:
    return FieldSpec(name, "int", bits, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, "", doc)


def _f32(name: str, doc: str) -> FieldSpec:
    return FieldSpec(name, "f32", 32, 0, 0, "", doc)


_LANES = _uint("lanes", 12, "query lanes (rows) in the tile; at most the target's lanes")
_DTYPE = FieldSpec("dtype", "dtype", 2, 0, len(DTYPES) - 1, "", "storage type of q/k/v (or out): f16 or f32")
_ATTENTION_STEP_FIELDS = (
    _sram("q", "dtype", "Q [lanes, depth]"),
    _sram("k", "dtype", "K window [window, depth]; key i at row i - key_base"),
    _sram("v", "dtype", "V window [window, vdepth]"),
    _sram("idx", "i32", "SADS indices i32 [lanes, m] (descending predicted score)"),
    _reg("key_base", "register: global index of the window's first key"),
    _LANES,
    _uint("m", 16, "slots per lane"),
    _uint("window", 16, "rows in the K/V window (Bc)"),
    _uint("depth", 12, "head dim d"),
    _uint("vdepth", 12, "value head dim dv"),
    _f32("scale", "softmax scale (finite, > 0)"),
    _DTYPE,
)
"""Fields of `sufa.step` and of the baseline's `fa2.step`, which differ only in their costs."""


@dataclass(frozen=True)
class OpSpec:
    """One instruction: mnemonic, opcode, unit and fields in encoding order."""

    mnemonic: str
    opcode: int
    unit: str
    fields: tuple[FieldSpec, ...]
    doc: str

    @property
    def ir_name(self) -> str:
        return "sofa_isa." + self.mnemonic.replace(".", "_")

    def layout(self) -> list[tuple[FieldSpec, int]]:
        """(field, first bit) pairs; fields are packed from bit 24 upwards."""
        bit = HEADER_BITS
        out = []
        for field in self.fields:
            out.append((field, bit))
            bit += field.bits
        return out

    @property
    def used_bits(self) -> int:
        return HEADER_BITS + sum(f.bits for f in self.fields)

    def field(self, name: str) -> FieldSpec:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(name)


OPS: tuple[OpSpec, ...] = (
    # --- CTRL: scalar registers, loops, synchronisation -------------------
    OpSpec("halt", 0x01, "ctrl", (), "Stop the machine once every unit is idle."),
    OpSpec(
        "set",
        0x02,
        "ctrl",
        (_reg("rd", "destination register (r0: no effect)"), _int("imm", 32, "value")),
        "rd = imm",
    ),
    OpSpec(
        "addi",
        0x03,
        "ctrl",
        (_reg("rd", "destination register (r0: no effect)"), _reg("rs", "source register"), _int("imm", 32, "addend")),
        "rd = rs + imm (32-bit two's complement, wrapping)",
    ),
    OpSpec(
        "loop",
        0x04,
        "ctrl",
        (_uint("count", 24, "iterations (>= 1)"), _uint("body", 16, "instructions in the body (>= 1)")),
        "Hardware loop: run the next `body` instructions `count` times (nest depth <= 4).",
    ),
    OpSpec(
        "loopr",
        0x07,
        "ctrl",
        (
            _reg("count", "register holding the iteration count (<= 0: skip the body)"),
            _uint("body", 16, "instructions in the body (>= 1)"),
        ),
        "Hardware loop with a run-time count: run the next `body` instructions r[count] times "
        "(nest depth <= 4, shared with `loop`); used to skip fully masked causal KV tiles.",
    ),
    OpSpec("barrier", 0x05, "ctrl", (), "Wait until every unit is idle."),
    OpSpec("post", 0x06, "ctrl", (), "Increment the semaphores in the signal mask (initial credits)."),
    # --- DMA ----------------------------------------------------------------
    OpSpec(
        "dma.load",
        0x10,
        "dma_load",
        (
            _sram("dst", "u8", "destination; rows are packed (stride = row_bytes)"),
            _dram("src", "source of row 0"),
            _uint("rows", 16, "rows to copy"),
            _uint("row_bytes", 20, "bytes per row"),
            _uint("src_stride", 32, "DRAM bytes between row starts", lo=0),
        ),
        "2-D strided copy DRAM -> SRAM.",
    ),
    OpSpec(
        "dma.gather",
        0x11,
        "dma_load",
        (
            _sram("dst", "u8", "destination window; row i lands at dst + (i - key_base) * row_bytes"),
            _dram("src", "address of DRAM row 0"),
            _sram("list", "i32", "index list: count, then `count` global row indices"),
            _reg("key_base", "register holding the window's first row index"),
            _uint("window", 16, "rows in the destination window; i - key_base must be in [0, window)"),
            _uint("row_bytes", 20, "bytes per row"),
            _uint("src_stride", 32, "DRAM bytes between row starts", lo=0),
        ),
        "Indexed row gather DRAM -> SRAM (on-demand K/V/X rows).",
    ),
    OpSpec(
        "dma.scatter",
        0x19,
        "dma_store",
        (
            _sram("src", "u8", "source window; row i is read at src + (i - key_base) * row_bytes"),
            _dram("dst", "address of DRAM row 0"),
            _sram("list", "i32", "index list: count, then `count` global row indices"),
            _reg("key_base", "register holding the window's first row index"),
            _uint("window", 16, "rows in the source window; i - key_base must be in [0, window)"),
            _uint("row_bytes", 20, "bytes per row"),
            _uint("dst_stride", 32, "DRAM bytes between row starts", lo=0),
        ),
        "Indexed row scatter SRAM -> DRAM (generated K/V rows to their DRAM rows).",
    ),
    OpSpec(
        "dma.store",
        0x18,
        "dma_store",
        (
            _sram("src", "u8", "source; rows are packed"),
            _dram("dst", "destination of row 0"),
            _uint("rows", 16, "rows to copy"),
            _uint("row_bytes", 20, "bytes per row"),
            _uint("dst_stride", 32, "DRAM bytes between row starts", lo=0),
        ),
        "2-D strided copy SRAM -> DRAM.",
    ),
    # --- DLZS -----------------------------------------------------------------
    OpSpec(
        "dlzs.key",
        0x20,
        "dlzs",
        (
            _sram("x", "i8", "tokens int8 [rows, hidden]"),
            _sram("xexp", "i8", "row exponents int8 [rows]"),
            _sram("w", "i8", "W_k LZ codes [hidden, cols], one 4-bit code per byte"),
            _sram("out", "f16", "K-hat f16 [rows, cols]"),
            _uint("rows", 16, "token rows"),
            _uint("hidden", 16, "hidden size H (reduction)"),
            _uint("cols", 12, "K-hat columns (head dim)"),
            _int("base", 8, "W_k code base exponent"),
        ),
        "DLZS phase 1: K-hat = X . LZ(W_k) (numerics.dlzs_key_quantized).",
    ),
    OpSpec(
        "dlzs.score",
        0x21,
        "dlzs",
        (
            _sram("q", "f16", "Q f16 [lanes, depth]; the LZEs derive 5-bit LZ codes"),
            _sram("khat", "f16", "K-hat f16 [keys, depth]"),
            _sram("out", "f16", "A-hat f16 [lanes, keys]"),
            _LANES,
            _uint("keys", 16, "keys in the tile"),
            _uint("depth", 12, "head dim d"),
        ),
        "DLZS phase 2: A-hat = LZ(Q) . K-hat^T (numerics.dlzs_score).",
    ),
    OpSpec(
        "mul4.score",
        0x22,
        "dlzs",
        (
            _sram("q", "f16", "Q f16 [lanes, depth]"),
            _sram("k", "f16", "K f16 [keys, depth]"),
            _sram("out", "f16", "A-hat f16 [lanes, keys]"),
            _LANES,
            _uint("keys", 16, "keys in the tile"),
            _uint("depth", 12, "head dim d"),
        ),
        "Baseline predictor (ablation only): A-hat = Q4 . K4^T with 4-bit rows (numerics.mul4_score), "
        "on the prediction array as 4-bit multipliers.",
    ),
    # --- SADS -----------------------------------------------------------------
    OpSpec(
        "sads",
        0x30,
        "sads",
        (
            _sram("scores", "f16", "A-hat f16 [lanes, keys]"),
            _sram("out", "i32", "selected global key indices i32 [lanes, m], -1 = empty"),
            _LANES,
            _uint("keys", 16, "keys in the tile (Bc)"),
            _uint("m", 16, "keys kept per lane (<= keys)"),
            _f32("radius", "sphere radius in A-hat units (> 0, inf = no clip)"),
            _reg("key_base", "register: global index of the tile's first key"),
            _reg("query_base", "register: global index of lane 0's query"),
            _uint("kv_len", 32, "valid keys: key_base + j < kv_len", lo=0),
            FieldSpec("causal", "flag", 1, 0, 1, "", "1: key must be <= query"),
        ),
        "Top-m per lane with the sphere clip (numerics.sads_tile), plus key_base.",
    ),
    OpSpec(
        "rass",
        0x31,
        "sads",
        (
            _sram("idx", "i32", "SADS output i32 [lanes, m]"),
            _sram("out", "i32", "list: count, then the union of indices"),
            _LANES,
            _uint("m", 16, "slots per lane"),
        ),
        "Reuse-aware schedule: union of selected keys, most-shared first (ties: lower index).",
    ),
    OpSpec(
        "kvmark",
        0x33,
        "sads",
        (
            _sram("idx", "i32", "SADS output i32 [lanes, m]"),
            _sram("bitmap", "u8", "needed-row bitmap: bit g (byte g // 8, bit g % 8) for key g"),
            _LANES,
            _uint("m", 16, "slots per lane"),
            _uint("keys", 24, "keys the bitmap covers; an index >= keys traps"),
        ),
        "Mark the selected keys as needed: set bitmap bit g for every index g >= 0 in idx.",
    ),
    OpSpec(
        "kvlist",
        0x34,
        "sads",
        (
            _sram("bitmap", "u8", "needed-row bitmap (see kvmark)"),
            _sram("out", "i32", "list: count, then the needed keys of the window, ascending"),
            _reg("key_base", "register: global index of the window's first key"),
            _uint("window", 16, "keys in the window"),
            FieldSpec("clear", "flag", 1, 0, 1, "", "1: clear the window's bits after reading them"),
        ),
        "List the window's needed keys (bitmap bits key_base .. key_base + window - 1).",
    ),
    OpSpec(
        "topk.mask",
        0x32,
        "sads",
        (
            _sram("scores", "f16", "whole rows of A-hat f16 [lanes, keys], masked in place"),
            _LANES,
            _uint("keys", 16, "keys per row (the whole padded row)"),
            _uint("m", 16, "keys kept per row (<= keys)"),
            _reg("query_base", "register: global index of lane 0's query"),
            _uint("kv_len", 32, "valid keys: j < kv_len", lo=0),
            FieldSpec("causal", "flag", 1, 0, 1, "", "1: key must be <= query"),
        ),
        "Baseline whole-row top-k: keep each row's m best valid scores, set the rest to -inf "
        "(numerics.topk_mask_rows). Used by the separate-stage pipeline only.",
    ),
    # --- KV generation ----------------------------------------------------------
    OpSpec(
        "kvgen",
        0x40,
        "kvgen",
        (
            _sram("x", "dtype", "token rows [window, hidden]; row i at x + (i - key_base) * hidden"),
            _sram("w", "dtype", "W_k or W_v rows [hidden, cols] (one hidden chunk)"),
            _sram("out", "dtype", "K or V rows [window, cols]; row i at (i - key_base)"),
            _sram("list", "i32", "index list: count, then indices"),
            _reg("key_base", "register: global index of the window's first row"),
            _uint("window", 16, "rows in the window"),
            _uint("hidden", 16, "hidden columns in this chunk"),
            _uint("cols", 12, "output columns (head dim)"),
            _DTYPE,
            _sram("bias", "f32", "bias f32 [cols] (read by mode 2 only)"),
            FieldSpec(
                "mode", "uint", 2, 0, 2, "", "0: out = x.W; 1: out += x.W (f32 only); 2: out = bias + x.W (f32 only)"
            ),
        ),
        "On-demand K/V: out[i] (op)= x[i] . W for the listed rows only (numerics.kv_rows, fp32 accumulator).",
    ),
    # --- SU-FA ------------------------------------------------------------------
    OpSpec(
        "sufa.init",
        0x50,
        "sufa",
        (_LANES, _uint("vdepth", 12, "value head dim dv")),
        "Reset the per-lane accumulators (m = -inf, l = 0, o = 0).",
    ),
    OpSpec(
        "sufa.step",
        0x51,
        "sufa",
        _ATTENTION_STEP_FIELDS,
        "One KV tile of SU-FA (numerics.sufa_tile_step + sufa_accumulate).",
    ),
    OpSpec(
        "fa2.step",
        0x53,
        "sufa",
        _ATTENTION_STEP_FIELDS,
        "Baseline FlashAttention-2 tile step: the same exact result as sufa.step, but the running "
        "max is tracked over every score and l and o are rescaled each tile (more compares, EXPs "
        "and multiplies). Used by the separate-stage pipeline only.",
    ),
    OpSpec(
        "sufa.norm",
        0x52,
        "sufa",
        (
            _sram("out", "f32", "O f32 [lanes, vdepth]"),
            _LANES,
            _uint("vdepth", 12, "value head dim dv"),
        ),
        "O = o / l (numerics.sufa_finish).",
    ),
)

BY_MNEMONIC: dict[str, OpSpec] = {spec.mnemonic: spec for spec in OPS}
BY_OPCODE: dict[int, OpSpec] = {spec.opcode: spec for spec in OPS}
BY_IR_NAME: dict[str, OpSpec] = {spec.ir_name: spec for spec in OPS}

ELEM_BYTES = {"u8": 1, "i8": 1, "f16": 2, "f32": 4, "i32": 4}

for _spec in OPS:
    assert _spec.used_bits <= WORD_BITS, (_spec.mnemonic, _spec.used_bits)


def elem_type(field: FieldSpec, args: Mapping[str, Any]) -> str:
    """The element type of an SRAM field, resolving ``dtype``."""
    return str(args.get("dtype", "f32")) if field.elem == "dtype" else field.elem


def to_f32(value: float) -> float:
    """Round a Python float to the nearest binary32 value."""
    return struct.unpack("<f", struct.pack("<f", float(value)))[0]


def field_problem(field: FieldSpec, value: Any) -> str | None:
    """Why `value` is illegal for `field`, or None."""
    name = field.name
    match field.kind:
        case "sram":
            if not isinstance(value, Sram):
                return f"field '{name}' must be an SRAM operand, got {value!r}"
            if value.buffer not in BUFFERS:
                return f"field '{name}': unknown SRAM buffer '{value.buffer}' (expected {', '.join(BUFFERS)})"
            if not 0 <= value.reg < REGISTERS:
                return f"field '{name}': register r{value.reg} out of range (r0..r15)"
            if not 0 <= value.offset <= field.hi:
                return f"field '{name}': SRAM offset {value.offset} out of range [0, {field.hi}]"
        case "dram":
            if not isinstance(value, Dram):
                return f"field '{name}' must be a DRAM operand, got {value!r}"
            if not 0 <= value.reg < REGISTERS:
                return f"field '{name}': register r{value.reg} out of range (r0..r15)"
            if not 0 <= value.offset <= field.hi:
                return f"field '{name}': DRAM offset {value.offset} out of range [0, {field.hi}]"
        case "reg" | "uint" | "int" | "flag":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"field '{name}' must be an integer, got {value!r}"
            if not field.lo <= value <= field.hi:
                what = f"r{value}" if field.kind == "reg" else str(value)
                return f"field '{name}' = {what} out of range [{field.lo}, {field.hi}]"
        case "f32":
            if not isinstance(value, int | float) or isinstance(value, bool):
                return f"field '{name}' must be a number, got {value!r}"
            v = float(value)
            if math.isnan(v):
                return f"field '{name}' must not be NaN"
            if name == "radius" and not v > 0:
                return f"field 'radius' = {v} must be positive (or inf)"
            if name == "scale" and not (math.isfinite(v) and v > 0):
                return f"field 'scale' = {v} must be finite and positive"
            if math.isfinite(v) and abs(v) > 3.4028234663852886e38:
                return f"field '{name}' = {v} overflows fp32"
        case "dtype":
            if value not in DTYPES:
                return f"field '{name}' = {value!r} must be one of {', '.join(DTYPES)}"
    return None


def instruction_problems(spec: OpSpec, args: Mapping[str, Any], wait: int = 0, signal: int = 0) -> list[str]:
    """Every static problem with one instruction (ranges, alignment, masks, cross-field rules)."""
    problems = []
    names = [f.name for f in spec.fields]
    missing = [n for n in names if n not in args]
    unknown = [n for n in args if n not in names]
    if missing:
        problems.append(f"{spec.mnemonic}: missing field(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"{spec.mnemonic}: unknown field(s) {', '.join(unknown)} (fields: {', '.join(names)})")
    for mask_name, mask in (("wait", wait), ("signal", signal)):
        if isinstance(mask, bool) or not isinstance(mask, int) or not 0 <= mask < (1 << SEMAPHORES):
            problems.append(f"{mask_name} mask {mask!r} out of range [0, 0xff]")
    if spec.unit == "ctrl":
        if wait:
            problems.append(f"{spec.mnemonic}: control instructions cannot wait on semaphores (wait = {wait:#x})")
        if signal and spec.mnemonic != "post":
            problems.append(f"{spec.mnemonic}: only 'post' may signal among control instructions")
    if spec.mnemonic == "post" and not signal:
        problems.append("post: signal mask is empty")
    if missing or unknown:
        return problems
    for field in spec.fields:
        if problem := field_problem(field, args[field.name]):
            problems.append(f"{spec.mnemonic}: {problem}")
    if problems:
        return problems
    for field in spec.fields:
        if field.kind == "sram":
            size = ELEM_BYTES[elem_type(field, args)]
            if args[field.name].offset % size:
                problems.append(
                    f"{spec.mnemonic}: field '{field.name}' offset {args[field.name].offset} "
                    f"is not aligned to its {size}-byte elements"
                )
    if "m" in args and "keys" in args and args["m"] > args["keys"]:
        problems.append(f"{spec.mnemonic}: m = {args['m']} exceeds keys = {args['keys']}")
    if spec.mnemonic == "sufa.step" and args["m"] > args["window"]:
        problems.append(f"sufa.step: m = {args['m']} exceeds window = {args['window']}")
    return problems


# ---------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------


def _parse_reg(parser: AttrParser | Parser) -> int:
    pos = parser.pos
    name = parser.parse_identifier(" (a register r0..r15)")
    if not (name.startswith("r") and name[1:].isdigit() and 0 <= int(name[1:]) < REGISTERS):
        parser.raise_error(f"expected a register r0..r15, got '{name}'", pos, parser.pos)
    return int(name[1:])


def _parse_base_offset(parser: AttrParser | Parser) -> tuple[int, int]:
    """``rN + imm`` (the ``+ imm`` part is optional)."""
    reg = _parse_reg(parser)
    offset = 0
    if parser.parse_optional_punctuation("+") is not None:
        offset = parser.parse_integer(allow_boolean=False, allow_negative=False)
    return reg, offset


@irdl_attr_definition
class SramAttr(ParametrizedAttribute):
    """An SRAM operand ``#sofa_isa.sram<temp, r3 + 4096>``: buffer, base register, byte offset."""

    name = "sofa_isa.sram"

    buffer: StringAttr
    reg: IntAttr
    offset: IntAttr

    def __init__(self, buffer: str, reg: int, offset: int):
        super().__init__(StringAttr(buffer), IntAttr(reg), IntAttr(offset))

    @property
    def value(self) -> Sram:
        return Sram(self.buffer.data, self.reg.data, self.offset.data)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        parser.parse_punctuation("<")
        buffer = parser.parse_identifier(" (an SRAM buffer: token, weight or temp)")
        parser.parse_punctuation(",")
        reg, offset = _parse_base_offset(parser)
        parser.parse_punctuation(">")
        return (StringAttr(buffer), IntAttr(reg), IntAttr(offset))

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.buffer.data}, r{self.reg.data} + {self.offset.data}>")

    def verify(self) -> None:
        if self.buffer.data not in BUFFERS:
            raise VerifyException(f"unknown SRAM buffer '{self.buffer.data}' (expected {', '.join(BUFFERS)})")
        if not 0 <= self.reg.data < REGISTERS:
            raise VerifyException(f"register r{self.reg.data} out of range (r0..r15)")


@irdl_attr_definition
class DramAttr(ParametrizedAttribute):
    """A DRAM operand ``#sofa_isa.dram<r2 + 65536>``: base register and byte offset."""

    name = "sofa_isa.dram"

    reg: IntAttr
    offset: IntAttr

    def __init__(self, reg: int, offset: int):
        super().__init__(IntAttr(reg), IntAttr(offset))

    @property
    def value(self) -> Dram:
        return Dram(self.reg.data, self.offset.data)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        parser.parse_punctuation("<")
        reg, offset = _parse_base_offset(parser)
        parser.parse_punctuation(">")
        return (IntAttr(reg), IntAttr(offset))

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<r{self.reg.data} + {self.offset.data}>")

    def verify(self) -> None:
        if not 0 <= self.reg.data < REGISTERS:
            raise VerifyException(f"register r{self.reg.data} out of range (r0..r15)")


SYMBOL_KINDS = ("input", "output", "const", "scratch")
"""``scratch``: DRAM the program writes and reads itself (e.g. generated K/V rows); never staged or returned."""
SYMBOL_DTYPES = ("i8", "u8", "i16", "f16", "i32", "f32", "f64", "i64")


@irdl_attr_definition
class SymbolAttr(ParametrizedAttribute):
    """A named DRAM region: ``#sofa_isa.symbol<"q", input, f32, [128, 64], 0, 32768>``.

    Parameters: name, kind (input, output, const), element dtype, shape,
    DRAM byte address, size in bytes.
    """

    name = "sofa_isa.symbol"

    sym_name: StringAttr
    kind: StringAttr
    dtype: StringAttr
    shape: ArrayAttr[IntAttr]
    address: IntAttr
    size: IntAttr

    def __init__(self, name: str, kind: str, dtype: str, shape: Sequence[int], address: int, size: int):
        super().__init__(
            StringAttr(name),
            StringAttr(kind),
            StringAttr(dtype),
            ArrayAttr([IntAttr(d) for d in shape]),
            IntAttr(address),
            IntAttr(size),
        )

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        parser.parse_punctuation("<")
        name = parser.parse_str_literal(" (the symbol name)")
        parser.parse_punctuation(",")
        kind = parser.parse_identifier(" (input, output or const)")
        parser.parse_punctuation(",")
        dtype = parser.parse_identifier(" (an element dtype)")
        parser.parse_punctuation(",")
        shape = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, lambda: parser.parse_integer(allow_boolean=False, allow_negative=False)
        )
        parser.parse_punctuation(",")
        address = parser.parse_integer(allow_boolean=False, allow_negative=False)
        parser.parse_punctuation(",")
        size = parser.parse_integer(allow_boolean=False, allow_negative=False)
        parser.parse_punctuation(">")
        return (
            StringAttr(name),
            StringAttr(kind),
            StringAttr(dtype),
            ArrayAttr([IntAttr(d) for d in shape]),
            IntAttr(address),
            IntAttr(size),
        )

    def print_parameters(self, printer: Printer) -> None:
        shape = ", ".join(str(d.data) for d in self.shape.data)
        printer.print_string(
            f'<"{self.sym_name.data}", {self.kind.data}, {self.dtype.data}, [{shape}], '
            f"{self.address.data}, {self.size.data}>"
        )

    def verify(self) -> None:
        if self.kind.data not in SYMBOL_KINDS:
            raise VerifyException(f"symbol '{self.sym_name.data}': kind '{self.kind.data}' is not input/output/const")
        if self.dtype.data not in SYMBOL_DTYPES:
            raise VerifyException(
                f"symbol '{self.sym_name.data}': unknown dtype '{self.dtype.data}' "
                f"(expected {', '.join(SYMBOL_DTYPES)})"
            )


@irdl_attr_definition
class SegmentAttr(ParametrizedAttribute):
    """A DRAM image segment: ``#sofa_isa.segment<4096, "00ff...">`` (address, hex bytes)."""

    name = "sofa_isa.segment"

    address: IntAttr
    data: StringAttr

    def __init__(self, address: int, data: bytes):
        super().__init__(IntAttr(address), StringAttr(data.hex()))

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        parser.parse_punctuation("<")
        address = parser.parse_integer(allow_boolean=False, allow_negative=False)
        parser.parse_punctuation(",")
        data = parser.parse_str_literal(" (hex bytes)")
        parser.parse_punctuation(">")
        return (IntAttr(address), StringAttr(data))

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f'<{self.address.data}, "{self.data.data}">')

    def verify(self) -> None:
        try:
            bytes.fromhex(self.data.data)
        except ValueError:
            raise VerifyException("segment data is not a hex byte string") from None


# ---------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------


def _attr_to_value(field: FieldSpec, attr: Attribute) -> Any:
    if isinstance(attr, SramAttr | DramAttr):
        return attr.value
    if isinstance(attr, IntegerAttr):
        return attr.value.data
    if isinstance(attr, FloatAttr):
        return float(attr.value.data)
    if isinstance(attr, StringAttr):
        return attr.data
    raise VerifyException(f"field '{field.name}': unsupported attribute {attr}")


def value_to_attr(field: FieldSpec, value: Any) -> Attribute:
    """The property attribute for a field value."""
    match field.kind:
        case "sram":
            return SramAttr(value.buffer, value.reg, value.offset)
        case "dram":
            return DramAttr(value.reg, value.offset)
        case "f32":
            return FloatAttr(to_f32(value), f32)
        case "dtype":
            return StringAttr(value)
        case _:
            return IntegerAttr(int(value), i64)


def _format_f32(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(to_f32(value))


class IsaInstructionOp(IRDLOperation):
    """Base of the generated instruction ops; `SPEC` is the instruction's `OpSpec`."""

    SPEC: ClassVar[OpSpec]

    def field_values(self) -> dict[str, Any]:
        return {f.name: _attr_to_value(f, self.properties[f.name]) for f in self.SPEC.fields}

    @property
    def wait_mask(self) -> int:
        attr = self.properties.get("wait")
        return attr.value.data if isinstance(attr, IntegerAttr) else 0

    @property
    def signal_mask(self) -> int:
        attr = self.properties.get("signal")
        return attr.value.data if isinstance(attr, IntegerAttr) else 0

    @classmethod
    def build_op(cls, values: Mapping[str, Any], wait: int = 0, signal: int = 0) -> IsaInstructionOp:
        props: dict[str, Attribute] = {f.name: value_to_attr(f, values[f.name]) for f in cls.SPEC.fields}
        props["wait"] = IntegerAttr(wait, i64)
        props["signal"] = IntegerAttr(signal, i64)
        return cls.create(properties=props)

    def verify_(self) -> None:
        for field in self.SPEC.fields:
            attr = self.properties.get(field.name)
            expected = {"sram": SramAttr, "dram": DramAttr, "f32": FloatAttr, "dtype": StringAttr}.get(
                field.kind, IntegerAttr
            )
            if not isinstance(attr, expected):
                raise VerifyException(f"{self.SPEC.mnemonic}: field '{field.name}' must be a {expected.name} attribute")
        problems = instruction_problems(self.SPEC, self.field_values(), self.wait_mask, self.signal_mask)
        if problems:
            raise VerifyException(problems[0])

    @classmethod
    def parse(cls, parser: Parser) -> IsaInstructionOp:
        values: dict[str, Any] = {}
        masks = {"wait": 0, "signal": 0}
        fields = {f.name: f for f in cls.SPEC.fields}
        mnemonic = cls.SPEC.mnemonic

        def parse_entry(key: str, pos: int) -> None:
            parser.parse_punctuation("=")
            if key in masks:
                masks[key] = parser.parse_integer(allow_boolean=False, allow_negative=False)
                return
            if key not in fields:
                known = ", ".join(fields) or "none"
                parser.raise_error(f"{mnemonic} has no field '{key}' (fields: {known})", pos, parser.pos)
            if key in values:
                parser.raise_error(f"field '{key}' is given twice", pos, parser.pos)
            values[key] = _parse_field_value(parser, fields[key])

        # Field-less ops may be followed directly by the next op's name, so
        # only the mask keywords can start their entry list.
        pos = parser.pos
        first = parser.parse_optional_identifier() if fields else parser.parse_optional_keyword_in(("wait", "signal"))
        if first is not None:
            parse_entry(first, pos)
            while parser.parse_optional_punctuation(",") is not None:
                pos = parser.pos
                parse_entry(parser.parse_identifier(" (a field name)"), pos)
        missing = [name for name in fields if name not in values]
        if missing:
            parser.raise_error(f"{mnemonic}: missing field(s) {', '.join(missing)}")
        attr_dict = parser.parse_optional_attr_dict_with_keyword()
        op = cls.build_op(values, masks["wait"], masks["signal"])
        if attr_dict is not None:
            op.attributes.update(attr_dict.data)
        return op

    def print(self, printer: Printer) -> None:
        parts = []
        for field in self.SPEC.fields:
            value = _attr_to_value(field, self.properties[field.name])
            parts.append(f"{field.name} = {_format_field_value(field, value)}")
        if self.wait_mask:
            parts.append(f"wait = {self.wait_mask}")
        if self.signal_mask:
            parts.append(f"signal = {self.signal_mask}")
        if parts:
            printer.print_string(" " + ", ".join(parts))
        if self.attributes:
            printer.print_op_attributes(self.attributes, print_keyword=True)


def _parse_field_value(parser: Parser, field: FieldSpec) -> Any:
    match field.kind:
        case "sram":
            pos = parser.pos
            buffer = parser.parse_identifier(" (an SRAM buffer)")
            if buffer not in BUFFERS:
                parser.raise_error(f"unknown SRAM buffer '{buffer}' (expected {', '.join(BUFFERS)})", pos, parser.pos)
            parser.parse_punctuation("[")
            reg, offset = _parse_base_offset(parser)
            parser.parse_punctuation("]")
            return Sram(buffer, reg, offset)
        case "dram":
            pos = parser.pos
            if parser.parse_identifier(" (dram)") != "dram":
                parser.raise_error("expected a DRAM operand dram[rN + offset]", pos, parser.pos)
            parser.parse_punctuation("[")
            reg, offset = _parse_base_offset(parser)
            parser.parse_punctuation("]")
            return Dram(reg, offset)
        case "reg":
            return _parse_reg(parser)
        case "f32":
            negative = parser.parse_optional_punctuation("-") is not None
            if parser.parse_optional_keyword("inf") is not None:
                value = math.inf
            else:
                value = float(parser.parse_number())
            return -value if negative else value
        case "dtype":
            pos = parser.pos
            name = parser.parse_identifier(" (f16 or f32)")
            if name not in DTYPES:
                parser.raise_error(f"dtype must be one of {', '.join(DTYPES)}, got '{name}'", pos, parser.pos)
            return name
        case _:
            return parser.parse_integer(allow_boolean=False)


def _format_field_value(field: FieldSpec, value: Any) -> str:
    match field.kind:
        case "sram":
            return f"{value.buffer}[r{value.reg} + {value.offset}]"
        case "dram":
            return f"dram[r{value.reg} + {value.offset}]"
        case "reg":
            return f"r{value}"
        case "f32":
            return _format_f32(value)
        case _:
            return str(value)


def _class_name(spec: OpSpec) -> str:
    return "".join(part.capitalize() for part in spec.mnemonic.replace(".", "_").split("_")) + "Op"


def _make_op(spec: OpSpec) -> type[IsaInstructionOp]:
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__doc__": f"`{spec.mnemonic}` (opcode {spec.opcode:#04x}, unit {spec.unit}): {spec.doc}",
        "name": spec.ir_name,
        "wait": prop_def(IntegerAttr[I64]),
        "signal": prop_def(IntegerAttr[I64]),
    }
    for field in spec.fields:
        namespace[field.name] = prop_def(
            {"sram": SramAttr, "dram": DramAttr, "f32": FloatAttr[Float32Type], "dtype": StringAttr}.get(
                field.kind, IntegerAttr[I64]
            )
        )
    op_class = irdl_op_definition(type(_class_name(spec), (IsaInstructionOp,), namespace))
    op_class.SPEC = spec
    return op_class


LoopT = TypeVar("LoopT", bound=IRDLOperation)


def _verify_loop_body(loop: IRDLOperation) -> None:
    """What `loop` and `loopr` share: a non-empty body, and at most `MAX_LOOP_DEPTH` loops nested."""
    if not any(True for _ in loop.regions[0].block.ops):
        raise VerifyException("loop body is empty")
    depth = 1
    parent = loop.parent_op()
    while parent is not None:
        if isinstance(parent, LoopOp | LoopRegOp):
            depth += 1
        parent = parent.parent_op()
    if depth > MAX_LOOP_DEPTH:
        raise VerifyException(f"loops nest {depth} deep; the hardware supports {MAX_LOOP_DEPTH}")


def _parse_loop_rest(cls: type[LoopT], parser: Parser, count: int) -> LoopT:
    """A loop after its count: optional ``attributes {...}``, then the body."""
    attrs = parser.parse_optional_attr_dict_with_keyword()
    region = parser.parse_region()
    if not region.blocks:  # ``{ }``: an empty block, so the verifier can say the body is empty
        region.add_block(Block())
    op = cls.create(properties={"count": IntegerAttr(count, i64)}, regions=[region])
    if attrs is not None:
        op.attributes.update(attrs.data)
    return op


def _print_loop(loop: IRDLOperation, printer: Printer, count_text: str) -> None:
    printer.print_string(count_text)
    if loop.attributes:
        printer.print_op_attributes(loop.attributes, print_keyword=True)
    printer.print_string(" ")
    printer.print_region(loop.regions[0], print_entry_block_args=False, print_empty_block=False)


LOOP_MNEMONICS = ("loop", "loopr")
"""Instructions whose IR form is a region op (`LoopOp`, `LoopRegOp`), not an `IsaInstructionOp`."""

INSTRUCTION_OPS: dict[str, type[IsaInstructionOp]] = {
    spec.mnemonic: _make_op(spec) for spec in OPS if spec.mnemonic not in LOOP_MNEMONICS
}
"""mnemonic -> op class (e.g. ``INSTRUCTION_OPS["sads"]`` is `SadsOp`); `loop` is `LoopOp`, with a region."""

globals().update({cls.__name__: cls for cls in INSTRUCTION_OPS.values()})


def _body_depth(block: Block) -> int:
    depth = 0
    for op in block.ops:
        if isinstance(op, LoopOp):
            depth = max(depth, 1 + _body_depth(op.body.block))
    return depth


@irdl_op_definition
class LoopOp(IRDLOperation):
    """A hardware loop: ``sofa_isa.loop count = N { ... }`` runs its body N times.

    It encodes as ``loop count, body`` followed by the body's instructions;
    loops nest at most 4 deep.
    """

    name = "sofa_isa.loop"

    count = prop_def(IntegerAttr[I64])
    body = region_def("single_block")

    traits = traits_def(NoTerminator())

    def __init__(self, count: int, ops: Sequence[IRDLOperation] = ()):
        super().__init__(properties={"count": IntegerAttr(count, i64)}, regions=[Region(Block(ops))])

    def verify_(self) -> None:
        count = self.count.value.data
        if not 1 <= count < (1 << 24):
            raise VerifyException(f"loop count {count} out of range [1, {(1 << 24) - 1}]")
        _verify_loop_body(self)

    @classmethod
    def parse(cls, parser: Parser) -> LoopOp:
        parser.parse_characters("count")
        parser.parse_punctuation("=")
        count = parser.parse_integer(allow_boolean=False, allow_negative=False)
        return _parse_loop_rest(cls, parser, count)

    def print(self, printer: Printer) -> None:
        _print_loop(self, printer, f" count = {self.count.value.data}")


@irdl_op_definition
class LoopRegOp(IRDLOperation):
    """A hardware loop whose count is a register: ``sofa_isa.loopr count = r12 { ... }``.

    It encodes as ``loopr count, body`` followed by the body's instructions; a
    count <= 0 skips the body. It shares `loop`'s nesting limit.
    """

    name = "sofa_isa.loopr"

    count = prop_def(IntegerAttr[I64])
    body = region_def("single_block")

    traits = traits_def(NoTerminator())

    def __init__(self, count_register: int, ops: Sequence[IRDLOperation] = ()):
        super().__init__(properties={"count": IntegerAttr(count_register, i64)}, regions=[Region(Block(ops))])

    def verify_(self) -> None:
        register = self.count.value.data
        if not 0 <= register < REGISTERS:
            raise VerifyException(f"loopr count register r{register} out of range r0..r{REGISTERS - 1}")
        _verify_loop_body(self)

    @classmethod
    def parse(cls, parser: Parser) -> LoopRegOp:
        parser.parse_characters("count")
        parser.parse_punctuation("=")
        return _parse_loop_rest(cls, parser, _parse_reg(parser))

    def print(self, printer: Printer) -> None:
        _print_loop(self, printer, f" count = r{self.count.value.data}")


@irdl_op_definition
class ProgramOp(IRDLOperation):
    """A whole program: optional name, target config hash, DRAM size, symbol table, DRAM image and body.

    Syntax: ``sofa_isa.program @attn0 {config_hash = ..., ...} { ... }``; the
    name is how a `sofa.kernel_call` refers to a compiled kernel.

    ``config_hash`` is the 64-hex-digit sha256 of the target config;
    ``symbols`` is an array of `#sofa_isa.symbol`, ``segments`` an array of
    `#sofa_isa.segment`.
    """

    name = "sofa_isa.program"

    sym_name = opt_prop_def(StringAttr)
    config_hash = prop_def(StringAttr)
    dram_bytes = prop_def(IntegerAttr[I64])
    symbols = prop_def(ArrayAttr[SymbolAttr])
    segments = prop_def(ArrayAttr[SegmentAttr])
    body = region_def("single_block")

    traits = traits_def(NoTerminator())

    def verify_(self) -> None:
        text = self.config_hash.data
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise VerifyException(f"config_hash must be 64 lowercase hex digits, got '{text}'")
        dram = self.dram_bytes.value.data
        if not 0 < dram <= (1 << 32):
            raise VerifyException(f"dram_bytes {dram} out of range [1, 2^32]")
        names = set()
        for sym in self.symbols.data:
            name = sym.sym_name.data
            if name in names:
                raise VerifyException(f"symbol '{name}' is defined twice")
            names.add(name)
            if sym.address.data + sym.size.data > dram:
                raise VerifyException(f"symbol '{name}' [{sym.address.data}, +{sym.size.data}) lies outside DRAM")
        for seg in self.segments.data:
            if seg.address.data + len(seg.data.data) // 2 > dram:
                raise VerifyException(f"segment at {seg.address.data} lies outside DRAM")

    @classmethod
    def parse(cls, parser: Parser) -> ProgramOp:
        name = parser.parse_optional_symbol_name()
        pos = parser.pos
        props = parser.parse_optional_attr_dict()
        if name is not None:
            props["sym_name"] = name
        for key in ("config_hash", "dram_bytes", "symbols", "segments"):
            if key not in props:
                parser.raise_error(f"sofa_isa.program needs '{key}'", pos, parser.pos)
        region = parser.parse_region()
        return cls.create(properties=props, regions=[region])

    def print(self, printer: Printer) -> None:
        if self.sym_name is not None:
            printer.print_string(" ")
            printer.print_symbol_name(self.sym_name.data)
        printer.print_string(" ")
        printer.print_attr_dict(
            {key: self.properties[key] for key in ("config_hash", "dram_bytes", "symbols", "segments")}
        )
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False, print_empty_block=False)


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
    "DTYPES",
    "INSTRUCTION_OPS",
    "LOOP_MNEMONICS",
    "OPS",
    "Dram",
    "DramAttr",
    "FieldSpec",
    "IsaInstructionOp",
    "LoopOp",
    "LoopRegOp",
    "OpSpec",
    "ProgramOp",
    "SegmentAttr",
    "SofaISA",
    "Sram",
    "SramAttr",
    "SymbolAttr",
    "field_problem",
    "instruction_problems",
]
