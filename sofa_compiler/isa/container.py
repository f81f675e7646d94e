"""The `.sofa` program container: header, code, DRAM image and symbol table.

Binary layout (all integers little-endian; see docs/isa.md for the table):

====== ===== =====================================================
offset bytes field
====== ===== =====================================================
0      4     magic ``b"SOFA"``
4      2     container version (2)
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
80     4     CRC-32 of the whole file, computed with this field zero
84     12    reserved, zero
====== ===== =====================================================

The code section is ``count`` 32-byte words. A DRAM-image segment is
``address u32, length u32`` followed by ``length`` bytes, padded to 4. A
symbol is ``name_len u16, kind u8, dtype u8, ndim u8, 3 x pad, address u32,
bytes u32, ndim x u32 dims``, then the UTF-8 name padded to 4.

The checksum covers every byte, the header's counts and sizes included, so a
flipped bit anywhere is "checksum mismatch". Behind it, the parser still
checks every count against the bytes it describes (a file written by another
tool, or edited with its checksum fixed up, gets a clean error naming the
field). Version 1 files checksummed only the sections; they are refused with
a "reassemble it" message.

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
VERSION = 2
HEADER_SIZE = 96
CHECKSUM_OFFSET = 80
MAX_DRAM_BYTES = 1 << 32
"""DRAM addresses are 32-bit, so no program needs more (the assembler's `.dram` range is the same)."""
_HEADER = struct.Struct("<4sHH32sQIIIIIIIII12x")
assert _HEADER.size == HEADER_SIZE
_SEGMENT = struct.Struct("<II")
_SYMBOL = struct.Struct("<HBBB3xII")


def file_checksum(blob: bytes | bytearray, offset: int) -> int:
    """CRC-32 of `blob` with the 4-byte checksum field at `offset` read as zero (programs and bundles)."""
    crc = zlib.crc32(blob[:offset])
    crc = zlib.crc32(bytes(4), crc)
    return zlib.crc32(blob[offset + 4 :], crc)


def with_checksum(blob: bytes, offset: int) -> bytes:
    """`blob` with its checksum field at `offset` filled in."""
    return blob[:offset] + struct.pack("<I", file_checksum(blob, offset)) + blob[offset + 4 :]


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
            0,
        )
        return with_checksum(header + body, CHECKSUM_OFFSET)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Program:
        """Parse a container; `ContainerError` names the part that is wrong."""
        header = _check_header(blob)
        code = _read_code(blob, header)
        segments = _read_segments(blob, header)
        symbols = _read_symbols(blob, header)
        return cls(code, symbols, segments, header.config_hash, header.dram_bytes)


@dataclass(frozen=True)
class _Header:
    config_hash: bytes
    dram_bytes: int
    code_count: int
    data_offset: int
    segment_count: int
    data_size: int
    symbol_offset: int
    symbol_count: int
    symbol_size: int


def _check_header(blob: bytes) -> _Header:
    """The header's fields, after checking magic, version, checksum and that the sections tile the file."""
    if len(blob) < HEADER_SIZE:
        raise ContainerError(f"truncated container: {len(blob)} bytes, the header alone is {HEADER_SIZE}")
    fields = _HEADER.unpack_from(blob)
    magic, version, word_bytes, config_hash, dram_bytes, code_off, *sections, crc = fields
    code_count, data_off, seg_count, data_size, sym_off, sym_count, sym_size = sections
    if magic != MAGIC:
        raise ContainerError(f"not a SOFA program: magic is {magic!r}, expected {MAGIC!r}")
    if version == 1:
        raise ContainerError(
            "container version 1 (written before programs carried a whole-file checksum): reassemble it with "
            "sofa-as, or recompile the model"
        )
    if version != VERSION:
        raise ContainerError(f"unsupported container version {version} (this tool reads version {VERSION})")
    end = sym_off + sym_size
    if len(blob) < end:
        raise ContainerError(f"truncated container: {len(blob)} bytes, the header describes {end}")
    if len(blob) > end:
        raise ContainerError(
            f"corrupt container: {len(blob) - end} trailing bytes after the {end} the header describes"
        )
    if file_checksum(blob, CHECKSUM_OFFSET) != crc:
        raise ContainerError("corrupt container: checksum mismatch (the file was truncated, extended or altered)")
    if word_bytes != WORD_BYTES:
        raise ContainerError(f"header: instruction words are {word_bytes} bytes; this ISA uses {WORD_BYTES}")
    if not 0 < dram_bytes <= MAX_DRAM_BYTES:
        raise ContainerError(f"header: DRAM size {dram_bytes} is outside [1, 2^32] bytes")
    if code_off != HEADER_SIZE:
        raise ContainerError(f"header: code section offset {code_off}, expected {HEADER_SIZE}")
    if data_off != code_off + code_count * WORD_BYTES:
        raise ContainerError(
            f"header: DRAM-image offset {data_off} does not follow {code_count} instructions (expected "
            f"{code_off + code_count * WORD_BYTES})"
        )
    if sym_off != data_off + data_size:
        raise ContainerError(f"header: symbol-table offset {sym_off} does not follow the {data_size}-byte DRAM image")
    if seg_count * _SEGMENT.size > data_size:
        raise ContainerError(f"header: {seg_count} segments do not fit a {data_size}-byte DRAM image")
    if sym_count * _SYMBOL.size > sym_size:
        raise ContainerError(f"header: {sym_count} symbols do not fit a {sym_size}-byte symbol table")
    return _Header(bytes(config_hash), dram_bytes, code_count, data_off, seg_count, data_size, sym_off, sym_count,
                   sym_size)  # fmt: skip


