"""The coordinated kernel: SOFA's cross-stage tiling, A-hat never leaves the chip.

    loop B*Hkv                      KV head (GQA: its query heads share K/V)
      loop Hq/Hkv                   query head of this KV head
        loop Sq/lanes               query tile: load Q, reset SU-FA
          loop Tc/G { tile 0; ...; tile G-1 }   KV tiles, a round of the buffer sets
          [tile 0; ...]             the Tc % G tiles left over
          normalise, store O

G is the count of per-tile buffer sets (`CoordinatedKernel.group`: 4 where
SRAM has room, `tile_plan.DEEP_BUFFER_SETS`, else 2).

Causal kernels skip the KV tiles above the diagonal: query tile qt needs
n(qt) = ceil((qt + 1) lanes / Bc) tiles, so its group loop is a `loopr` on a
run-time count. The query-tile loop runs over periods of P query tiles after
which n has grown by a multiple of G (`CoordinatedKernel.skip_period`; P = 1
when G Bc divides the lanes), with the static left-over tiles of each slot
unrolled; the last query tiles, which see every key, run the plain loop.

One KV tile step is: load K-hat rows -> DLZS score -> SADS (causal and
padding masks applied here) -> RASS union -> gather the selected K and V
rows -> SU-FA step, handing data from unit to unit through the semaphores
of `registers.Sem`. K-hat loads go to their own DMA queue (`dma.prefetch`),
so they run ahead, as far as the free K-hat/A-hat sets allow, of the K/V
gathers in the main load queue; the LZEs keep the query tile's LZ codes
across its KV tiles.

On demand (DLZS from the tokens X and LZ(W_k), paper §2.1), each KV head first
predicts its K-hat once, tile by tile (`dlzs.key`), into DRAM scratch; the
tile steps then load K-hat as above. Kernels that also generate K/V on chip
run the passes of `generation` before the attention pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from xdsl.dialects.builtin import ArrayAttr
from xdsl.ir import Operation

from dialects.numerics import DATAPATH, far_count
from dialects.sofa_isa import SegmentAttr
from passes.kernel_interface import KernelInterface, KernelKind, Symbol, SymbolKind
from passes.lower_to_isa.emitter import LoadQueue
from passes.lower_to_isa.generation import KvGeneration
from passes.lower_to_isa.kernel import AttentionKernel, TileBuffers, at
from passes.lower_to_isa.registers import CoordinatedReg as CReg
from passes.lower_to_isa.registers import Reg, Sem
from passes.tile_plan import KV_BUFFER_SETS, RegionKind

MAX_SKIP_UNROLL = 8
"""Most query tiles one causal skip period may unroll (`CoordinatedKernel.skip_period`)."""


@dataclass
class LzWeights:
    """W_k in LZ form for on-demand prediction: codes ``[H, Hkv*d]`` and their exponent."""

    codes: Any
    base: int


@dataclass(kw_only=True)
class CoordinatedKernel(AttentionKernel):
    """SOFA's kernel: prediction, selection and attention pipelined per KV tile."""

    radius: float
    lz: LzWeights | None = None
    gen: KvGeneration | None = None
    marking: bool = False
    """True while emitting the marking pass (prediction and SADS only, `kvmark` instead of attention)."""
    batch_index: int = 0

    @property
    def interface(self) -> KernelInterface:
        if self.gen is not None:
            return KernelInterface(KernelKind.GENERATING)
        return KernelInterface(KernelKind.ON_DEMAND if self.lz is not None else KernelKind.PLAIN)

    def lay_out(self) -> None:
        super().lay_out()
        if self.gen is not None and self.gen.selects_every_key:
            self.layout.add(Symbol.NEEDED, (1, self.gen.bitmap.size), "i8", SymbolKind.CONST)

    # --- causal skipping --------------------------------------------------------

    @property
    def buffer_sets(self) -> int:
        """Per-KV-tile buffer sets the SRAM plan holds."""
        return sum(1 for key in self.regions if key.kind is RegionKind.KHAT and key.buffer_set is not None)

    @property
    def group(self) -> int:
        """KV-tile steps per round of the buffer sets: the plan's sets, or `KV_BUFFER_SETS` of them when
        a causal kernel would otherwise unroll more than `MAX_SKIP_UNROLL` query tiles per period."""
        sets = self.buffer_sets
        if sets > KV_BUFFER_SETS and self.shape.causal and self.period(sets) > MAX_SKIP_UNROLL:
            return KV_BUFFER_SETS
        return sets

    def period(self, group: int) -> int:
        """Query tiles after which the causal tile pattern repeats, for `group` tiles a round.

        Query tile qt (L lanes) needs n(qt) = ceil((qt + 1) L / Bc) KV tiles; after
        P = G Bc / gcd(L, G Bc) query tiles that count has grown by a multiple G m = P L / Bc
        of G, so slot r of every period runs m more rounds than the period before,
        plus a fixed n(r) // G rounds and n(r) % G single tiles.
        """
        lanes, tile = self.tiling.lanes.data, self.tiling.tile.data
        return group * tile // math.gcd(lanes, group * tile)

    @property
    def skip_period(self) -> int:
        """`period` of this kernel's `group`."""
        return self.period(self.group)

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

    def rounds(self, query_tile: int) -> int:
        """Rounds of `group` tiles that `query_tile` runs in its `loopr`; the tiles left over are emitted statically."""
        return self.tiles_needed(query_tile) // self.group

    # --- K-hat ------------------------------------------------------------------

    def emit_prediction(self, r: TileBuffers) -> None:
        """Bring the tile's K-hat on chip (given by the host, or predicted once per head on demand)."""
        tile, d = self.tiling.tile.data, self.shape.depth
        khat = r[RegionKind.KHAT]
        self.e.dma_load(
            khat, self.dram(Reg.PRED, Symbol.KHAT), tile, d * 2, wait=(Sem.KHAT_FREE,), signal=(Sem.KHAT_LOADED,),
            queue=LoadQueue.PREFETCH,
        )  # fmt: skip
        self.e.addi(Reg.PRED, Reg.PRED, tile * d * 2)

    def emit_key_prediction(self) -> None:
        """On demand: predict this KV head's K-hat = X . LZ(W_k) once, tile by tile, into DRAM scratch.

        Every query tile then loads the fp16 K-hat rows (2d bytes a key) instead of
        re-reading the 8-bit tokens (H bytes a key) and redoing the shift-adds.
        Two buffer sets overlap the token loads, DLZS and the store; the K-hat/A-hat
        credits (`Sem.KHAT_FREE`) are returned by each store.
        """
        assert self.lz is not None
        tile, d, hidden, e = self.tiling.tile.data, self.shape.depth, self.shape.hidden, self.e
        padded_kv, base = self.tiling.padded_kv.data, self.lz.base

        def predict(buffer_set: int) -> None:
            r = self.buffers(buffer_set)
            x, xexp, khat = r[RegionKind.X], r[RegionKind.XEXP], r[RegionKind.KHAT]
            e.dma_load(x, self.dram(CReg.X8, Symbol.X8), tile, hidden, wait=(Sem.KHAT_FREE,))
            e.dma_load(xexp, self.dram(CReg.XEXP, Symbol.XEXP), tile, 1, signal=(Sem.KHAT_LOADED,))
            codes = self.sram(RegionKind.CODES)
            e.dlzs_key(x, xexp, codes, khat, tile, hidden, d, base, wait=(Sem.KHAT_LOADED,), signal=(Sem.AHAT_READY,))
            e.dma_store(
                khat, self.dram(Reg.PRED, Symbol.KHAT), tile, d * 2, wait=(Sem.AHAT_READY,), signal=(Sem.KHAT_FREE,)
            )
            e.advance(((CReg.X8, tile * hidden), (CReg.XEXP, tile), (Reg.PRED, tile * d * 2)))

        e.set(CReg.X8, self.batch_index * padded_kv * hidden)
        e.set(CReg.XEXP, self.batch_index * padded_kv)
        e.addi(Reg.PRED, Reg.PRED_HEAD, 0)
        e.tile_loop(self.tiling.kv_tiles.data, predict)
        e.barrier()

    # --- KV tiles and query tiles ---------------------------------------------------

    def emit_kv_step(self, step: int) -> None:
        """One KV tile (step `step` of a round of the buffer sets) through DLZS, SADS, RASS, K/V gather, SU-FA."""
        tiling, shape, e = self.tiling, self.shape, self.e
        lanes, tile = tiling.lanes.data, tiling.tile.data
        r = self.buffers(step)
        self.emit_prediction(r)
        e.score(
            self.predictor, self.sram(RegionKind.Q16), r[RegionKind.KHAT], r[RegionKind.AHAT], lanes, tile,
            shape.depth, wait=(Sem.KHAT_LOADED,), signal=(Sem.AHAT_READY,),
        )  # fmt: skip
        self.emit_selection(r)
        if self.marking:
            assert self.gen is not None
            e.kvmark(
                r[RegionKind.IDX], at(self.gen.bitmap), lanes, self.slots, tiling.padded_kv.data,
                wait=(Sem.INDICES_READY,), signal=(Sem.KV_FREE,),
            )  # fmt: skip
        else:
            self.emit_kv_fetch(r, (CReg.K_TILE, CReg.V_TILE))
            self.emit_attention_step(self.sram(RegionKind.Q), r)
        e.addi(Reg.KBASE, Reg.KBASE, tile)

    def emit_selection(self, r: TileBuffers) -> None:
        """SADS on the tile's A-hat (budgeted when the shape asks for it); frees K-hat, hands on the indices."""
        tiling, shape, e = self.tiling, self.shape, self.e
        lanes, tile, m = tiling.lanes.data, tiling.tile.data, tiling.keep_count.data
        common = (Reg.KBASE, Reg.QBASE, shape.kv_len, shape.causal)
        sems = {"wait": (Sem.AHAT_READY, Sem.KV_FREE), "signal": (Sem.INDICES_READY, Sem.KHAT_FREE)}
        radius = self.radius / self.scale
        if not self.budgeted:
            e.sads(r[RegionKind.AHAT], r[RegionKind.IDX], lanes, tile, m, radius, *common, **sems)
            return
        far = far_count(shape.far, shape.keep, tile)
        e.sads_budget(r[RegionKind.AHAT], r[RegionKind.IDX], lanes, tile, self.slots, m, far, radius, *common, **sems)

    def emit_kv_tiles(self, slot: int | None) -> None:
        """The query tile's KV tiles: all of them (`slot` None), or those below the causal diagonal."""
        e = self.e
        if slot is None:
            e.tile_loop(self.tiling.kv_tiles.data, self.emit_kv_step, self.group)
            return
        # GROUPS holds this query tile's count of whole rounds below the diagonal.
        e.open_loop()
        for step in range(self.group):
            self.emit_kv_step(step)
        e.close_loop_register(CReg.GROUPS)
        for step in range(self.tiles_needed(slot) % self.group):
            self.emit_kv_step(step)

    def emit_query_tile(self, slot: int | None = None) -> None:
        """Load a query tile, run its KV tiles (rounds of the buffer sets), normalise and store O.

        ``slot`` is the query tile's place in the causal skip period (`skip_period`);
        None runs every KV tile.
        """
        tiling, shape, e = self.tiling, self.shape, self.e
        lanes, d, dv = tiling.lanes.data, shape.depth, shape.v_depth
        loads = ((RegionKind.Q16, Reg.Q16, Symbol.Q16, 2), (RegionKind.Q, Reg.Q, Symbol.Q, DATAPATH.nbytes))
        self.emit_query_loads(loads[: 1 if self.marking else 2], attend_phase=False)
        if not self.marking:
            e.sufa_init(lanes, dv)
        if self.budgeted:
            e.sads_reset(lanes)
        e.set(Reg.KBASE, 0)
        e.addi(Reg.PRED, Reg.PRED_HEAD, 0)
        if not self.rass:
            e.addi(CReg.K_TILE, Reg.K, 0)
            e.addi(CReg.V_TILE, Reg.V, 0)
        self.emit_kv_tiles(slot)
        steps: list[tuple[int, int]] = [(Reg.Q16, lanes * d * 2), (Reg.QBASE, lanes)]
        if not self.marking:
            self.emit_output(self.sram(RegionKind.OUT))
            steps += [(Reg.Q, lanes * d * DATAPATH.nbytes), (Reg.OUT, lanes * dv * DATAPATH.nbytes)]
        e.advance(steps)
        if slot is not None and (step := self.rounds(slot + 1) - self.rounds(slot)):
            e.addi(CReg.GROUPS, CReg.GROUPS, step)

    def emit_query_tiles(self) -> None:
        """Every query tile of one head: periods of the causal skip pattern, then a hardware
        loop over the query tiles that run every KV tile (all of them when nothing is skipped)."""
        query_tiles, skipping, e = self.tiling.query_tiles.data, self.skipping_query_tiles, self.e
        if skipping:
            period = self.skip_period
            e.set(CReg.GROUPS, self.rounds(0))
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

    def emit_head_start(self) -> None:
        """Start a query head's walk: its first query is query 0."""
        self.e.set(Reg.QBASE, 0)

    def emit_query_heads(self) -> None:
        """Every query head of the current KV head, each over all its query tiles."""
        self.e.open_loop()
        self.emit_head_start()
        self.emit_query_tiles()
        self.e.close_loop(self.shape.q_heads // self.shape.kv_heads)

    def emit_marking(self) -> None:
        """Pass 1 of on-chip generation: predict and select every tile, marking the chosen keys.

        The pass repeats the attention pass's prediction and SADS exactly, so the
        bitmap holds every key that any query of this KV head will attend to.
        Its Q16 walk is rewound afterwards for the attention pass.
        """
        shape = self.shape
        self.marking = True
        self.emit_query_heads()
        self.marking = False
        group_rows = (shape.q_heads // shape.kv_heads) * self.tiling.padded_q.data
        self.e.addi(Reg.Q16, Reg.Q16, -group_rows * shape.depth * 2)

    def emit_kv_head(self) -> None:
        """All query heads that share one KV head (GQA), each over all query tiles."""
        shape, e, gen = self.shape, self.e, self.gen
        if self.lz is not None:
            # This head's LZ-code columns; the barrier keeps the previous head's DLZS off them.
            e.barrier()
            codes = self.dram(CReg.CODES, Symbol.CODES)
            e.dma_load(self.sram(RegionKind.CODES), codes, shape.hidden, shape.depth, shape.kv_heads * shape.depth)
            e.barrier()
            self.emit_key_prediction()
        if gen is not None:
            if gen.selects_every_key:
                e.dma_load(at(gen.bitmap), self.dram(Reg.ZERO, Symbol.NEEDED), 1, gen.bitmap.size)
            else:
                self.emit_marking()
            gen.emit_pass(e, self.layout, self.batch_index)
        self.emit_query_heads()
        steps = self.kv_head_steps()
        if self.lz is not None:
            steps.append((CReg.CODES, shape.depth))
        if gen is not None:
            steps += gen.head_steps()
        e.advance(steps)

    def build(self) -> list[Operation]:
        shape, e = self.shape, self.e
        self.lay_out()
        self.emit_prologue(self.group)
        if self.lz is None:
            e.open_loop()
            self.emit_kv_head()
            e.close_loop(shape.batch * shape.kv_heads)
            return self.emit_epilogue()
        # Tokens are shared by a batch element's KV heads, so batches are
        # unrolled (program size grows with the batch, never with length).
        for batch in range(shape.batch):
            self.batch_index = batch
            e.set(CReg.CODES, 0)
            if self.gen is not None:
                e.set(CReg.GEN_WK, 0)
                e.set(CReg.GEN_WV, 0)
            e.open_loop()
            self.emit_kv_head()
            e.close_loop(shape.kv_heads)
        return self.emit_epilogue()

    def segments(self) -> ArrayAttr[SegmentAttr]:
        if self.lz is None:
            return ArrayAttr([])
        segments = [SegmentAttr(self.layout.address(Symbol.CODES), self.lz.codes.astype("int8").tobytes())]
        if self.gen is not None:
            segments += self.gen.segments(self.layout)
        return ArrayAttr(segments)
