"""The separate-stage baseline kernel, phase by phase, as prior accelerators run it.

Per query head: (1) DLZS predicts every A-hat tile and spills it to DRAM;
(2) whole rows come back for a global top-k (`topk.mask`) and go back to
DRAM; (3) FlashAttention-2 streams every K/V tile densely and, per tile,
re-reads the masked A-hat to find its selected keys (`fa2.step`). The phases
are separated by barriers; the attention phase's SRAM regions (`attend_phase`)
may alias the prediction phase's.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.ir import Operation

from dialects.numerics import DATAPATH
from dialects.sofa import NO_RADIUS
from passes.kernel_interface import KernelInterface, KernelKind, Symbol, SymbolKind
from passes.lower_to_isa.kernel import AttentionKernel
from passes.lower_to_isa.registers import Reg, Sem
from passes.lower_to_isa.registers import SeparateReg as SReg
from passes.tile_plan import RegionKind


@dataclass(kw_only=True)
class SeparateKernel(AttentionKernel):
    """The baseline: A-hat goes through DRAM between prediction, selection and attention."""

    group_rows: int
    """A-hat rows per whole-row top-k group."""
    keep_row: int
    """Keys kept per whole row."""
    row_selection: bool = True
    """Whole-row top-k before the attention phase (else SADS alone selects, per tile)."""

    @property
    def interface(self) -> KernelInterface:
        return KernelInterface(KernelKind.PLAIN)

    def lay_out(self) -> None:
        super().lay_out()
        # One head's A-hat, reused head after head: the traffic coordinated tiling avoids.
        shape = (self.tiling.padded_q.data, self.tiling.padded_kv.data)
        self.layout.add(Symbol.AHAT, shape, "f16", SymbolKind.CONST)

    @property
    def ahat_row_bytes(self) -> int:
        return self.tiling.padded_kv.data * 2

    def emit_predict_phase(self) -> None:
        tiling, e = self.tiling, self.e
        lanes, tile, d = tiling.lanes.data, tiling.tile.data, self.shape.depth
        e.set(SReg.AHAT_ROW, 0)
        e.open_loop()
        self.emit_query_loads(((RegionKind.Q16, Reg.Q16, Symbol.Q16, 2),), attend_phase=False)
        e.addi(Reg.PRED, Reg.PRED_HEAD, 0)
        e.addi(SReg.AHAT_TILE, SReg.AHAT_ROW, 0)

        def predict_step(buffer_set: int) -> None:
            r = self.buffers(buffer_set)
            khat, ahat = r[RegionKind.KHAT], r[RegionKind.AHAT]
            source = self.dram(Reg.PRED, Symbol.KHAT)
            e.dma_load(khat, source, tile, d * 2, wait=(Sem.KHAT_FREE,), signal=(Sem.KHAT_LOADED,))
            e.score(
                self.predictor, self.sram(RegionKind.Q16), khat, ahat, lanes, tile, d,
                wait=(Sem.KHAT_LOADED,), signal=(Sem.AHAT_READY,),
            )  # fmt: skip
            spill = self.dram(SReg.AHAT_TILE, Symbol.AHAT)
            e.dma_store(
                ahat, spill, lanes, tile * 2, self.ahat_row_bytes, wait=(Sem.AHAT_READY,), signal=(Sem.KHAT_FREE,)
            )
            e.advance(((Reg.PRED, tile * d * 2), (SReg.AHAT_TILE, tile * 2)))

        e.tile_loop(tiling.kv_tiles.data, predict_step)
        e.advance(((Reg.Q16, lanes * d * 2), (SReg.AHAT_ROW, lanes * self.ahat_row_bytes)))
        e.close_loop(tiling.query_tiles.data)

    def emit_select_phase(self) -> None:
        tiling, shape, e = self.tiling, self.shape, self.e
        rows, row_bytes = self.group_rows, self.ahat_row_bytes
        e.barrier()
        e.set(SReg.AHAT_ROW, 0)
        e.set(Reg.QBASE, 0)
        e.open_loop()
        ahat, buffer = self.dram(SReg.AHAT_ROW, Symbol.AHAT), self.sram(RegionKind.ROWS)
        e.dma_load(buffer, ahat, rows, row_bytes)
        e.barrier()
        e.topk_mask(buffer, rows, tiling.padded_kv.data, self.keep_row, Reg.QBASE, shape.kv_len, shape.causal)
        e.barrier()
        e.dma_store(buffer, ahat, rows, row_bytes)
        e.barrier()
        e.advance(((SReg.AHAT_ROW, rows * row_bytes), (Reg.QBASE, rows)))
        e.close_loop(tiling.padded_q.data // rows)

    def emit_attend_step(self, buffer_set: int) -> None:
        tiling, shape, e = self.tiling, self.shape, self.e
        lanes, tile, m = tiling.lanes.data, tiling.tile.data, tiling.keep_count.data
        r = self.buffers(buffer_set, attend_phase=True)
        masked = self.dram(SReg.AHAT_TILE, Symbol.AHAT)
        e.dma_load(
            r[RegionKind.AHAT], masked, lanes, tile * 2, self.ahat_row_bytes,
            wait=(Sem.KHAT_FREE,), signal=(Sem.KHAT_LOADED,),
        )  # fmt: skip
        e.sads(
            r[RegionKind.AHAT], r[RegionKind.IDX], lanes, tile, m, NO_RADIUS, Reg.KBASE, Reg.QBASE, shape.kv_len,
            shape.causal, wait=(Sem.KHAT_LOADED, Sem.KV_FREE), signal=(Sem.INDICES_READY, Sem.KHAT_FREE),
        )  # fmt: skip
        self.emit_kv_fetch(r, (SReg.K_TILE, SReg.V_TILE))
        self.emit_attention_step(self.sram(RegionKind.Q, attend_phase=True), r)
        e.advance(((Reg.KBASE, tile), (SReg.AHAT_TILE, tile * 2)))

    def emit_attend_phase(self) -> None:
        tiling, shape, e = self.tiling, self.shape, self.e
        lanes, d, dv = tiling.lanes.data, shape.depth, shape.v_depth
        e.barrier()
        e.set(SReg.AHAT_ROW, 0)
        e.set(Reg.QBASE, 0)
        e.open_loop()
        self.emit_query_loads(((RegionKind.Q, Reg.Q, Symbol.Q, DATAPATH.nbytes),), attend_phase=True)
        e.sufa_init(lanes, dv)
        e.set(Reg.KBASE, 0)
        for reg, base in ((SReg.AHAT_TILE, SReg.AHAT_ROW), (SReg.K_TILE, Reg.K), (SReg.V_TILE, Reg.V)):
            e.addi(reg, base, 0)
        e.tile_loop(tiling.kv_tiles.data, self.emit_attend_step)
        self.emit_output(self.sram(RegionKind.OUT, attend_phase=True))
        steps = ((Reg.Q, lanes * d * DATAPATH.nbytes), (Reg.QBASE, lanes), (Reg.OUT, lanes * dv * DATAPATH.nbytes))
        e.advance((*steps, (SReg.AHAT_ROW, lanes * self.ahat_row_bytes)))
        e.close_loop(tiling.query_tiles.data)

    def build(self) -> list[Operation]:
        shape, e = self.shape, self.e
        self.lay_out()
        self.emit_prologue()
        e.open_loop()  # KV heads
        e.open_loop()  # query heads of this KV head
        self.emit_predict_phase()
        if self.row_selection:
            self.emit_select_phase()
        self.emit_attend_phase()
        e.close_loop(shape.q_heads // shape.kv_heads)
        e.advance(self.kv_head_steps())
        e.close_loop(shape.batch * shape.kv_heads)
        return self.emit_epilogue()
