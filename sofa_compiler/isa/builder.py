"""Build SOFA programs from Python: instructions, hardware loops, DRAM symbols, SRAM allocation.

`ProgramBuilder` is the low-level API a tiling pass uses; `attention_program`
is a complete, reusable attention pipeline built with it (DMA -> DLZS score
-> SADS -> RASS -> gather K/V -> SU-FA, looped over query and KV tiles).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from dialects import numerics
from sofa_compiler.isa.container import Program, Segment, Symbol, dtype_name, hash_bytes
from sofa_compiler.isa.encoding import Instruction, make

DEFAULT_SRAM = {"token": 192 * 1024, "weight": 96 * 1024, "temp": 28 * 1024}


class BuildError(ValueError):
    """A program cannot be built (does not fit, bad shape, ...)."""


class SramAllocator:
    """Bump allocation of named regions in the three SRAM buffers."""

    def __init__(self, sizes: Mapping[str, int] | None = None, align: int = 64):
        self.sizes = dict(sizes or DEFAULT_SRAM)
        self.used = {name: 0 for name in self.sizes}
        self.align = align
        self.regions: dict[str, tuple[str, int, int]] = {}

    def alloc(self, name: str, nbytes: int, prefer: tuple[str, ...] = ("token", "weight", "temp")) -> tuple[str, int]:
        """(buffer, offset) of a new region, in the first preferred buffer it fits."""
        for buffer in prefer:
            start = -(-self.used[buffer] // self.align) * self.align
            if start + nbytes <= self.sizes[buffer]:
                self.used[buffer] = start + nbytes
                self.regions[name] = (buffer, start, nbytes)
                return buffer, start
        free = ", ".join(f"{b} {self.sizes[b] - self.used[b]} B free" for b in prefer)
        raise BuildError(f"SRAM region '{name}' ({nbytes} bytes) does not fit ({free})")


class ProgramBuilder:
    """Append instructions, open hardware loops, lay out DRAM symbols."""

    def __init__(self, config_hash: str | bytes | None = None, dram_align: int = 64):
        self.code: list[Instruction] = []
        self.symbols: list[Symbol] = []
        self.segments: list[Segment] = []
        self.config_hash = hash_bytes(config_hash)
        self.dram_top = 0
        self.dram_align = dram_align
        self._depth = 0

    def emit(self, op: str, wait: int = 0, signal: int = 0, **args: Any) -> Instruction:
        instr = make(op, wait, signal, **args)
        self.code.append(instr)
        return instr

    @contextmanager
    def loop(self, count: int) -> Iterator[None]:
        """``with b.loop(n): ...`` emits ``loop count=n, body=<len>`` around the body."""
        at = len(self.code)
        self.code.append(Instruction("loop", {"count": count, "body": 1}))
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        body = len(self.code) - at - 1
        if body == 0:
            raise BuildError("empty hardware loop body")
        self.code[at] = make("loop", count=count, body=body)

    def _reserve(self, nbytes: int) -> int:
        address = -(-self.dram_top // self.dram_align) * self.dram_align
        self.dram_top = address + nbytes
        return address

    def symbol(self, name: str, shape: tuple[int, ...], dtype: Any, kind: str, pad_bytes: int = 0) -> Symbol:
        """Reserve a DRAM region (plus `pad_bytes` of slack after it) and name it."""
        np_dtype = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
        address = self._reserve(size + pad_bytes)
        sym = Symbol(name, kind, dtype_name(np_dtype), tuple(int(d) for d in shape), address, size)
        self.symbols.append(sym)
        return sym

    def const(self, name: str, value: np.ndarray) -> Symbol:
        """A constant (e.g. LZ-coded W_k) placed in the DRAM image."""
        value = np.ascontiguousarray(value)
        sym = self.symbol(name, value.shape, value.dtype, "const")
        self.segments.append(Segment(sym.address, value.tobytes()))
        return sym

    def build(self, dram_bytes: int | None = None) -> Program:
        code = list(self.code)
        if not code or code[-1].op != "halt":
            code.append(make("halt"))
        size = dram_bytes if dram_bytes is not None else max(4096, -(-self.dram_top // 4096) * 4096)
        return Program(code, list(self.symbols), list(self.segments), self.config_hash, size)


@dataclass(frozen=True)
class AttentionShape:
    """The attention problem `attention_program` compiles."""

    sq: int
    skv: int
    depth: int
    vdepth: int
    tile: int  # Bc
    keep: float
    radius: float = math.inf  # in A-hat (unscaled score) units
    causal: bool = False
    scale: float | None = None
    lanes: int = 128
    dtype: str = "f32"  # SU-FA storage of q, k, v


def _bits(*sems: int) -> int:
    return sum(1 << s for s in sems)


def attention_program(
    shape: AttentionShape,
    sram: Mapping[str, int] | None = None,
    config_hash: str | bytes | None = None,
) -> Program:
    """One attention head through the whole SOFA pipeline.

    Inputs: ``q`` ``[sq, d]``, ``k`` ``[skv, d]``, ``v`` ``[skv, dv]`` (in
    ``shape.dtype``), ``khat`` ``[skv, d]`` f16 (the predicted keys, e.g. from
    ``dlzs.key`` or ``fp16(K)``), and ``q16`` ``[sq, d]`` f16 when the dtype is
    f32 (with f16 storage DLZS reads ``q`` directly). Output: ``o`` ``[sq, dv]`` f32.

    Semaphores: s0 K-hat tile loaded, s1 A-hat ready, s2 SADS indices ready,
    s3 RASS list ready, s4 K/V gathered, s5 K-hat/A-hat buffers free (initial
    credit), s6 index/list/K/V buffers free (initial credit), s7 O ready.
    """
    s = shape
    lanes = min(s.lanes, s.sq)
    if s.sq % lanes:
        raise BuildError(f"sq = {s.sq} must be a multiple of the lanes used ({lanes})")
    tiles = numerics.tile_count(s.skv, s.tile)
    m = numerics.keep_count(s.keep, s.tile)
    scale = s.scale if s.scale is not None else 1.0 / math.sqrt(s.depth)
    es = {"f16": 2, "f32": 4}[s.dtype]
    np_dtype = np.float16 if s.dtype == "f16" else np.float32
    d, dv, bc = s.depth, s.vdepth, s.tile
    padded = tiles * bc

    b = ProgramBuilder(config_hash)
    q = b.symbol("q", (s.sq, d), np_dtype, "input")
    q16 = b.symbol("q16", (s.sq, d), np.float16, "input") if s.dtype == "f32" else q
    k = b.symbol("k", (s.skv, d), np_dtype, "input", pad_bytes=(padded - s.skv) * d * es)
    v = b.symbol("v", (s.skv, dv), np_dtype, "input", pad_bytes=(padded - s.skv) * dv * es)
    khat = b.symbol("khat", (s.skv, d), np.float16, "input", pad_bytes=(padded - s.skv) * d * 2)
    o = b.symbol("o", (s.sq, dv), np.float32, "output")

    alloc = SramAllocator(sram)
    sram_q = alloc.alloc("q", lanes * d * es)
    sram_q16 = alloc.alloc("q16", lanes * d * 2) if s.dtype == "f32" else sram_q
    sram_k = alloc.alloc("k", bc * d * es)
    sram_v = alloc.alloc("v", bc * dv * es)
    sram_idx = alloc.alloc("idx", lanes * m * 4)
    sram_o = alloc.alloc("o", lanes * dv * 4)
    sram_kh = alloc.alloc("khat", bc * d * 2, ("temp", "weight", "token"))
    sram_a = alloc.alloc("ahat", lanes * bc * 2, ("temp", "weight", "token"))
    sram_list = alloc.alloc("list", (1 + bc) * 4, ("temp", "weight", "token"))

    def at(region: tuple[str, int], reg: int = 0):
        from dialects.sofa_isa import Sram

        return Sram(region[0], reg, region[1])

    from dialects.sofa_isa import Dram

    # r1 q16 row offset, r2 q row offset, r3 query_base, r4 o row offset, r5 key_base, r6 khat offset
    b.emit("post", signal=_bits(5, 6))
    for reg in (1, 2, 3, 4):
        b.emit("set", rd=reg, imm=0)
    with b.loop(s.sq // lanes):
        b.emit("barrier")
        if s.dtype == "f32":
            b.emit(
                "dma.load", dst=at(sram_q16), src=Dram(1, q16.address), rows=lanes, row_bytes=d * 2, src_stride=d * 2
            )
        b.emit("dma.load", dst=at(sram_q), src=Dram(2, q.address), rows=lanes, row_bytes=d * es, src_stride=d * es)
        b.emit("barrier")
        b.emit("sufa.init", lanes=lanes, vdepth=dv)
        b.emit("set", rd=5, imm=0)
        b.emit("set", rd=6, imm=0)
        with b.loop(tiles):
            b.emit(
                "dma.load",
                wait=_bits(5),
                signal=_bits(0),
                dst=at(sram_kh),
                src=Dram(6, khat.address),
                rows=bc,
                row_bytes=d * 2,
                src_stride=d * 2,
            )
            b.emit(
                "dlzs.score",
                wait=_bits(0),
                signal=_bits(1),
                q=at(sram_q16),
                khat=at(sram_kh),
                out=at(sram_a),
                lanes=lanes,
                keys=bc,
                depth=d,
            )
            b.emit(
                "sads",
                wait=_bits(1, 6),
                signal=_bits(2, 5),
                scores=at(sram_a),
                out=at(sram_idx),
                lanes=lanes,
                keys=bc,
                m=m,
                radius=s.radius,
                key_base=5,
                query_base=3,
                kv_len=s.skv,
                causal=int(s.causal),
            )
            b.emit("rass", wait=_bits(2), signal=_bits(3), idx=at(sram_idx), out=at(sram_list), lanes=lanes, m=m)
            for region, sym, width in ((sram_k, k, d), (sram_v, v, dv)):
                b.emit(
                    "dma.gather",
                    wait=_bits(3) if sym is k else 0,
                    signal=_bits(4) if sym is v else 0,
                    dst=at(region),
                    src=Dram(0, sym.address),
                    list=at(sram_list),
                    key_base=5,
                    window=bc,
                    row_bytes=width * es,
                    src_stride=width * es,
                )
            b.emit(
                "sufa.step",
                wait=_bits(4),
                signal=_bits(6),
                q=at(sram_q),
                k=at(sram_k),
                v=at(sram_v),
                idx=at(sram_idx),
                key_base=5,
                lanes=lanes,
                m=m,
                window=bc,
                depth=d,
                vdepth=dv,
                scale=scale,
                dtype=s.dtype,
            )
            b.emit("addi", rd=5, rs=5, imm=bc)
            b.emit("addi", rd=6, rs=6, imm=bc * d * 2)
        b.emit("sufa.norm", signal=_bits(7), out=at(sram_o), lanes=lanes, vdepth=dv)
        b.emit(
            "dma.store",
            wait=_bits(7),
            src=at(sram_o),
            dst=Dram(4, o.address),
            rows=lanes,
            row_bytes=dv * 4,
            dst_stride=dv * 4,
        )
        b.emit("addi", rd=1, rs=1, imm=lanes * d * 2)
        b.emit("addi", rd=2, rs=2, imm=lanes * d * es)
        b.emit("addi", rd=3, rs=3, imm=lanes)
        b.emit("addi", rd=4, rs=4, imm=lanes * dv * 4)
    b.emit("barrier")
    return b.build()


def attention_inputs(
    shape: AttentionShape, q: np.ndarray, k: np.ndarray, v: np.ndarray, khat: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The input dict for `attention_program` (K-hat defaults to fp16(K), the `sofa` dialect's predictor input)."""
    np_dtype = np.float16 if shape.dtype == "f16" else np.float32
    inputs = {
        "q": np.asarray(q, np_dtype),
        "k": np.asarray(k, np_dtype),
        "v": np.asarray(v, np_dtype),
        "khat": numerics.to_fp16_saturating(np.asarray(k, np.float64))
        if khat is None
        else np.asarray(khat, np.float16),
    }
    if shape.dtype == "f32":
        inputs["q16"] = np.asarray(q).astype(np.float16)
    return inputs
