"""What the coordinated and the separate-stage kernels share: DRAM layout, SRAM regions,
prologue and epilogue, the K/V fetch, the attention step and the output store."""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, StringAttr, i64
from xdsl.ir import Block, Operation, Region

from dialects.numerics import DATAPATH
from dialects.sofa import PLAIN_SADS, TilingAttr
from dialects.sofa_isa import Dram, ProgramOp, SegmentAttr, Sram
from passes.kernel_interface import KernelInterface, KernelLayout, Symbol
from passes.lower_to_isa.emitter import AttentionStep, Emitter, Predictor
from passes.lower_to_isa.registers import Reg, Sem
from passes.tile_plan import KV_BUFFER_SETS, AttentionShape, RegionKey, RegionKind
from passes.tile_plan import Region as SramRegion

DRAM_PAGE = 4096
"""A program's DRAM size is a whole number of pages, at least one."""


def at(region: SramRegion) -> Sram:
    """The SRAM operand at the start of `region`."""
    return Sram(region.buffer, 0, region.offset)


@dataclass(frozen=True)
class TileBuffers:
    """The SRAM regions of one KV buffer set."""

    regions: dict[RegionKey, SramRegion]
    buffer_set: int
    attend_phase: bool = False

    def region(self, kind: RegionKind) -> SramRegion:
        return self.regions[RegionKey(kind, self.buffer_set, self.attend_phase)]

    def __getitem__(self, kind: RegionKind) -> Sram:
        return at(self.region(kind))


