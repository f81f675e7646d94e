"""SOFA assembly text: assembler and disassembler.

One instruction per line::

    dlzs.score q=token[r1+0], khat=temp[r0+4096], out=temp[r0+8192], lanes=128, keys=64, depth=64 ; wait=0b1 signal=0b10

Directives (before or between instructions)::

    .config <64 hex digits>                 target config hash (sha256)
    .dram <bytes>                           DRAM size the program needs
    .symbol <name> <kind> <dtype> [d0,d1,...] @<address>
    .data <address> <hex bytes>             DRAM image bytes (adjacent lines merge)
    .word 0x<64 hex digits>                 a raw instruction word (e.g. to test traps)

``#`` starts a comment. ``loop count=N, body=B`` repeats the next B
instructions; the disassembler indents loop bodies, the assembler ignores
indentation. Numbers may be decimal, ``0x`` hex or ``0b`` binary.
`disassemble(assemble(text)) == text` for canonical text (what the
disassembler prints).
"""

from __future__ import annotations

import math
import re
from typing import Any

from dialects.sofa_isa import BY_MNEMONIC, LOOP_MNEMONICS, REGISTERS, Dram, FieldSpec, Sram
from sofa_compiler.isa.container import Program, RawWord, Segment, Symbol, numpy_dtype
from sofa_compiler.isa.encoding import WORD_BYTES, DecodeError, Instruction, decode, format_instruction

DATA_LINE_BYTES = 32


class AsmError(ValueError):
    """An assembly error; the message starts with ``file:line:col:``."""


_SRAM_RE = re.compile(r"^(\w+)\[\s*r(\d+)\s*(?:\+\s*([0-9a-fA-FxXbB_]+)\s*)?\]$")
_DRAM_RE = re.compile(r"^dram\[\s*r(\d+)\s*(?:\+\s*([0-9a-fA-FxXbB_]+)\s*)?\]$")


def _int(text: str) -> int:
    return int(text.replace("_", ""), 0)


def _u32(value: int, what: str) -> int:
    """`value` if it fits the container's 32-bit field, else a ValueError naming `what`."""
    if not 0 <= value < 1 << 32:
        raise ValueError(f"{what} {value} is outside [0, 2^32)")
    return value


def _parse_value(spec_field: FieldSpec, text: str) -> Any:
    match spec_field.kind:
        case "sram":
            match = _SRAM_RE.match(text)
            if not match:
                raise ValueError(f"expected an SRAM operand like token[r1+0], got '{text}'")
            return Sram(match[1], int(match[2]), _int(match[3]) if match[3] else 0)
        case "dram":
            match = _DRAM_RE.match(text)
            if not match:
                raise ValueError(f"expected a DRAM operand like dram[r2+4096], got '{text}'")
            return Dram(int(match[1]), _int(match[2]) if match[2] else 0)
        case "reg":
            if not re.fullmatch(r"r\d+", text):
                raise ValueError(f"expected a register r0..r{REGISTERS - 1}, got '{text}'")
            return int(text[1:])
        case "f32":
            if text in ("inf", "+inf"):
                return math.inf
            if text == "-inf":
                return -math.inf
            return float(text)
        case "dtype":
            return text
        case _:
            return _int(text)


