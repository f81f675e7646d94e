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

One KV tile step is: load K-hat rows -> DLZS score -> SADS (causal and
padding masks applied here) -> RASS union -> gather the selected K and V
rows -> SU-FA step. Counting semaphores hand data from unit to unit:

    s0 K-hat loaded      s1 A-hat ready      s2 indices ready    s3 RASS list ready
    s4 K/V gathered      s5 K-hat/A-hat set free (2 credits)
    s6 index/list/K/V set free (2 credits)   s7 O ready

DRAM layout per kernel (inputs padded by the host runtime):
``q``/``q16`` ``[B*Hq*Pq, d]`` (fp32 and its fp16 copy for DLZS),
``k``/``khat`` ``[B*Hkv*Pk, d]`` (fp32 and fp16), ``v`` ``[B*Hkv*Pk, dv]``,
``o`` ``[B*Hq*Pq, dv]`` fp32, with Pq, Pk the padded lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Block, Operation, Region
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import DiagnosticException

from dialects.sofa import DlzsScoreOp, KernelCallOp, SadsOp, SufaOp, TilingAttr
from dialects.sofa_isa import INSTRUCTION_OPS, Dram, LoopOp, ProgramOp, Sram, SymbolAttr
from passes.coordinated_tiling import attention_shape_of_sufa, module_target
from passes.tile_plan import KV_BUFFER_SETS, AttentionShape, plan_sram
from passes.tile_plan import Region as SramRegion

DRAM_ALIGN = 64
KERNEL_PREFIX = "attn"


def _bits(*semaphores: int) -> int:
    return sum(1 << s for s in semaphores)