@dataclass(kw_only=True)
class AttentionKernel:
    """Emits one attention kernel: its DRAM layout and its instruction ops."""

    shape: AttentionShape
    tiling: TilingAttr
    regions: dict[RegionKey, SramRegion]
    scale: float
    predictor: Predictor = Predictor.DLZS
    attention: AttentionStep = AttentionStep.SUFA
    rass: bool = True
    softcap: float = 0.0
    """The score cap c (0: none): the prologue sets the SADS and SU-FA units' register (`softcap`)."""
    e: Emitter = field(default_factory=Emitter)
    layout: KernelLayout = field(default_factory=KernelLayout)

    # --- DRAM and SRAM ------------------------------------------------------

    @property
    def interface(self) -> KernelInterface:
        raise NotImplementedError

    def lay_out(self) -> None:
        """Place the interface's symbols (subclasses add their private ones after them)."""
        padded_q, padded_kv = self.tiling.padded_q.data, self.tiling.padded_kv.data
        self.layout.add_interface(self.interface, self.interface.shapes(self.shape, padded_q, padded_kv))

    def dram(self, reg: int, symbol: Symbol, offset: int = 0) -> Dram:
        return self.layout.dram(reg, symbol, offset)

    def sram(self, kind: RegionKind, attend_phase: bool = False) -> Sram:
        """A single (not per KV tile) region's SRAM operand."""
        return at(self.regions[RegionKey(kind, None, attend_phase)])

    def buffers(self, buffer_set: int, attend_phase: bool = False) -> TileBuffers:
        return TileBuffers(self.regions, buffer_set, attend_phase)

    @property
    def budgeted(self) -> bool:
        """Budgeted SADS (`numerics.sads_budget`): row budgets move between the KV tiles."""
        return self.shape.far != PLAIN_SADS

    @property
    def slots(self) -> int:
        """Index slots per lane and KV tile (SADS's output width): m, or budgeted SADS's wider one."""
        return self.shape.slots(self.tiling.tile.data) if self.budgeted else self.tiling.keep_count.data

    # --- shared emission ------------------------------------------------------

    def emit_prologue(self, sets: int = KV_BUFFER_SETS) -> None:
        """A credit per buffer set on each set semaphore (`sets` per-tile sets); the walks start at 0."""
        if self.softcap:
            self.e.softcap(self.softcap)
        for _ in range(sets):
            self.e.post((Sem.KHAT_FREE, Sem.KV_FREE))
        for reg in (Reg.Q16, Reg.Q, Reg.OUT, Reg.K, Reg.V, Reg.PRED_HEAD):
            self.e.set(reg, 0)

    def emit_epilogue(self) -> list[Operation]:
        self.e.barrier()
        self.e.halt()
        return self.e.ops()

    def emit_query_loads(self, loads: tuple[tuple[RegionKind, Reg, Symbol, int], ...], attend_phase: bool) -> None:
        """Load a query tile's rows, ``(region, register, symbol, element bytes)`` each, between barriers."""
        lanes, d = self.tiling.lanes.data, self.shape.depth
        self.e.barrier()
        for kind, reg, symbol, width in loads:
            self.e.dma_load(self.sram(kind, attend_phase), self.dram(reg, symbol), lanes, d * width)
        self.e.barrier()

    def emit_kv_fetch(self, r: TileBuffers, tile_registers: tuple[int, int]) -> None:
        """Bring the tile's K and V rows on chip once SADS has chosen (`Sem.INDICES_READY`); signal `Sem.KV_FETCHED`.

        With RASS, only the union of the lanes' selections is gathered, most-shared
        first (paper §4.5); without it, the whole K and V tiles are loaded (from the
        addresses in `tile_registers`), as a dense FlashAttention dataflow does.
        """
        lanes, m, e = self.tiling.lanes.data, self.slots, self.e
        widths = (self.shape.depth * DATAPATH.nbytes, self.shape.v_depth * DATAPATH.nbytes)
        tile = r.region(RegionKind.K).size // widths[0]
        fetches = ((RegionKind.K, Symbol.K, Reg.K), (RegionKind.V, Symbol.V, Reg.V))
        if self.rass:
            e.rass(r[RegionKind.IDX], r[RegionKind.LIST], lanes, m, wait=(Sem.INDICES_READY,), signal=(Sem.LIST_READY,))
            for (kind, symbol, reg), width in zip(fetches, widths, strict=True):
                first = kind is RegionKind.K
                e.dma_gather(
                    r[kind], self.dram(reg, symbol), r[RegionKind.LIST], Reg.KBASE, tile, width, width,
                    wait=(Sem.LIST_READY,) if first else (), signal=() if first else (Sem.KV_FETCHED,),
                )  # fmt: skip
            return
        for (kind, symbol, _), width, reg in zip(fetches, widths, tile_registers, strict=True):
            first = kind is RegionKind.K
            e.dma_load(
                r[kind], self.dram(reg, symbol), tile, width,
                wait=(Sem.INDICES_READY,) if first else (), signal=() if first else (Sem.KV_FETCHED,),
            )  # fmt: skip
            e.addi(reg, reg, tile * width)

    def emit_attention_step(self, q: Sram, r: TileBuffers) -> None:
        """Attention over the tile's selected keys once they are on chip; frees the set, moves to the next tile."""
        lanes, tile, m = self.tiling.lanes.data, self.tiling.tile.data, self.slots
        self.e.attention_step(
            self.attention, q, r[RegionKind.K], r[RegionKind.V], r[RegionKind.IDX], Reg.KBASE, lanes, m, tile,
            self.shape.depth, self.shape.v_depth, self.scale, wait=(Sem.KV_FETCHED,), signal=(Sem.KV_FREE,),
        )  # fmt: skip

    def emit_output(self, o: Sram) -> None:
        """Normalise the query tile's output and store it."""
        lanes, dv = self.tiling.lanes.data, self.shape.v_depth
        self.e.sufa_norm(o, lanes, dv, signal=(Sem.O_READY,))
        self.e.dma_store(o, self.dram(Reg.OUT, Symbol.OUT), lanes, dv * DATAPATH.nbytes, wait=(Sem.O_READY,))

    def kv_head_steps(self) -> list[tuple[int, int]]:
        """How the K, V and K-hat walks advance from one KV head to the next."""
        d, dv, padded_kv = self.shape.depth, self.shape.v_depth, self.tiling.padded_kv.data
        element = DATAPATH.nbytes
        return [(Reg.K, padded_kv * d * element), (Reg.V, padded_kv * dv * element), (Reg.PRED_HEAD, padded_kv * d * 2)]

    # --- the program ------------------------------------------------------------

    def build(self) -> list[Operation]:
        raise NotImplementedError

    def segments(self) -> ArrayAttr[SegmentAttr]:
        return ArrayAttr([])

    def program(self, name: str, config_hash: str) -> ProgramOp:
        """The whole kernel as a `sofa_isa.program`."""
        body = self.build()
        return ProgramOp.create(
            properties={
                "config_hash": StringAttr(config_hash),
                "dram_bytes": IntegerAttr(max(DRAM_PAGE, -(-self.layout.top // DRAM_PAGE) * DRAM_PAGE), i64),
                "symbols": self.layout.attrs(),
                "segments": self.segments(),
                "sym_name": StringAttr(name),
            },
            regions=[Region(Block(body))],
        )