def _read_code(blob: bytes, header: _Header) -> list[Instruction | RawWord]:
    code: list[Instruction | RawWord] = []
    for i in range(header.code_count):
        word = blob[HEADER_SIZE + i * WORD_BYTES : HEADER_SIZE + (i + 1) * WORD_BYTES]
        try:
            code.append(decode(word))
        except DecodeError as error:
            code.append(RawWord(word, str(error)))
    return code


def _read_segments(blob: bytes, header: _Header) -> list[Segment]:
    segments = []
    pos, end = header.data_offset, header.symbol_offset
    for index in range(header.segment_count):
        if pos + _SEGMENT.size > end:
            raise ContainerError(f"DRAM image: segment {index} of {header.segment_count} starts past the section")
        address, length = _SEGMENT.unpack_from(blob, pos)
        pos += _SEGMENT.size
        if pos + length > end:
            raise ContainerError(f"DRAM image: segment {index} ({length} bytes at {address}) overruns its section")
        if address + length > header.dram_bytes:
            raise ContainerError(
                f"DRAM image: segment {index} [{address}, {address + length}) lies outside the "
                f"{header.dram_bytes}-byte DRAM"
            )
        segments.append(Segment(address, bytes(blob[pos : pos + length])))
        pos += length + (-length % 4)
    if pos != end:
        raise ContainerError(f"DRAM image: {header.segment_count} segments use {pos - header.data_offset} of its "
                             f"{header.data_size} bytes")  # fmt: skip
    return segments


def _read_symbols(blob: bytes, header: _Header) -> list[Symbol]:
    symbols = []
    pos, end = header.symbol_offset, header.symbol_offset + header.symbol_size
    for index in range(header.symbol_count):
        if pos + _SYMBOL.size > end:
            raise ContainerError(f"symbol table: entry {index} of {header.symbol_count} starts past the table")
        name_len, kind, dtype, ndim, address, size = _SYMBOL.unpack_from(blob, pos)
        pos += _SYMBOL.size
        name_end = pos + 4 * ndim + name_len
        if name_end > end:
            raise ContainerError(f"symbol table: entry {index} ({ndim} dimensions, {name_len}-byte name) overruns "
                                 "the table")  # fmt: skip
        shape = struct.unpack_from(f"<{ndim}I", blob, pos)
        try:
            name = bytes(blob[pos + 4 * ndim : name_end]).decode()
        except UnicodeDecodeError:
            raise ContainerError(f"symbol table: entry {index}: the name is not UTF-8") from None
        pos = name_end + (-name_len % 4)
        if kind >= len(SYMBOL_KINDS) or dtype >= len(SYMBOL_DTYPES):
            raise ContainerError(f"symbol table: entry {index} ('{name}'): kind {kind} or dtype {dtype} is unknown")
        if address + size > header.dram_bytes:
            raise ContainerError(
                f"symbol table: '{name}' [{address}, {address + size}) lies outside the {header.dram_bytes}-byte DRAM"
            )
        try:
            symbols.append(Symbol(name, SYMBOL_KINDS[kind], SYMBOL_DTYPES[dtype], tuple(shape), address, size))
        except ValueError as error:
            raise ContainerError(f"symbol table: {error}") from None
    if pos != end:
        raise ContainerError(
            f"symbol table: {header.symbol_count} symbols use {pos - header.symbol_offset} of its "
            f"{header.symbol_size} bytes"
        )
    return symbols


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
