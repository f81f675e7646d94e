"""The `.sofa` program container: header, code, DRAM image and symbol table.

Binary layout (all integers little-endian; see docs/isa.md for the table):

====== ===== =====================================================
offset bytes field
====== ===== =====================================================
0      4     magic ``b"SOFA"``
4      2     container version (1)
6      2     instruction word size in bytes (32)
8      32    target config hash (sha256 digest, raw bytes)
40     8     DRAM size the program needs, in bytes
48     4     code section offset
52     4     instruction count
56     4     DRAM-image section offset
60     4     segment count
64     4     DRAM-image section size in bytes
68     4     symbol-table offset
72     4     symbol count
76     4     symbol-table size in bytes
80     4     CRC-32 of every byte after the 96-byte header
84     12    reserved, zero
====== ===== =====================================================

The code section is ``count`` 32-byte words. A DRAM-image segment is
``address u32, length u32`` followed by ``length`` bytes, padded to 4. A
symbol is ``name_len u16, kind u8, dtype u8, ndim u8, 3 x pad, address u32,
bytes u32, ndim x u32 dims``, then the UTF-8 name padded to 4.

Serialisation is deterministic: the same `Program` always gives the same bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from dialects.sofa_isa import SYMBOL_DTYPES, SYMBOL_KINDS
from sofa_compiler.isa.encoding import WORD_BYTES, DecodeError, Instruction, decode, encode

MAGIC = b"SOFA"
VERSION = 1
HEADER_SIZE = 96
MAX_DRAM_BYTES = 1 << 32
"""DRAM addresses are 32-bit, so no program needs more (the assembler's `.dram` range is the same)."""
_HEADER = struct.Struct("<4sHH32sQIIIIIIIII12x")
assert _HEADER.size == HEADER_SIZE


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a symbol dtype name (``f16`` -> float16, ``i32`` -> int32, ...)."""
    kind = {"f": "float", "i": "int", "u": "uint"}[name[0]]
    return np.dtype(f"{kind}{name[1:]}")


def dtype_name(dtype: np.dtype) -> str:
    """The symbol dtype name of a numpy dtype."""
    dtype = np.dtype(dtype)
    name = {"f": "f", "i": "i", "u": "u"}.get(dtype.kind, "?") + str(dtype.itemsize * 8)
    if name not in SYMBOL_DTYPES:
        raise ValueError(f"dtype {dtype} is not supported in a symbol table (supported: {', '.join(SYMBOL_DTYPES)})")
    return name


class ContainerError(ValueError):
    """A `.sofa` file is truncated, corrupt or of an unsupported version."""


@dataclass(frozen=True)
class RawWord:
    """A code word that does not decode; executing it traps."""

    word: bytes
    reason: str

    @property
    def op(self) -> str:
        return "<illegal>"

    def __str__(self) -> str:
        return f".word 0x{self.word[::-1].hex()}"


@dataclass(frozen=True)
class Symbol:
    """A named DRAM region: program inputs, outputs and constants."""

    name: str
    kind: str  # input, output, const
    dtype: str  # a SYMBOL_DTYPES name
    shape: tuple[int, ...]
    address: int
    size: int

    def __post_init__(self) -> None:
        if self.kind not in SYMBOL_KINDS:
            raise ValueError(f"symbol '{self.name}': kind must be one of {', '.join(SYMBOL_KINDS)}, got '{self.kind}'")
        if self.dtype not in SYMBOL_DTYPES:
            raise ValueError(f"symbol '{self.name}': dtype must be one of {', '.join(SYMBOL_DTYPES)}")
        expected = int(np.prod(self.shape, dtype=np.int64)) * numpy_dtype(self.dtype).itemsize
        if expected != self.size:
            raise ValueError(
                f"symbol '{self.name}': {self.size} bytes does not match shape {list(self.shape)} {self.dtype}"
            )

    @property
    def np_dtype(self) -> np.dtype:
        return numpy_dtype(self.dtype)


@dataclass(frozen=True)
class Segment:
    """A piece of the initial DRAM image."""

    address: int
    data: bytes


@dataclass
class Program:
    """A complete SOFA program."""

    code: list[Instruction | RawWord] = field(default_factory=list)
    symbols: list[Symbol] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    config_hash: bytes = bytes(32)
    dram_bytes: int = 1 << 24

    def symbol(self, name: str) -> Symbol:
        for sym in self.symbols:
            if sym.name == name:
                return sym
        raise KeyError(f"no symbol '{name}' (symbols: {', '.join(s.name for s in self.symbols)})")

    @property
    def config_hash_hex(self) -> str:
        return self.config_hash.hex()

    def to_bytes(self) -> bytes:
        try:
            return self._to_bytes()
        except struct.error as error:
            # A field past its width (address, size or dimension over 2^32, > 65535-byte name, ...).
            raise ContainerError(f"a value does not fit its container field: {error}") from None

    def _to_bytes(self) -> bytes:
        code = b"".join(instr.word if isinstance(instr, RawWord) else encode(instr) for instr in self.code)
        data = bytearray()
        for seg in self.segments:
            data += struct.pack("<II", seg.address, len(seg.data)) + seg.data + bytes(-len(seg.data) % 4)
        symtab = bytearray()
        for sym in self.symbols:
            name = sym.name.encode()
            symtab += struct.pack(
                "<HBBB3xII",
                len(name),
                SYMBOL_KINDS.index(sym.kind),
                SYMBOL_DTYPES.index(sym.dtype),
                len(sym.shape),
                sym.address,
                sym.size,
            )
            symtab += b"".join(struct.pack("<I", d) for d in sym.shape)
            symtab += name + bytes(-len(name) % 4)
        body = code + bytes(data) + bytes(symtab)
        if len(self.config_hash) != 32:
            raise ContainerError(f"config hash must be 32 bytes (sha256), got {len(self.config_hash)}")
        header = _HEADER.pack(
            MAGIC,
            VERSION,
            WORD_BYTES,
            self.config_hash,
            self.dram_bytes,
            HEADER_SIZE,
            len(self.code),
            HEADER_SIZE + len(code),
            len(self.segments),
            len(data),
            HEADER_SIZE + len(code) + len(data),
            len(self.symbols),
            len(symtab),
            zlib.crc32(body),
        )
        return header + body

    @classmethod
    def from_bytes(cls, blob: bytes) -> Program:
        if len(blob) < HEADER_SIZE:
            raise ContainerError(f"truncated container: {len(blob)} bytes, the header alone is {HEADER_SIZE}")
        (
            magic,
            version,
            word_bytes,
            config_hash,
            dram_bytes,
            code_off,
            code_count,
            data_off,
            seg_count,
            data_size,
            sym_off,
            sym_count,
            sym_size,
            crc,
        ) = _HEADER.unpack_from(blob)
        if magic != MAGIC:
            raise ContainerError(f"not a SOFA program: magic is {magic!r}, expected {MAGIC!r}")
        if version != VERSION:
            raise ContainerError(f"unsupported container version {version} (this tool reads version {VERSION})")
        if word_bytes != WORD_BYTES:
            raise ContainerError(f"instruction words are {word_bytes} bytes; this ISA uses {WORD_BYTES}")
        if not 0 < dram_bytes <= MAX_DRAM_BYTES:
            raise ContainerError(f"corrupt container: DRAM size {dram_bytes} is outside [1, 2^32] bytes")
        end = sym_off + sym_size
        if code_off != HEADER_SIZE or data_off != code_off + code_count * WORD_BYTES or sym_off != data_off + data_size:
            raise ContainerError("corrupt container: section offsets are inconsistent")
        if len(blob) < end:
            raise ContainerError(f"truncated container: {len(blob)} bytes, the sections need {end}")
        if len(blob) > end:
            raise ContainerError(f"corrupt container: {len(blob) - end} trailing bytes after the symbol table")
        if zlib.crc32(blob[HEADER_SIZE:]) != crc:
            raise ContainerError("corrupt container: checksum mismatch")
        code: list[Instruction | RawWord] = []
        for i in range(code_count):
            word = blob[code_off + i * WORD_BYTES : code_off + (i + 1) * WORD_BYTES]
            try:
                code.append(decode(word))
            except DecodeError as error:
                code.append(RawWord(word, str(error)))
        segments = []
        pos = data_off
        try:
            for _ in range(seg_count):
                address, length = struct.unpack_from("<II", blob, pos)
                pos += 8
                if pos + length > sym_off:
                    raise ContainerError("corrupt container: a DRAM-image segment overruns its section")
                segments.append(Segment(address, bytes(blob[pos : pos + length])))
                pos += length + (-length % 4)
            symbols = []
            pos = sym_off
            for _ in range(sym_count):
                name_len, kind, dtype, ndim, address, size = struct.unpack_from("<HBBB3xII", blob, pos)
                pos += 16
                shape = struct.unpack_from(f"<{ndim}I", blob, pos)
                pos += 4 * ndim
                name = bytes(blob[pos : pos + name_len]).decode()
                pos += name_len + (-name_len % 4)
                if pos > end or kind >= len(SYMBOL_KINDS) or dtype >= len(SYMBOL_DTYPES):
                    raise ContainerError("corrupt container: bad symbol-table entry")
                symbols.append(Symbol(name, SYMBOL_KINDS[kind], SYMBOL_DTYPES[dtype], tuple(shape), address, size))
        except (struct.error, UnicodeDecodeError, ValueError) as error:
            if isinstance(error, ContainerError):
                raise
            raise ContainerError(f"corrupt container: {error}") from None
        return cls(code, symbols, segments, bytes(config_hash), dram_bytes)


def hash_bytes(config_hash: str | bytes | None) -> bytes:
    """A 32-byte config hash from hex text, raw bytes or None (all zero)."""
    if config_hash is None:
        return bytes(32)
    if isinstance(config_hash, bytes):
        raw = config_hash
    else:
        try:
            raw = bytes.fromhex(config_hash)
        except ValueError:
            raise ValueError(f"config hash '{config_hash}' is not hex") from None
    if len(raw) != 32:
        raise ValueError(f"config hash must be 32 bytes (64 hex digits), got {len(raw)} bytes")
    return raw
