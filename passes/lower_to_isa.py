"""Lower tiled SOFA attention to `sofa_isa` kernels.

Each tiled `sofa.sufa` (with its `sofa.sads` and `sofa.dlzs_score`) becomes a
`sofa_isa.program` named ``attnN`` and a `sofa.kernel_call` in its place. The
program loops in hardware, so its size does not depend on sequence length:

    loop B*Hkv                      KV head (GQA: its query heads share K/V)
      loop Hq/Hkv                   query head of this KV head
        loop Sq/lanes               query tile: load Q, reset SU-FA
          loop Tc/2 { tile A; tile B }   KV tiles, two buffer sets
          [tile A]                  odd Tc
          normalise, store O

Causal kernels skip the KV tiles above the diagonal: query tile qt needs
n(qt) = ceil((qt + 1) lanes / Bc) tiles, so its pairs loop is a `loopr` on a
run-time count. The query-tile loop runs over periods of P query tiles after
which n has grown by an even number (`KernelBuilder.skip_period`; P = 1 when
2 Bc divides the lanes, 2 Bc / lanes when Bc >= lanes), with the static odd
tile of each slot unrolled; the last query tiles, which see every key, run the
plain loop.

One KV tile step is: load K-hat rows -> DLZS score -> SADS (causal and
padding masks applied here) -> RASS union -> gather the selected K and V
rows -> SU-FA step. Counting semaphores hand data from unit to unit:

    s0 K-hat loaded      s1 A-hat ready      s2 indices ready    s3 RASS list ready
    s4 K/V gathered      s5 K-hat/A-hat set free (2 credits)
    s6 index/list/K/V set free (2 credits)   s7 O ready

On demand (DLZS from the tokens X and LZ(W_k), paper §2.1), each KV head first
predicts its K-hat once, tile by tile (`dlzs.key`), into DRAM scratch; the
tile steps then load K-hat as above.

On-demand K/V generation (paper §2.1; RASS kernels whose K and V are a constant
`sofa.kv_projection` of the tokens X, where the buffers fit): each KV head runs
three passes. (1) Marking: every query tile's prediction and SADS run as above
and `kvmark` sets the selected keys in a bitmap (at keep 1.0 without a sphere
clip the bitmap is known and loaded instead). (2) Generation: per window of
whole KV tiles, `kvlist` lists the marked keys, and for each hidden chunk (a multiple of 64
columns) the listed tokens and the chunk's W_k/W_v rows are fetched and `kvgen`
accumulates the K and V rows (starting from the bias); `dma.scatter` writes
them to K/V scratch rows in DRAM. (3) Attention, as above, gathering those
rows. The kernel takes Q and X only; the projection leaves the host code.
The generation pass is barrier-synchronised (one buffer set).

DRAM layout per kernel (inputs padded by the host runtime):
``q``/``q16`` ``[B*Hq*Pq, d]`` (fp32 and its fp16 copy for DLZS),
``k``/``khat`` ``[B*Hkv*Pk, d]`` (fp32 and fp16), ``v`` ``[B*Hkv*Pk, dv]``,
``o`` ``[B*Hq*Pq, dv]`` fp32, with Pq, Pk the padded lengths.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Block, Operation, Region
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import DiagnosticException

from dialects.host import ConstantOp
from dialects.numerics import keep_count
from dialects.sofa import (
    NO_RADIUS,
    DlzsKeyOp,
    DlzsScoreOp,
    KernelCallOp,
    KvProjectionOp,
    Mul4ScoreOp,
    SadsOp,
    SufaOp,
    TargetAttr,
    TilingAttr,
)
from dialects.sofa_isa import INSTRUCTION_OPS, Dram, LoopOp, LoopRegOp, ProgramOp, SegmentAttr, Sram, SymbolAttr
from passes.coordinated_tiling import attention_shape_of_sufa, module_target
from passes.tile_plan import (
    KV_BUFFER_SETS,
    AttentionShape,
    GenerationPlan,
    PlanError,
    SramPlan,
    plan_generation,
    plan_separate_sram,
    plan_sram,
)
from passes.tile_plan import Region as SramRegion

DRAM_ALIGN = 64
MAX_SKIP_UNROLL = 8
"""Most query tiles one causal skip period may unroll (`KernelBuilder.skip_period`)."""
KERNEL_PREFIX = "attn"
ELEMENT_BYTES = {"i8": 1, "f16": 2, "f32": 4}


def _bits(*semaphores: int) -> int:
    return sum(1 << s for s in semaphores)


@dataclass
class KernelLayout:
    """DRAM symbols of one kernel: name -> (address, shape, dtype)."""

    symbols: dict[str, tuple[int, tuple[int, int], str, str]] = field(default_factory=dict)
    top: int = 0

    def add(self, name: str, rows: int, cols: int, dtype: str, kind: str) -> int:
        address = -(-self.top // DRAM_ALIGN) * DRAM_ALIGN
        self.top = address + rows * cols * ELEMENT_BYTES[dtype]
        self.symbols[name] = (address, (rows, cols), dtype, kind)
        return address

    def attrs(self) -> ArrayAttr[SymbolAttr]:
        entries = []
        for name, (address, shape, dtype, kind) in self.symbols.items():
            size = shape[0] * shape[1] * ELEMENT_BYTES[dtype]
            entries.append(SymbolAttr(name, kind, dtype, shape, address, size))
        return ArrayAttr(entries)


def lay_out_attention(
    layout: KernelLayout, shape: AttentionShape, tiling: TilingAttr, on_demand: bool, generate: bool = False
) -> None:
    """The DRAM symbols every attention kernel has (see the module docstring).

    A kernel that generates K/V on chip (`generate`) keeps K and V as scratch
    rows it writes itself, and takes the fp32 tokens and the per-head W_k, W_v
    blocks (each followed by its bias row) instead.
    """
    q_rows = shape.batch * shape.q_heads * tiling.padded_q.data
    kv_rows_per_head = tiling.padded_kv.data
    kv_rows = shape.batch * shape.kv_heads * kv_rows_per_head
    d, dv = shape.depth, shape.v_depth
    kv_kind = "scratch" if generate else "input"
    layout.add("q", q_rows, d, "f32", "input")
    layout.add("q16", q_rows, d, "f16", "input")
    layout.add("k", kv_rows, d, "f32", kv_kind)
    layout.add("v", kv_rows, dv, "f32", kv_kind)
    if on_demand:
        token_rows = shape.batch * kv_rows_per_head
        layout.add("x8", token_rows, shape.hidden, "i8", "input")
        layout.add("xexp", token_rows, 1, "i8", "input")
        layout.add("codes", shape.hidden, shape.kv_heads * d, "i8", "const")
        if generate:
            layout.add("x32", token_rows, shape.hidden, "f32", "input")
            layout.add("wk", shape.kv_heads * (shape.hidden + 1), d, "f32", "const")
            layout.add("wv", shape.kv_heads * (shape.hidden + 1), dv, "f32", "const")
    # On demand, the kernel predicts K-hat itself, once per KV head.
    layout.add("khat", kv_rows, d, "f16", "scratch" if on_demand else "input")
    layout.add("o", q_rows, dv, "f32", "output")


class Emitter:
    """Collects instruction ops, with nested hardware loops."""

    def __init__(self) -> None:
        self.blocks: list[list[Operation]] = [[]]

    def emit(self, mnemonic: str, wait: int = 0, signal: int = 0, **values: Any) -> None:
        self.blocks[-1].append(INSTRUCTION_OPS[mnemonic].build_op(values, wait, signal))

    def open_loop(self) -> None:
        self.blocks.append([])

    def close_loop(self, count: int) -> None:
        body = self.blocks.pop()
        if count == 1:
            self.blocks[-1].extend(body)
            return
        self.blocks[-1].append(LoopOp(count, body))

    def close_loop_register(self, register: int) -> None:
        """Close the innermost loop as a `loopr`: its count is read from `register` at run time."""
        body = self.blocks.pop()
        self.blocks[-1].append(LoopRegOp(register, body))

    def ops(self) -> list[Operation]:
        assert len(self.blocks) == 1
        return self.blocks[0]


def emit_tile_loop(e: Emitter, tiles: int, step: Callable[[int], None]) -> None:
    """Emit `tiles` KV-tile steps alternating between the two buffer sets: a loop over
    pairs, then one more step in set 0 when the count is odd."""
    pairs, odd = divmod(tiles, KV_BUFFER_SETS)
    if pairs:
        e.open_loop()
        for buffer_set in range(KV_BUFFER_SETS):
            step(buffer_set)
        e.close_loop(pairs)
    if odd:
        step(0)


def _at(region: SramRegion, reg: int = 0) -> Sram:
    return Sram(region.buffer, reg, region.offset)


# Registers: r1 q16 row offset, r2 q offset, r3 query base, r4 o offset, r5 key base,
# r6 K-hat tile address, r7/r8 K/V base of the KV head, r9 K-hat base of the KV head,
# on demand r10/r12 the token-exponent and 8-bit token tile addresses of the K-hat
# pass, r11 the LZ-code column offset.
R_Q16, R_Q, R_QBASE, R_O, R_KBASE, R_PRED, R_K, R_V, R_PRED_HEAD, R_XEXP, R_CODES, R_X8 = range(1, 13)
# Without RASS, r13/r14 walk the K/V tiles of the coordinated kernel; r15 counts the
# KV-tile pairs a causal query tile needs.
R_K_TILE_C, R_V_TILE_C, R_PAIRS = 13, 14, 15
# K/V generation (RASS kernels only, so r13/r14 are free): the KV head's W_k/W_v block,
# advanced chunk by chunk and rewound after each tile. The phase reuses r5 (key base)
# and r6 (token chunk address), which the attention pass re-initialises per query tile.
R_GEN_WK, R_GEN_WV, R_GEN_X = 13, 14, R_PRED


def emit_kv_fetch(
    e: Emitter,
    rass: bool,
    r: dict[str, SramRegion],
    sources: tuple[Dram, Dram],
    tile_registers: tuple[int, int],
    widths: tuple[int, int],
    lanes: int,
    m: int,
) -> None:
    """Bring the tile's K and V rows on chip once SADS has chosen (token s2); signal s4.

    With RASS, only the union of the lanes' selections is gathered, most-shared
    first (paper §4.5); without it, the whole K and V tiles are loaded, as a
    dense FlashAttention dataflow does.
    """
    tile = r["k"].size // (widths[0] * 4)
    if rass:
        e.emit("rass", wait=_bits(2), signal=_bits(3), idx=_at(r["idx"]), out=_at(r["list"]), lanes=lanes, m=m)
        for index, name in enumerate(("k", "v")):
            e.emit(
                "dma.gather",
                wait=_bits(3) if name == "k" else 0,
                signal=_bits(4) if name == "v" else 0,
                dst=_at(r[name]),
                src=sources[index],
                list=_at(r["list"]),
                key_base=R_KBASE,
                window=tile,
                row_bytes=widths[index] * 4,
                src_stride=widths[index] * 4,
            )
        return
    for index, name in enumerate(("k", "v")):
        source = Dram(tile_registers[index], sources[index].offset)
        e.emit(
            "dma.load",
            wait=_bits(2) if name == "k" else 0,
            signal=_bits(4) if name == "v" else 0,
            dst=_at(r[name]),
            src=source,
            rows=tile,
            row_bytes=widths[index] * 4,
            src_stride=widths[index] * 4,
        )
        e.emit("addi", rd=tile_registers[index], rs=tile_registers[index], imm=tile * widths[index] * 4)


@dataclass
class LzWeights:
    """W_k in LZ form for on-demand prediction: codes ``[H, Hkv*d]`` and their exponent."""

    codes: Any
    base: int


@dataclass
class KvGeneration:
    """On-chip K/V generation: per-head weight blocks ``[Hkv*(H+1), d]`` (W rows, then the bias row)."""

    wk: Any
    wv: Any
    plan: GenerationPlan


@dataclass
class KernelBuilder:
    """Emits one attention kernel: its DRAM layout and its instruction ops."""

    shape: AttentionShape
    tiling: TilingAttr
    regions: dict[str, SramRegion]
    scale: float
    radius: float
    lz: LzWeights | None = None
    predictor: str = "dlzs.score"
    attention: str = "sufa.step"
    rass: bool = True
    gen: KvGeneration | None = None
    e: Emitter = field(default_factory=Emitter)
    layout: KernelLayout = field(default_factory=KernelLayout)
    marking: bool = False
    """True while emitting the marking pass (prediction and SADS only, `kvmark` instead of attention)."""
    batch_index: int = 0

    @property
    def skip_period(self) -> int:
        """Query tiles after which the causal tile pattern repeats.

        Query tile qt (L lanes) needs n(qt) = ceil((qt + 1) L / Bc) KV tiles; after
        P = 2 Bc / gcd(L, 2 Bc) query tiles that count has grown by an even number
        2m = P L / Bc, so slot r of every period runs m more tile pairs than the
        period before, plus a fixed n(r) // 2 pairs and n(r) % 2 single tiles.
        """
        lanes, tile = self.tiling.lanes.data, self.tiling.tile.data
        return 2 * tile // math.gcd(lanes, 2 * tile)

    @property
    def skipping_query_tiles(self) -> int:
        """Query tiles that skip KV tiles above the diagonal; the later ones need every KV tile.

        n(qt) grows with qt and is capped by the KV tile count, which only the last
        query tiles reach (those that see every key). Zero when nothing is skipped:
        a causal kernel unrolls at most `MAX_SKIP_UNROLL` query tiles of a period, so
        that program size does not grow with the length.
        """
        lanes, tile, query_tiles = self.tiling.lanes.data, self.tiling.tile.data, self.tiling.query_tiles.data
        uncapped = min(query_tiles, self.tiling.kv_tiles.data * tile // lanes)
        if not self.shape.causal or min(self.skip_period, uncapped) > MAX_SKIP_UNROLL:
            return 0
        return uncapped

    def tiles_needed(self, query_tile: int) -> int:
        """KV tiles that hold a key visible to some query of `query_tile` (upper-left causal)."""
        lanes, tile = self.tiling.lanes.data, self.tiling.tile.data
        return -(-(query_tile + 1) * lanes // tile)

    def lay_out(self) -> None:
        on_demand = self.lz is not None
        lay_out_attention(self.layout, self.shape, self.tiling, on_demand, self.gen is not None)
        if self.selects_every_key:
            self.layout.add("needed", 1, self.gen.plan.regions["bitmap"].size, "i8", "const")  # type: ignore[union-attr]

    @property
    def selects_every_key(self) -> bool:
        """Keep 1.0 without a sphere clip: SADS selects every valid key, so marking is known in advance.

        The generating kernel then loads that bitmap instead of running the
        marking pass: keys below ``kv_len`` (causal: below the padded query
        count too, the last key any query lane can see).
        """
        keep_all = self.tiling.keep_count.data == self.tiling.tile.data
        return self.gen is not None and keep_all and self.radius == NO_RADIUS

    def needed_keys(self) -> Any:
        """The bitmap `selects_every_key` loads: one bit per key, little-endian within a byte."""
        assert self.gen is not None
        size = self.gen.plan.regions["bitmap"].size
        last = self.shape.kv_len
        if self.shape.causal:
            last = min(last, self.tiling.padded_q.data)
        bits = np.zeros(size * 8, np.uint8)
        bits[:last] = 1
        return np.packbits(bits, bitorder="little")

    def address(self, name: str) -> int:
        return self.layout.symbols[name][0]

    def region(self, name: str, reg: int = 0) -> Sram:
        return _at(self.regions[name], reg)

    def emit_prediction(self, r: dict[str, SramRegion]) -> None:
        """Bring the tile's K-hat on chip (given by the host, or predicted once per head on demand)."""
        tile, d, e = self.tiling.tile.data, self.shape.depth, self.e
        e.emit(
            "dma.load",
            wait=_bits(5),
            signal=_bits(0),
            dst=_at(r["khat"]),
            src=Dram(R_PRED, self.address("khat")),
            rows=tile,
            row_bytes=d * 2,
            src_stride=d * 2,
        )
        e.emit("addi", rd=R_PRED, rs=R_PRED, imm=tile * d * 2)

    def emit_key_prediction(self) -> None:
        """On demand: predict this KV head's K-hat = X . LZ(W_k) once, tile by tile, into DRAM scratch.

        Every query tile then loads the fp16 K-hat rows (2d bytes a key) instead of
        re-reading the 8-bit tokens (H bytes a key) and redoing the shift-adds.
        Two buffer sets overlap the token loads, DLZS and the store; the K-hat/A-hat
        credits (s5) are returned by each store.
        """
        assert self.lz is not None
        tile, d, hidden, e = self.tiling.tile.data, self.shape.depth, self.shape.hidden, self.e
        padded_kv = self.tiling.padded_kv.data

        def predict(buffer_set: int) -> None:
            r = {name: self.regions[f"{name}{buffer_set}"] for name in ("x", "xexp", "khat")}
            e.emit(
                "dma.load",
                wait=_bits(5),
                dst=_at(r["x"]),
                src=Dram(R_X8, self.address("x8")),
                rows=tile,
                row_bytes=hidden,
                src_stride=hidden,
            )
            e.emit(
                "dma.load",
                signal=_bits(0),
                dst=_at(r["xexp"]),
                src=Dram(R_XEXP, self.address("xexp")),
                rows=tile,
                row_bytes=1,
                src_stride=1,
            )
            e.emit(
                "dlzs.key",
                wait=_bits(0),
                signal=_bits(1),
                x=_at(r["x"]),
                xexp=_at(r["xexp"]),
                w=self.region("codes"),
                out=_at(r["khat"]),
                rows=tile,
                hidden=hidden,
                cols=d,
                base=self.lz.base,
            )
            e.emit(
                "dma.store",
                wait=_bits(1),
                signal=_bits(5),
                src=_at(r["khat"]),
                dst=Dram(R_PRED, self.address("khat")),
                rows=tile,
                row_bytes=d * 2,
                dst_stride=d * 2,
            )
            for reg, step in ((R_X8, tile * hidden), (R_XEXP, tile), (R_PRED, tile * d * 2)):
                e.emit("addi", rd=reg, rs=reg, imm=step)

        e.emit("set", rd=R_X8, imm=self.batch_index * padded_kv * hidden)
        e.emit("set", rd=R_XEXP, imm=self.batch_index * padded_kv)
        e.emit("addi", rd=R_PRED, rs=R_PRED_HEAD, imm=0)
        emit_tile_loop(e, self.tiling.kv_tiles.data, predict)
        e.emit("barrier")

    def emit_kv_step(self, buffer_set: int) -> None:
        """One KV tile through DLZS, SADS, RASS, the K/V gather and SU-FA."""
        tiling, shape, e = self.tiling, self.shape, self.e
        lanes, tile, m = tiling.lanes.data, tiling.tile.data, tiling.keep_count.data
        d, dv = shape.depth, shape.v_depth
        names = ("khat", "ahat", "idx", "list", "k", "v")
        r = {name: self.regions[f"{name}{buffer_set}"] for name in names}
        self.emit_prediction(r)
        score_inputs = {"khat": _at(r["khat"])} if self.predictor == "dlzs.score" else {"k": _at(r["khat"])}
        e.emit(
            self.predictor,
            wait=_bits(0),
            signal=_bits(1),
            q=self.region("q16"),
            out=_at(r["ahat"]),
            lanes=lanes,
            keys=tile,
            depth=d,
            **score_inputs,
        )
        e.emit(
            "sads",
            wait=_bits(1, 6),
            signal=_bits(2, 5),
            scores=_at(r["ahat"]),
            out=_at(r["idx"]),
            lanes=lanes,
            keys=tile,
            m=m,
            radius=self.radius / self.scale,
            key_base=R_KBASE,
            query_base=R_QBASE,
            kv_len=shape.kv_len,
            causal=int(shape.causal),
        )
        if self.marking:
            e.emit(
                "kvmark",
                wait=_bits(2),
                signal=_bits(6),
                idx=_at(r["idx"]),
                bitmap=_at(self.gen.plan.regions["bitmap"]),  # type: ignore[union-attr]
                lanes=lanes,
                m=m,
                keys=tiling.padded_kv.data,
            )
            e.emit("addi", rd=R_KBASE, rs=R_KBASE, imm=tile)
            return
        sources = (Dram(R_K, self.address("k")), Dram(R_V, self.address("v")))
        emit_kv_fetch(e, self.rass, r, sources, (R_K_TILE_C, R_V_TILE_C), (d, dv), lanes, m)
        e.emit(
            self.attention,
            wait=_bits(4),
            signal=_bits(6),
            q=self.region("q"),
            k=_at(r["k"]),
            v=_at(r["v"]),
            idx=_at(r["idx"]),
            key_base=R_KBASE,
            lanes=lanes,
            m=m,
            window=tile,
            depth=d,
            vdepth=dv,
            scale=self.scale,
            dtype="f32",
        )
        e.emit("addi", rd=R_KBASE, rs=R_KBASE, imm=tile)

    def emit_query_tile(self, slot: int | None = None) -> None:
        """Load a query tile, run its KV tiles (two buffer sets), normalise and store O.

        ``slot`` is the query tile's place in the causal skip period (`skip_period`);
        None runs every KV tile.
        """
        tiling, shape, e = self.tiling, self.shape, self.e
        lanes, d, dv = tiling.lanes.data, shape.depth, shape.v_depth
        e.emit("barrier")
        for name, reg, width in (("q16", R_Q16, 2), ("q", R_Q, 4))[: 1 if self.marking else 2]:
            e.emit(
                "dma.load",
                dst=self.region(name),
                src=Dram(reg, self.address(name)),
                rows=lanes,
                row_bytes=d * width,
                src_stride=d * width,
            )
        e.emit("barrier")
        if not self.marking:
            e.emit("sufa.init", lanes=lanes, vdepth=dv)
        e.emit("set", rd=R_KBASE, imm=0)
        e.emit("addi", rd=R_PRED, rs=R_PRED_HEAD, imm=0)
        if not self.rass:
            e.emit("addi", rd=R_K_TILE_C, rs=R_K, imm=0)
            e.emit("addi", rd=R_V_TILE_C, rs=R_V, imm=0)
        if slot is None:
            emit_tile_loop(e, tiling.kv_tiles.data, self.emit_kv_step)
        else:
            # R_PAIRS holds this query tile's count of tile pairs below the diagonal.
            e.open_loop()
            for buffer_set in range(KV_BUFFER_SETS):
                self.emit_kv_step(buffer_set)
            e.close_loop_register(R_PAIRS)
            if self.tiles_needed(slot) % KV_BUFFER_SETS:
                self.emit_kv_step(0)
        steps = [(R_Q16, lanes * d * 2), (R_QBASE, lanes)]
        if not self.marking:
            e.emit("sufa.norm", signal=_bits(7), out=self.region("o"), lanes=lanes, vdepth=dv)
            e.emit(
                "dma.store",
                wait=_bits(7),
                src=self.region("o"),
                dst=Dram(R_O, self.address("o")),
                rows=lanes,
                row_bytes=dv * 4,
                dst_stride=dv * 4,
            )
            steps += [(R_Q, lanes * d * 4), (R_O, lanes * dv * 4)]
        for reg, step in steps:
            e.emit("addi", rd=reg, rs=reg, imm=step)
        if slot is not None and (step := self.pairs(slot + 1) - self.pairs(slot)):
            e.emit("addi", rd=R_PAIRS, rs=R_PAIRS, imm=step)

    def pairs(self, query_tile: int) -> int:
        """Tile pairs that `query_tile` runs in its `loopr`; a last single tile is emitted statically."""
        return self.tiles_needed(query_tile) // KV_BUFFER_SETS

    def emit_query_tiles(self) -> None:
        """Every query tile of one head: periods of the causal skip pattern, then a hardware
        loop over the query tiles that run every KV tile (all of them when nothing is skipped)."""
        query_tiles, skipping, e = self.tiling.query_tiles.data, self.skipping_query_tiles, self.e
        if skipping:
            period = self.skip_period
            e.emit("set", rd=R_PAIRS, imm=self.pairs(0))
            periods, remainder = divmod(skipping, period)
            if periods:
                e.open_loop()
                for slot in range(period):
                    self.emit_query_tile(slot)
                e.close_loop(periods)
            for slot in range(remainder):
                self.emit_query_tile(slot)
        if query_tiles > skipping:
            e.open_loop()
            self.emit_query_tile()
            e.close_loop(query_tiles - skipping)

    def emit_kv_head(self) -> None:
        """All query heads that share one KV head (GQA), each over all query tiles."""
        shape, e = self.shape, self.e
        d, dv, padded_kv = shape.depth, shape.v_depth, self.tiling.padded_kv.data
        if self.lz is not None:
            # This head's LZ-code columns; the barrier keeps the previous head's DLZS off them.
            e.emit("barrier")
            e.emit(
                "dma.load",
                dst=self.region("codes"),
                src=Dram(R_CODES, self.address("codes")),
                rows=shape.hidden,
                row_bytes=d,
                src_stride=shape.kv_heads * d,
            )
            e.emit("barrier")
            self.emit_key_prediction()
        if self.selects_every_key:
            bitmap = self.gen.plan.regions["bitmap"]  # type: ignore[union-attr]
            e.emit(
                "dma.load",
                dst=_at(bitmap),
                src=Dram(0, self.address("needed")),
                rows=1,
                row_bytes=bitmap.size,
                src_stride=bitmap.size,
            )
            self.emit_generation()
        elif self.gen is not None:
            self.emit_marking()
            self.emit_generation()
        self.emit_query_heads()
        steps = [(R_K, padded_kv * d * 4), (R_V, padded_kv * dv * 4)]
        steps.append((R_PRED_HEAD, padded_kv * d * 2))
        if self.lz is not None:
            steps.append((R_CODES, d))
        if self.gen is not None:
            steps += [(R_GEN_WK, (shape.hidden + 1) * d * 4), (R_GEN_WV, (shape.hidden + 1) * dv * 4)]
        for reg, step in steps:
            e.emit("addi", rd=reg, rs=reg, imm=step)

    def emit_query_heads(self) -> None:
        """Every query head of the current KV head, each over all its query tiles."""
        shape, e = self.shape, self.e
        e.open_loop()
        e.emit("set", rd=R_QBASE, imm=0)
        self.emit_query_tiles()
        e.close_loop(shape.q_heads // shape.kv_heads)

    def emit_marking(self) -> None:
        """Pass 1 of on-chip generation: predict and select every tile, marking the chosen keys.

        The pass repeats the attention pass's prediction and SADS exactly, so the
        bitmap holds every key that any query of this KV head will attend to.
        Its Q16 walk is rewound afterwards for the attention pass.
        """
        shape, e = self.shape, self.e
        self.marking = True
        self.emit_query_heads()
        self.marking = False
        group_rows = (shape.q_heads // shape.kv_heads) * self.tiling.padded_q.data
        e.emit("addi", rd=R_Q16, rs=R_Q16, imm=-group_rows * shape.depth * 2)

    def emit_generation(self) -> None:
        """Pass 2: window by window (whole KV tiles), generate the marked K/V rows on the K/V-generation array.

        Per window: list the marked keys (clearing their bits for the next head),
        then, one hidden chunk at a time, gather the listed tokens' columns and
        load the W_k/W_v rows of the chunk, and accumulate into the K/V rows
        (the first chunk starts from the bias); finally scatter the rows to
        their DRAM rows, where the attention pass gathers them. The phase is
        synchronised with barriers (one buffer set).
        """
        assert self.gen is not None
        shape, tiling, e, gen = self.shape, self.tiling, self.e, self.gen
        r = gen.plan.regions
        rows, hidden, chunk = gen.plan.rows, shape.hidden, gen.plan.chunk
        d, dv = shape.depth, shape.v_depth
        e.emit("barrier")
        e.emit("set", rd=R_KBASE, imm=0)
        e.open_loop()
        e.emit("kvlist", bitmap=_at(r["bitmap"]), out=_at(r["gen_list"]), key_base=R_KBASE, window=rows, clear=1)
        for name, reg, width in (("wk", R_GEN_WK, d), ("wv", R_GEN_WV, dv)):
            e.emit(
                "dma.load",
                dst=_at(r[f"gen_b{name[1]}"]),
                src=Dram(reg, self.address(name) + hidden * width * 4),
                rows=1,
                row_bytes=width * 4,
                src_stride=width * 4,
            )
        e.emit("set", rd=R_GEN_X, imm=self.batch_index * tiling.padded_kv.data * hidden * 4)
        full, rest = divmod(hidden, chunk)
        self.emit_generation_chunk(chunk if full else rest, mode=2)
        if full > 1:
            e.open_loop()
            self.emit_generation_chunk(chunk, mode=1)
            e.close_loop(full - 1)
        if full and rest:
            self.emit_generation_chunk(rest, mode=1)
        for name, width in (("k", d), ("v", dv)):
            e.emit(
                "dma.scatter",
                src=_at(r[f"gen_{name}"]),
                dst=Dram(R_K if name == "k" else R_V, self.address(name)),
                list=_at(r["gen_list"]),
                key_base=R_KBASE,
                window=rows,
                row_bytes=width * 4,
                dst_stride=width * 4,
            )
        e.emit("addi", rd=R_GEN_WK, rs=R_GEN_WK, imm=-hidden * d * 4)
        e.emit("addi", rd=R_GEN_WV, rs=R_GEN_WV, imm=-hidden * dv * 4)
        e.emit("addi", rd=R_KBASE, rs=R_KBASE, imm=rows)
        e.emit("barrier")
        e.close_loop(tiling.padded_kv.data // rows)

    def emit_generation_chunk(self, width: int, mode: int) -> None:
        """One hidden chunk of `width` columns: fetch tokens and weights, then accumulate K and V."""
        assert self.gen is not None
        shape, e, r = self.shape, self.e, self.gen.plan.regions
        rows, hidden, d, dv = self.gen.plan.rows, shape.hidden, shape.depth, shape.v_depth
        e.emit(
            "dma.gather",
            dst=_at(r["gen_x"]),
            src=Dram(R_GEN_X, self.address("x32")),
            list=_at(r["gen_list"]),
            key_base=R_KBASE,
            window=rows,
            row_bytes=width * 4,
            src_stride=hidden * 4,
        )
        for name, reg, cols in (("wk", R_GEN_WK, d), ("wv", R_GEN_WV, dv)):
            e.emit(
                "dma.load",
                dst=_at(r[f"gen_{name}"]),
                src=Dram(reg, self.address(name)),
                rows=width,
                row_bytes=cols * 4,
                src_stride=cols * 4,
            )
        e.emit("barrier")
        for name, cols in (("k", d), ("v", dv)):
            e.emit(
                "kvgen",
                x=_at(r["gen_x"]),
                w=_at(r[f"gen_w{name}"]),
                out=_at(r[f"gen_{name}"]),
                list=_at(r["gen_list"]),
                key_base=R_KBASE,
                window=rows,
                hidden=width,
                cols=cols,
                dtype="f32",
                bias=_at(r[f"gen_b{name}"]),
                mode=mode,
            )
        e.emit("barrier")
        e.emit("addi", rd=R_GEN_X, rs=R_GEN_X, imm=width * 4)
        e.emit("addi", rd=R_GEN_WK, rs=R_GEN_WK, imm=width * d * 4)
        e.emit("addi", rd=R_GEN_WV, rs=R_GEN_WV, imm=width * dv * 4)

    def build(self) -> list[Operation]:
        shape, e = self.shape, self.e
        self.lay_out()
        e.emit("post", signal=_bits(5, 6))
        e.emit("post", signal=_bits(5, 6))  # two credits: double-buffered tile sets
        for reg in (R_Q16, R_Q, R_O, R_K, R_V, R_PRED_HEAD):
            e.emit("set", rd=reg, imm=0)
        if self.lz is None:
            e.open_loop()
            self.emit_kv_head()
            e.close_loop(shape.batch * shape.kv_heads)
        else:
            # Tokens are shared by a batch element's KV heads, so batches are
            # unrolled (program size grows with the batch, never with length).
            for batch in range(shape.batch):
                self.batch_index = batch
                e.emit("set", rd=R_CODES, imm=0)
                if self.gen is not None:
                    e.emit("set", rd=R_GEN_WK, imm=0)
                    e.emit("set", rd=R_GEN_WV, imm=0)
                e.open_loop()
                self.emit_kv_head()
                e.close_loop(shape.kv_heads)
        e.emit("barrier")
        e.emit("halt")
        return e.ops()

    def segments(self) -> ArrayAttr[SegmentAttr]:
        if self.lz is None:
            return ArrayAttr([])
        segments = [SegmentAttr(self.address("codes"), self.lz.codes.astype("int8").tobytes())]
        if self.gen is not None:
            for name, block in (("wk", self.gen.wk), ("wv", self.gen.wv)):
                segments.append(SegmentAttr(self.address(name), block.astype("<f4").tobytes()))
        if self.selects_every_key:
            segments.append(SegmentAttr(self.address("needed"), self.needed_keys().tobytes()))
        return ArrayAttr(segments)


# Extra registers of the separate-stage baseline: r13 A-hat row base, r14 A-hat tile
# address, r15 K tile address, r10 V tile address.
R_AHAT_ROW, R_AHAT_TILE, R_K_TILE, R_V_TILE = 13, 14, 15, 10


@dataclass
class SeparateKernelBuilder:
    """The separate-stage baseline kernel, phase by phase, as prior accelerators run it.

    Per query head: (1) DLZS predicts every A-hat tile and spills it to DRAM;
    (2) whole rows come back for a global top-k (`topk.mask`) and go back to
    DRAM; (3) FlashAttention-2 streams every K/V tile densely and, per tile,
    re-reads the masked A-hat to find its selected keys (`fa2.step`).
    """

    shape: AttentionShape
    tiling: TilingAttr
    regions: dict[str, SramRegion]
    group_rows: int
    keep_row: int
    scale: float
    predictor: str = "dlzs.score"
    attention: str = "fa2.step"
    rass: bool = False
    row_selection: bool = True
    e: Emitter = field(default_factory=Emitter)
    layout: KernelLayout = field(default_factory=KernelLayout)

    def lay_out(self) -> None:
        tiling = self.tiling
        lay_out_attention(self.layout, self.shape, tiling, on_demand=False)
        # One head's A-hat, reused head after head: the traffic coordinated tiling avoids.
        self.layout.add("ahat", tiling.padded_q.data, tiling.padded_kv.data, "f16", "const")

    def address(self, name: str) -> int:
        return self.layout.symbols[name][0]

    def region(self, name: str) -> Sram:
        return _at(self.regions[name])

    def emit_predict_phase(self) -> None:
        tiling, shape, e = self.tiling, self.shape, self.e
        lanes, tile, d = tiling.lanes.data, tiling.tile.data, shape.depth
        row_bytes = tiling.padded_kv.data * 2
        e.emit("set", rd=R_AHAT_ROW, imm=0)
        e.open_loop()
        e.emit("barrier")
        q16 = Dram(R_Q16, self.address("q16"))
        e.emit("dma.load", dst=self.region("q16"), src=q16, rows=lanes, row_bytes=d * 2, src_stride=d * 2)
        e.emit("barrier")
        e.emit("addi", rd=R_PRED, rs=R_PRED_HEAD, imm=0)
        e.emit("addi", rd=R_AHAT_TILE, rs=R_AHAT_ROW, imm=0)

        def predict_step(buffer_set: int) -> None:
            khat, ahat = self.region(f"khat{buffer_set}"), self.region(f"ahat{buffer_set}")
            source = Dram(R_PRED, self.address("khat"))
            e.emit(
                "dma.load", wait=_bits(5), signal=_bits(0), dst=khat, src=source,
                rows=tile, row_bytes=d * 2, src_stride=d * 2,
            )  # fmt: skip
            score_input = {"khat": khat} if self.predictor == "dlzs.score" else {"k": khat}
            e.emit(
                self.predictor, wait=_bits(0), signal=_bits(1), q=self.region("q16"), out=ahat,
                lanes=lanes, keys=tile, depth=d, **score_input,
            )  # fmt: skip
            spill = Dram(R_AHAT_TILE, self.address("ahat"))
            e.emit(
                "dma.store", wait=_bits(1), signal=_bits(5), src=ahat, dst=spill,
                rows=lanes, row_bytes=tile * 2, dst_stride=row_bytes,
            )  # fmt: skip
            e.emit("addi", rd=R_PRED, rs=R_PRED, imm=tile * d * 2)
            e.emit("addi", rd=R_AHAT_TILE, rs=R_AHAT_TILE, imm=tile * 2)

        emit_tile_loop(e, tiling.kv_tiles.data, predict_step)
        e.emit("addi", rd=R_Q16, rs=R_Q16, imm=lanes * d * 2)
        e.emit("addi", rd=R_AHAT_ROW, rs=R_AHAT_ROW, imm=lanes * row_bytes)
        e.close_loop(tiling.query_tiles.data)

    def emit_select_phase(self) -> None:
        tiling, shape, e = self.tiling, self.shape, self.e
        rows, row_bytes = self.group_rows, tiling.padded_kv.data * 2
        e.emit("barrier")
        e.emit("set", rd=R_AHAT_ROW, imm=0)
        e.emit("set", rd=R_QBASE, imm=0)
        e.open_loop()
        ahat, buffer = Dram(R_AHAT_ROW, self.address("ahat")), self.region("rows")
        e.emit("dma.load", dst=buffer, src=ahat, rows=rows, row_bytes=row_bytes, src_stride=row_bytes)
        e.emit("barrier")
        e.emit(
            "topk.mask", scores=buffer, lanes=rows, keys=tiling.padded_kv.data, m=self.keep_row,
            query_base=R_QBASE, kv_len=shape.kv_len, causal=int(shape.causal),
        )  # fmt: skip
        e.emit("barrier")
        e.emit("dma.store", src=buffer, dst=ahat, rows=rows, row_bytes=row_bytes, dst_stride=row_bytes)
        e.emit("barrier")
        e.emit("addi", rd=R_AHAT_ROW, rs=R_AHAT_ROW, imm=rows * row_bytes)
        e.emit("addi", rd=R_QBASE, rs=R_QBASE, imm=rows)
        e.close_loop(tiling.padded_q.data // rows)

    def emit_attend_step(self, buffer_set: int) -> None:
        tiling, shape, e = self.tiling, self.shape, self.e
        lanes, tile, d, dv = tiling.lanes.data, tiling.tile.data, shape.depth, shape.v_depth
        m = tiling.keep_count.data
        r = {name: self.regions[f"fa2_{name}{buffer_set}"] for name in ("ahat", "idx", "list", "k", "v")}
        masked = Dram(R_AHAT_TILE, self.address("ahat"))
        e.emit(
            "dma.load", wait=_bits(5), signal=_bits(0), dst=_at(r["ahat"]), src=masked,
            rows=lanes, row_bytes=tile * 2, src_stride=tiling.padded_kv.data * 2,
        )  # fmt: skip
        e.emit(
            "sads", wait=_bits(0, 6), signal=_bits(2, 5), scores=_at(r["ahat"]), out=_at(r["idx"]), lanes=lanes,
            keys=tile, m=m, radius=NO_RADIUS, key_base=R_KBASE, query_base=R_QBASE, kv_len=shape.kv_len,
            causal=int(shape.causal),
        )  # fmt: skip
        sources = (Dram(R_K, self.address("k")), Dram(R_V, self.address("v")))
        emit_kv_fetch(e, self.rass, r, sources, (R_K_TILE, R_V_TILE), (d, dv), lanes, m)
        e.emit(
            self.attention, wait=_bits(4), signal=_bits(6), q=self.region("fa2_q"), k=_at(r["k"]),
            v=_at(r["v"]), idx=_at(r["idx"]), key_base=R_KBASE, lanes=lanes, m=m, window=tile, depth=d,
            vdepth=dv, scale=self.scale, dtype="f32",
        )  # fmt: skip
        for reg, step in ((R_KBASE, tile), (R_AHAT_TILE, tile * 2)):
            e.emit("addi", rd=reg, rs=reg, imm=step)

    def emit_attend_phase(self) -> None:
        tiling, shape, e = self.tiling, self.shape, self.e
        lanes, d, dv = tiling.lanes.data, shape.depth, shape.v_depth
        e.emit("barrier")
        e.emit("set", rd=R_AHAT_ROW, imm=0)
        e.emit("set", rd=R_QBASE, imm=0)
        e.open_loop()
        e.emit("barrier")
        q = Dram(R_Q, self.address("q"))
        e.emit("dma.load", dst=self.region("fa2_q"), src=q, rows=lanes, row_bytes=d * 4, src_stride=d * 4)
        e.emit("barrier")
        e.emit("sufa.init", lanes=lanes, vdepth=dv)
        e.emit("set", rd=R_KBASE, imm=0)
        for reg, base in ((R_AHAT_TILE, R_AHAT_ROW), (R_K_TILE, R_K), (R_V_TILE, R_V)):
            e.emit("addi", rd=reg, rs=base, imm=0)
        emit_tile_loop(e, tiling.kv_tiles.data, self.emit_attend_step)
        o = self.region("fa2_o")
        e.emit("sufa.norm", signal=_bits(7), out=o, lanes=lanes, vdepth=dv)
        store = Dram(R_O, self.address("o"))
        e.emit("dma.store", wait=_bits(7), src=o, dst=store, rows=lanes, row_bytes=dv * 4, dst_stride=dv * 4)
        row_bytes = tiling.padded_kv.data * 2
        steps = ((R_Q, lanes * d * 4), (R_QBASE, lanes), (R_O, lanes * dv * 4), (R_AHAT_ROW, lanes * row_bytes))
        for reg, step in steps:
            e.emit("addi", rd=reg, rs=reg, imm=step)
        e.close_loop(tiling.query_tiles.data)

    def build(self) -> list[Operation]:
        shape, tiling, e = self.shape, self.tiling, self.e
        d, dv, padded_kv = shape.depth, shape.v_depth, tiling.padded_kv.data
        self.lay_out()
        e.emit("post", signal=_bits(5, 6))
        e.emit("post", signal=_bits(5, 6))
        for reg in (R_Q16, R_Q, R_O, R_K, R_V, R_PRED_HEAD):
            e.emit("set", rd=reg, imm=0)
        e.open_loop()  # KV heads
        e.open_loop()  # query heads of this KV head
        self.emit_predict_phase()
        if self.row_selection:
            self.emit_select_phase()
        self.emit_attend_phase()
        e.close_loop(shape.q_heads // shape.kv_heads)
        for reg, step in ((R_K, padded_kv * d * 4), (R_V, padded_kv * dv * 4), (R_PRED_HEAD, padded_kv * d * 2)):
            e.emit("addi", rd=reg, rs=reg, imm=step)
        e.close_loop(shape.batch * shape.kv_heads)
        e.emit("barrier")
        e.emit("halt")
        return e.ops()

    def segments(self) -> ArrayAttr[SegmentAttr]:
        return ArrayAttr([])


def _tiled_group(sufa: SufaOp) -> tuple[SadsOp, DlzsScoreOp | Mul4ScoreOp, DlzsKeyOp | None] | None:
    select = sufa.indices.owner
    if not isinstance(select, SadsOp):
        return None
    score = select.scores.owner
    if isinstance(score, Mul4ScoreOp):
        return select, score, None
    if not isinstance(score, DlzsScoreOp):
        return None
    key = score.khat.owner
    return select, score, key if isinstance(key, DlzsKeyOp) else None


def _lz_weights(key: DlzsKeyOp) -> LzWeights:
    codes, base = key.codes.owner, key.base.owner
    if not isinstance(codes, ConstantOp) or not isinstance(base, arith.ConstantOp):
        raise DiagnosticException(
            "on-demand prediction needs compile-time LZ codes: run sofa-preprocess-weights before sofa-lower-to-isa"
        )
    value = base.value
    assert isinstance(value, IntegerAttr)
    return LzWeights(codes.to_array(), value.value.data)


def builder_generates(builder: KernelBuilder | SeparateKernelBuilder) -> bool:
    return isinstance(builder, KernelBuilder) and builder.gen is not None


def _constant_projection(sufa: SufaOp) -> KvProjectionOp | None:
    """The `sofa.kv_projection` that made the attention's K and V, if its weights and biases are constants."""
    projection = sufa.k.owner
    if not isinstance(projection, KvProjectionOp) or sufa.v is not projection.v or sufa.k is not projection.k:
        return None
    weights = [projection.w_k, projection.w_v] + [b for b in (projection.b_k, projection.b_v) if b is not None]
    if not all(isinstance(value.owner, ConstantOp) for value in weights):
        return None
    return projection


def _head_blocks(weights: Any, bias: Any, heads: int) -> Any:
    """``W [H, heads*d]`` and ``b [heads*d]`` as ``[heads*(H+1), d]``: each head's W rows, then its bias row."""
    hidden, columns = weights.shape
    depth = columns // heads
    bias = np.zeros(columns, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(columns)
    blocks = np.concatenate([np.asarray(weights, np.float32), bias[None, :]], axis=0)
    return np.ascontiguousarray(blocks.reshape(hidden + 1, heads, depth).transpose(1, 0, 2).reshape(-1, depth))


def _kv_generation(
    sufa: SufaOp, target: TargetAttr, shape: AttentionShape, tile: int, plan: SramPlan
) -> KvGeneration | None:
    """On-chip generation of the selected K/V rows, where the projection is constant and its buffers fit."""
    projection = _constant_projection(sufa)
    if projection is None:
        return None
    try:
        generation = plan_generation(target, shape, tile, plan)
    except PlanError:
        return None

    def constant(value: Any) -> Any:
        return None if value is None else value.owner.to_array()

    heads = shape.kv_heads
    wk = _head_blocks(constant(projection.w_k), constant(projection.b_k), heads)
    wv = _head_blocks(constant(projection.w_v), constant(projection.b_v), heads)
    return KvGeneration(wk, wv, generation)


@dataclass(frozen=True)
class LowerToIsaPass(ModulePass):
    """Replace each tiled attention by a `sofa.kernel_call` to a new `sofa_isa.program`.

    ``config_hash`` (64 hex digits) binds the programs to a target config; the
    default, all zeros, leaves them unbound. ``pipeline=separate`` lowers the
    output of `sofa-separate-stage-tiling` to the baseline kernel (A-hat via
    DRAM). Ablation switches: ``attention=fa2`` runs FlashAttention-2 steps
    instead of SU-FA, ``rass=false`` loads whole K/V tiles instead of the
    RASS-ordered union of the selected rows. ``kv_generation=false`` keeps
    on-demand kernels reading host-computed K/V rows instead of generating the
    selected rows on chip.
    """

    name = "sofa-lower-to-isa"

    config_hash: str = "0" * 64
    pipeline: str = "coordinated"
    attention: str = "sufa"
    rass: bool = True
    kv_generation: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = module_target(op)
        kernels: list[ProgramOp] = []
        for sufa in [o for o in op.walk() if isinstance(o, SufaOp) and o.tiling is not None]:
            group = _tiled_group(sufa)
            if group is None:
                raise DiagnosticException("sofa.sufa with a tiling must consume sofa.sads of sofa.dlzs_score")
            select, score, key = group
            tiling = sufa.tiling
            assert tiling is not None
            shape = attention_shape_of_sufa(sufa, select)
            lz = None
            operands = [sufa.q, sufa.k, sufa.v]
            if key is not None:
                lz = _lz_weights(key)
                shape = replace(shape, hidden=key.x.type.get_shape()[2])  # pyright: ignore[reportAttributeAccessIssue]
                operands.append(key.x)
            builder: KernelBuilder | SeparateKernelBuilder
            predictor = "mul4.score" if isinstance(score, Mul4ScoreOp) else "dlzs.score"
            attention = "fa2.step" if self.attention == "fa2" else "sufa.step"
            if self.pipeline == "separate":
                plan, rows = plan_separate_sram(target, shape, tiling.tile.data)
                row_selection = select.sparsity.tile_size != tiling.tile.data
                keep_row = keep_count(select.sparsity.keep_ratio, shape.kv_len)
                builder = SeparateKernelBuilder(
                    shape, tiling, plan.regions, rows, keep_row, sufa.scale.value.data, predictor, attention,
                    self.rass, row_selection,
                )  # fmt: skip
            else:
                plan = plan_sram(target, shape, tiling.tile.data)
                gen = None
                if lz is not None and self.kv_generation and self.rass:
                    gen = _kv_generation(sufa, target, shape, tiling.tile.data, plan)
                if gen is not None:
                    operands = [sufa.q, operands[-1]]
                radius = select.sparsity.radius_value
                builder = KernelBuilder(
                    shape, tiling, plan.regions, sufa.scale.value.data, radius, lz, predictor, attention, self.rass, gen
                )
            body = builder.build()
            name = f"{KERNEL_PREFIX}{len(kernels)}"
            program = ProgramOp.create(
                properties={
                    "config_hash": StringAttr(self.config_hash),
                    "dram_bytes": IntegerAttr(max(4096, -(-builder.layout.top // 4096) * 4096), i64),
                    "symbols": builder.layout.attrs(),
                    "segments": builder.segments(),
                    "sym_name": StringAttr(name),
                },
                regions=[Region(Block(body))],
            )
            kernels.append(program)
            call = KernelCallOp(name, operands, [sufa.output.type])
            Rewriter.replace_op(sufa, call)
            projection = _constant_projection(sufa) if builder_generates(builder) else None
            for dead in (select, score, key):
                if dead is not None and not any(True for _ in dead.results[0].uses):
                    Rewriter.erase_op(dead)
            if projection is not None and not any(True for result in projection.results for _ in result.uses):
                Rewriter.erase_op(projection)
        for program in kernels:
            op.body.block.add_op(program)