class _Assembler:
    def __init__(self, source: str, filename: str):
        self.source = source
        self.filename = filename
        self.code: list[Instruction | RawWord] = []
        self.symbols: list[Symbol] = []
        self.segments: list[Segment] = []
        self.config_hash: bytes | None = None
        self.dram_bytes: int | None = None

    def error(self, lineno: int, col: int, message: str) -> AsmError:
        return AsmError(f"{self.filename}:{lineno}:{col}: {message}")

    def run(self) -> Program:
        for lineno, raw in enumerate(self.source.splitlines(), 1):
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            col = len(line) - len(line.lstrip()) + 1
            text = line.strip()
            if text.startswith("."):
                self.directive(lineno, col, text, raw)
            else:
                self.instruction(lineno, col, text, raw)
        dram = self.dram_bytes
        if dram is None:
            top = max(
                [s.address + s.size for s in self.symbols] + [g.address + len(g.data) for g in self.segments] + [0]
            )
            dram = max(4096, -(-top // 4096) * 4096)
        return Program(self.code, self.symbols, self.segments, self.config_hash or bytes(32), dram)

    def directive(self, lineno: int, col: int, text: str, raw: str) -> None:
        name, _, rest = text.partition(" ")
        rest = rest.strip()
        try:
            match name:
                case ".config":
                    raw_hash = bytes.fromhex(rest)
                    if len(raw_hash) != 32:
                        raise ValueError(f"config hash must be 64 hex digits, got {len(rest)}")
                    self.config_hash = raw_hash
                case ".dram":
                    self.dram_bytes = _int(rest)
                    if not 0 < self.dram_bytes <= 1 << 32:
                        raise ValueError(f"DRAM size {self.dram_bytes} out of range [1, 2^32]")
                case ".symbol":
                    match = re.fullmatch(r"(\S+)\s+(\w+)\s+(\w+)\s+\[([0-9,\s]*)\]\s+@\s*(\S+)", rest)
                    if not match:
                        raise ValueError("expected .symbol <name> <kind> <dtype> [d0,d1,...] @<address>")
                    shape = tuple(int(d) for d in match[4].replace(" ", "").split(",") if d)
                    address = _u32(_int(match[5]), "symbol address")
                    for dim in shape:
                        _u32(dim, "symbol dimension")
                    dtype = match[3]
                    try:
                        itemsize = numpy_dtype(dtype).itemsize
                    except (KeyError, TypeError):
                        raise ValueError(f"unknown dtype '{dtype}'") from None
                    size = _u32(itemsize * math.prod(shape), "symbol size in bytes")
                    if any(s.name == match[1] for s in self.symbols):
                        raise ValueError(f"symbol '{match[1]}' is defined twice")
                    self.symbols.append(Symbol(match[1], match[2], dtype, shape, address, size))
                case ".data":
                    address_text, _, hex_text = rest.partition(" ")
                    address = _u32(_int(address_text), "data address")
                    data = bytes.fromhex(hex_text.strip())
                    last = self.segments[-1] if self.segments else None
                    if last is not None and last.address + len(last.data) == address:
                        self.segments[-1] = Segment(last.address, last.data + data)
                    else:
                        self.segments.append(Segment(address, data))
                case ".word":
                    value = _int(rest)
                    if not 0 <= value < 1 << (8 * WORD_BYTES):
                        raise ValueError(f".word value does not fit in {WORD_BYTES} bytes")
                    word = value.to_bytes(WORD_BYTES, "little")
                    try:
                        self.code.append(decode(word))
                    except DecodeError as error:
                        self.code.append(RawWord(word, str(error)))
                case _:
                    raise ValueError(f"unknown directive '{name}'")
        except ValueError as error:
            raise self.error(lineno, col, str(error)) from None

    def instruction(self, lineno: int, col: int, text: str, raw: str) -> None:
        mnemonic, _, rest = text.partition(" ")
        spec = BY_MNEMONIC.get(mnemonic)
        if spec is None:
            raise self.error(lineno, col, f"unknown instruction '{mnemonic}'")
        fields_text, _, masks_text = rest.partition(";")
        fields = {f.name: f for f in spec.fields}
        args: dict[str, Any] = {}
        masks = {"wait": 0, "signal": 0}

        def column(key: str) -> int:
            found = re.search(rf"\b{re.escape(key)}\s*=", raw)
            return found.start() + 1 if found else col

        for item in filter(None, (part.strip() for part in fields_text.split(","))):
            key, eq, value = (s.strip() for s in item.partition("="))
            if not eq:
                raise self.error(lineno, column(key) if key else col, f"expected name=value, got '{item}'")
            if key not in fields:
                known = ", ".join(fields) or "none"
                raise self.error(lineno, column(key), f"{mnemonic} has no field '{key}' (fields: {known})")
            if key in args:
                raise self.error(lineno, column(key), f"field '{key}' is given twice")
            try:
                args[key] = _parse_value(fields[key], value)
            except ValueError as error:
                raise self.error(lineno, column(key), f"field '{key}': {error}") from None
        for item in masks_text.split():
            key, eq, value = item.partition("=")
            if key not in masks or not eq:
                raise self.error(lineno, column(key), f"expected wait=<mask> or signal=<mask>, got '{item}'")
            try:
                masks[key] = _int(value)
            except ValueError:
                raise self.error(lineno, column(key), f"bad {key} mask '{value}'") from None
        instr = Instruction(mnemonic, args, masks["wait"], masks["signal"])
        problems = instr.problems()
        if problems:
            problem = problems[0]
            where = next((column(name) for name in [*fields, "wait", "signal"] if f"'{name}'" in problem), col)
            raise self.error(lineno, where, problem)
        self.code.append(instr.normalized())


def assemble(source: str, filename: str = "<input>", config_hash: bytes | None = None) -> Program:
    """Assemble text into a `Program`; `AsmError` names file:line:col and the problem.

    `config_hash` (32 bytes) overrides a ``.config`` directive.
    """
    program = _Assembler(source, filename).run()
    if config_hash is not None:
        program.config_hash = config_hash
    return program


def disassemble(program: Program) -> str:
    """Canonical assembly text of a program (directives, then indented code)."""
    lines = [f".config {program.config_hash.hex()}", f".dram {program.dram_bytes}"]
    for sym in program.symbols:
        lines.append(f".symbol {sym.name} {sym.kind} {sym.dtype} [{','.join(map(str, sym.shape))}] @{sym.address}")
    for seg in program.segments:
        for start in range(0, len(seg.data), DATA_LINE_BYTES):
            chunk = seg.data[start : start + DATA_LINE_BYTES]
            lines.append(f".data {seg.address + start} {chunk.hex()}")
    lines.extend(code_lines(program.code))
    return "\n".join(lines) + "\n"


def code_lines(code: list[Instruction | RawWord], pcs: bool = False) -> list[str]:
    """One line per instruction, loop bodies indented by two spaces per level."""
    out = []
    ends: list[int] = []
    for pc, instr in enumerate(code):
        while ends and pc >= ends[-1]:
            ends.pop()
        text = str(instr) if isinstance(instr, RawWord) else format_instruction(instr)
        if isinstance(instr, RawWord):
            text += f"  # {instr.reason}"
        prefix = f"{pc:6d}:  " if pcs else ""
        out.append(prefix + "  " * len(ends) + text)
        if isinstance(instr, Instruction) and instr.op in LOOP_MNEMONICS:
            ends.append(pc + 1 + instr.args["body"])
    return out