@dataclass
class KernelLayout:
    """DRAM symbols of one kernel: name -> (address, shape, dtype)."""

    symbols: dict[str, tuple[int, tuple[int, int], str, str]] = field(default_factory=dict)
    top: int = 0

    def add(self, name: str, rows: int, cols: int, dtype: str, kind: str) -> int:
        address = -(-self.top // DRAM_ALIGN) * DRAM_ALIGN
        self.top = address + rows * cols * (2 if dtype == "f16" else 4)
        self.symbols[name] = (address, (rows, cols), dtype, kind)
        return address

    def attrs(self) -> ArrayAttr[SymbolAttr]:
        entries = []
        for name, (address, shape, dtype, kind) in self.symbols.items():
            size = shape[0] * shape[1] * (2 if dtype == "f16" else 4)
            entries.append(SymbolAttr(name, kind, dtype, shape, address, size))
        return ArrayAttr(entries)


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

    def ops(self) -> list[Operation]:
        assert len(self.blocks) == 1
        return self.blocks[0]


def _at(region: SramRegion, reg: int = 0) -> Sram:
    return Sram(region.buffer, reg, region.offset)


# Registers: r1 q16 row offset, r2 q offset, r3 query base, r4 o offset, r5 key base,
# r6 K-hat tile address, r7/r8/r9 K/V/K-hat base of the current KV head.
R_Q16, R_Q, R_QBASE, R_O, R_KBASE, R_KHAT, R_K, R_V, R_KHAT_HEAD = range(1, 10)


def emit_kv_step(
    e: Emitter,
    regions: dict[str, SramRegion],
    buffer_set: int,
    layout: KernelLayout,
    shape: AttentionShape,
    tiling: TilingAttr,
    scale: float,
    radius: float,
) -> None:
    """One KV tile through DLZS, SADS, RASS, the K/V gather and SU-FA."""
    lanes, tile, m = tiling.get("lanes"), tiling.get("tile"), tiling.get("keep_count")
    d, dv = shape.depth, shape.v_depth
    r = {name: regions[f"{name}{buffer_set}"] for name in ("khat", "ahat", "idx", "list", "k", "v")}
    khat_address = layout.symbols["khat"][0]
    e.emit(
        "dma.load",
        wait=_bits(5),
        signal=_bits(0),
        dst=_at(r["khat"]),
        src=Dram(R_KHAT, khat_address),
        rows=tile,
        row_bytes=d * 2,
        src_stride=d * 2,
    )
    e.emit(
        "dlzs.score",
        wait=_bits(0),
        signal=_bits(1),
        q=_at(regions["q16"]),
        khat=_at(r["khat"]),
        out=_at(r["ahat"]),
        lanes=lanes,
        keys=tile,
        depth=d,
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
        radius=radius / scale,
        key_base=R_KBASE,
        query_base=R_QBASE,
        kv_len=shape.kv_len,
        causal=int(shape.causal),
    )
    e.emit("rass", wait=_bits(2), signal=_bits(3), idx=_at(r["idx"]), out=_at(r["list"]), lanes=lanes, m=m)
    for name, width, base in (("k", d, R_K), ("v", dv, R_V)):
        e.emit(
            "dma.gather",
            wait=_bits(3) if name == "k" else 0,
            signal=_bits(4) if name == "v" else 0,
            dst=_at(r[name]),
            src=Dram(base, layout.symbols[name][0]),
            list=_at(r["list"]),
            key_base=R_KBASE,
            window=tile,
            row_bytes=width * 4,
            src_stride=width * 4,
        )
    e.emit(
        "sufa.step",
        wait=_bits(4),
        signal=_bits(6),
        q=_at(regions["q"]),
        k=_at(r["k"]),
        v=_at(r["v"]),
        idx=_at(r["idx"]),
        key_base=R_KBASE,
        lanes=lanes,
        m=m,
        window=tile,
        depth=d,
        vdepth=dv,
        scale=scale,
        dtype="f32",
    )
    e.emit("addi", rd=R_KBASE, rs=R_KBASE, imm=tile)
    e.emit("addi", rd=R_KHAT, rs=R_KHAT, imm=tile * d * 2)


def build_kernel(
    shape: AttentionShape, tiling: TilingAttr, regions: dict[str, SramRegion], scale: float, radius: float
) -> tuple[list[Operation], KernelLayout]:
    """The instruction ops and DRAM layout of one attention kernel."""
    lanes, tiles = tiling.get("lanes"), tiling.get("kv_tiles")
    padded_q, padded_kv = tiling.get("padded_q"), tiling.get("padded_kv")
    d, dv = shape.depth, shape.v_depth
    q_rows = shape.batch * shape.q_heads * padded_q
    kv_rows = shape.batch * shape.kv_heads * padded_kv
    layout = KernelLayout()
    for name, rows, cols, dtype, kind in (
        ("q", q_rows, d, "f32", "input"),
        ("q16", q_rows, d, "f16", "input"),
        ("k", kv_rows, d, "f32", "input"),
        ("khat", kv_rows, d, "f16", "input"),
        ("v", kv_rows, dv, "f32", "input"),
        ("o", q_rows, dv, "f32", "output"),
    ):
        layout.add(name, rows, cols, dtype, kind)

    e = Emitter()
    e.emit("post", signal=_bits(5, 6))
    e.emit("post", signal=_bits(5, 6))  # two credits: double-buffered tile sets
    for reg in (R_Q16, R_Q, R_O, R_K, R_V, R_KHAT_HEAD):
        e.emit("set", rd=reg, imm=0)
    e.open_loop()  # KV heads
    e.open_loop()  # query heads sharing this KV head
    e.emit("set", rd=R_QBASE, imm=0)
    e.open_loop()  # query tiles
    e.emit("barrier")
    e.emit(
        "dma.load",
        dst=_at(regions["q16"]),
        src=Dram(R_Q16, layout.symbols["q16"][0]),
        rows=lanes,
        row_bytes=d * 2,
        src_stride=d * 2,
    )
    e.emit(
        "dma.load",
        dst=_at(regions["q"]),
        src=Dram(R_Q, layout.symbols["q"][0]),
        rows=lanes,
        row_bytes=d * 4,
        src_stride=d * 4,
    )
    e.emit("barrier")
    e.emit("sufa.init", lanes=lanes, vdepth=dv)
    e.emit("set", rd=R_KBASE, imm=0)
    e.emit("addi", rd=R_KHAT, rs=R_KHAT_HEAD, imm=0)
    pairs, odd = divmod(tiles, KV_BUFFER_SETS)
    if pairs:
        e.open_loop()
        for buffer_set in range(KV_BUFFER_SETS):
            emit_kv_step(e, regions, buffer_set, layout, shape, tiling, scale, radius)
        e.close_loop(pairs)
    if odd:
        emit_kv_step(e, regions, 0, layout, shape, tiling, scale, radius)
    e.emit("sufa.norm", signal=_bits(7), out=_at(regions["o"]), lanes=lanes, vdepth=dv)
    e.emit(
        "dma.store",
        wait=_bits(7),
        src=_at(regions["o"]),
        dst=Dram(R_O, layout.symbols["o"][0]),
        rows=lanes,
        row_bytes=dv * 4,
        dst_stride=dv * 4,
    )
    for reg, step in ((R_Q16, lanes * d * 2), (R_Q, lanes * d * 4), (R_QBASE, lanes), (R_O, lanes * dv * 4)):
        e.emit("addi", rd=reg, rs=reg, imm=step)
    e.close_loop(tiling.get("query_tiles"))
    e.close_loop(shape.q_heads // shape.kv_heads)
    for reg, step in ((R_K, padded_kv * d * 4), (R_V, padded_kv * dv * 4), (R_KHAT_HEAD, padded_kv * d * 2)):
        e.emit("addi", rd=reg, rs=reg, imm=step)
    e.close_loop(shape.batch * shape.kv_heads)
    e.emit("barrier")
    e.emit("halt")
    return e.ops(), layout


def _tiled_group(sufa: SufaOp) -> tuple[SadsOp, DlzsScoreOp] | None:
    select = sufa.indices.owner
    if not isinstance(select, SadsOp):
        return None
    score = select.scores.owner
    if not isinstance(score, DlzsScoreOp):
        return None
    return select, score


@dataclass(frozen=True)
class LowerToIsaPass(ModulePass):
    """Replace each tiled attention by a `sofa.kernel_call` to a new `sofa_isa.program`.

    ``config_hash`` (64 hex digits) binds the programs to a target config; the
    default, all zeros, leaves them unbound.
    """

    name = "sofa-lower-to-isa"

    config_hash: str = "0" * 64

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = module_target(op)
        kernels: list[ProgramOp] = []
        for sufa in [o for o in op.walk() if isinstance(o, SufaOp) and o.tiling is not None]:
            group = _tiled_group(sufa)
            if group is None:
                raise DiagnosticException("sofa.sufa with a tiling must consume sofa.sads of sofa.dlzs_score")
            select, score = group
            tiling = sufa.tiling
            assert tiling is not None
            shape = attention_shape_of_sufa(sufa, select)
            regions = plan_sram(target, shape, tiling.get("tile")).regions
            radius = select.sparsity.radius_value
            body, layout = build_kernel(shape, tiling, regions, sufa.scale.value.data, radius)
            name = f"{KERNEL_PREFIX}{len(kernels)}"
            program = ProgramOp.create(
                properties={
                    "config_hash": StringAttr(self.config_hash),
                    "dram_bytes": IntegerAttr(max(4096, -(-layout.top // 4096) * 4096), i64),
                    "symbols": layout.attrs(),
                    "segments": ArrayAttr([]),
                    "sym_name": StringAttr(name),
                },
                regions=[Region(Block(body))],
            )
            kernels.append(program)
            call = KernelCallOp(name, [sufa.q, sufa.k, sufa.v], [sufa.output.type])
            Rewriter.replace_op(sufa, call)
            for dead in (select, score):
                if not any(True for _ in dead.results[0].uses):
                    Rewriter.erase_op(dead)
        for program in kernels:
            op.body.block.add_op(program)
