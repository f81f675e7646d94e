"""On-chip K/V generation (paper §2.1) for the coordinated kernel.

RASS kernels whose K and V are a constant `sofa.kv_projection` of the tokens X,
where the buffers fit, take Q and X only; each KV head runs three passes.
(1) Marking: every query tile's prediction and SADS run as in the attention
pass and `kvmark` sets the selected keys in a bitmap (at keep 1.0 without a
sphere clip the bitmap is known and loaded instead). (2) Generation: per window
of whole KV tiles, `kvlist` lists the marked keys, and for each hidden chunk (a
multiple of 64 columns) the listed tokens and the chunk's W_k/W_v rows are
fetched and `kvgen` accumulates the K and V rows (starting from the bias);
`dma.scatter` writes them to K/V scratch rows in DRAM. (3) Attention, as
usual, gathering those rows. The generation pass is barrier-synchronised (one
buffer set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dialects.numerics import DATAPATH
from dialects.sofa import NO_RADIUS, TilingAttr
from dialects.sofa_isa import SegmentAttr, Sram
from passes.kernel_interface import KernelLayout, Symbol
from passes.lower_to_isa.emitter import Emitter, KvGenMode
from passes.lower_to_isa.kernel import at
from passes.lower_to_isa.registers import CoordinatedReg as CReg
from passes.lower_to_isa.registers import Reg
from passes.tile_plan import AttentionShape, GenerationPlan, RegionKey, RegionKind
from passes.tile_plan import Region as SramRegion


def head_blocks(weights: Any, bias: Any, heads: int) -> Any:
    """``W [H, heads*d]`` and ``b [heads*d]`` as ``[heads*(H+1), d]``: each head's W rows, then its bias row."""
    hidden, columns = weights.shape
    depth = columns // heads
    bias = np.zeros(columns, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(columns)
    blocks = np.concatenate([np.asarray(weights, np.float32), bias[None, :]], axis=0)
    return np.ascontiguousarray(blocks.reshape(hidden + 1, heads, depth).transpose(1, 0, 2).reshape(-1, depth))


@dataclass
class KvGeneration:
    """On-chip K/V generation: per-head weight blocks ``[Hkv*(H+1), d]`` (W rows, then the bias row)."""

    wk: Any
    wv: Any
    plan: GenerationPlan
    shape: AttentionShape
    tiling: TilingAttr
    radius: float

    @property
    def bitmap(self) -> SramRegion:
        return self.plan.regions[RegionKey(RegionKind.BITMAP)]

    def region(self, kind: RegionKind) -> Sram:
        return at(self.plan.regions[RegionKey(kind)])

    @property
    def selects_every_key(self) -> bool:
        """Keep 1.0 without a sphere clip: SADS selects every valid key, so marking is known in advance.

        The kernel then loads that bitmap instead of running the marking pass:
        keys below ``kv_len`` (causal: below the padded query count too, the
        last key any query lane can see).
        """
        keep_all = self.tiling.keep_count.data == self.tiling.tile.data
        return keep_all and self.radius == NO_RADIUS

    def needed_keys(self) -> Any:
        """The bitmap `selects_every_key` loads: one bit per key, little-endian within a byte."""
        last = self.shape.kv_len
        if self.shape.causal:
            last = min(last, self.tiling.padded_q.data)
        bits = np.zeros(self.bitmap.size * 8, np.uint8)
        bits[:last] = 1
        return np.packbits(bits, bitorder="little")

    def segments(self, layout: KernelLayout) -> list[SegmentAttr]:
        """The weight blocks (and the known bitmap) in the program's DRAM image."""
        segments = [
            SegmentAttr(layout.address(name), block.astype("<f4").tobytes())
            for name, block in ((Symbol.WK, self.wk), (Symbol.WV, self.wv))
        ]
        if self.selects_every_key:
            segments.append(SegmentAttr(layout.address(Symbol.NEEDED), self.needed_keys().tobytes()))
        return segments

    def head_steps(self) -> list[tuple[int, int]]:
        """How the weight-block walks advance from one KV head to the next."""
        hidden, d, dv = self.shape.hidden, self.shape.depth, self.shape.v_depth
        return [(CReg.GEN_WK, (hidden + 1) * d * 4), (CReg.GEN_WV, (hidden + 1) * dv * 4)]

    def emit_pass(self, e: Emitter, layout: KernelLayout, batch_index: int) -> None:
        """Pass 2: window by window (whole KV tiles), generate the marked K/V rows on the K/V-generation array.

        Per window: list the marked keys (clearing their bits for the next head),
        then, one hidden chunk at a time, gather the listed tokens' columns and
        load the W_k/W_v rows of the chunk, and accumulate into the K/V rows
        (the first chunk starts from the bias); finally scatter the rows to
        their DRAM rows, where the attention pass gathers them. The phase is
        synchronised with barriers (one buffer set).
        """
        rows, hidden, chunk = self.plan.rows, self.shape.hidden, self.plan.chunk
        d, dv = self.shape.depth, self.shape.v_depth
        rows_list = self.region(RegionKind.GEN_LIST)
        e.barrier()
        e.set(Reg.KBASE, 0)
        e.open_loop()
        e.kvlist(at(self.bitmap), rows_list, Reg.KBASE, rows, clear=True)
        for kind, reg, symbol, width in (
            (RegionKind.GEN_BK, CReg.GEN_WK, Symbol.WK, d),
            (RegionKind.GEN_BV, CReg.GEN_WV, Symbol.WV, dv),
        ):
            bias_row = layout.dram(reg, symbol, hidden * width * 4)
            e.dma_load(self.region(kind), bias_row, 1, width * 4)
        e.set(CReg.GEN_X, batch_index * self.tiling.padded_kv.data * hidden * 4)
        full, rest = divmod(hidden, chunk)
        self.emit_chunk(e, layout, chunk if full else rest, KvGenMode.FROM_BIAS)
        if full > 1:
            e.open_loop()
            self.emit_chunk(e, layout, chunk, KvGenMode.ACCUMULATE)
            e.close_loop(full - 1)
        if full and rest:
            self.emit_chunk(e, layout, rest, KvGenMode.ACCUMULATE)
        # The rows leave the fp32 accumulators as the datapath's fp16, once every hidden chunk is in.
        outputs = (
            (RegionKind.GEN_K, RegionKind.GEN_K16, Reg.K, Symbol.K, d),
            (RegionKind.GEN_V, RegionKind.GEN_V16, Reg.V, Symbol.V, dv),
        )
        for accumulators, rounded, _, _, width in outputs:
            e.kvround(self.region(accumulators), self.region(rounded), rows_list, Reg.KBASE, rows, width)
        e.barrier()
        for _, rounded, reg, symbol, width in outputs:
            row_bytes = width * DATAPATH.nbytes
            e.dma_scatter(
                self.region(rounded), layout.dram(reg, symbol), rows_list, Reg.KBASE, rows, row_bytes, row_bytes
            )
        e.advance(((CReg.GEN_WK, -hidden * d * 4), (CReg.GEN_WV, -hidden * dv * 4), (Reg.KBASE, rows)))
        e.barrier()
        e.close_loop(self.tiling.padded_kv.data // rows)

    def emit_chunk(self, e: Emitter, layout: KernelLayout, width: int, mode: KvGenMode) -> None:
        """One hidden chunk of `width` columns: fetch tokens and weights, then accumulate K and V."""
        rows, hidden, d, dv = self.plan.rows, self.shape.hidden, self.shape.depth, self.shape.v_depth
        x, rows_list = self.region(RegionKind.GEN_X), self.region(RegionKind.GEN_LIST)
        tokens = layout.dram(CReg.GEN_X, Symbol.X32)
        e.dma_gather(x, tokens, rows_list, Reg.KBASE, rows, width * 4, hidden * 4)
        outputs = (
            (RegionKind.GEN_WK, RegionKind.GEN_K, RegionKind.GEN_BK, CReg.GEN_WK, Symbol.WK, d),
            (RegionKind.GEN_WV, RegionKind.GEN_V, RegionKind.GEN_BV, CReg.GEN_WV, Symbol.WV, dv),
        )
        for w, _, _, reg, symbol, cols in outputs:
            e.dma_load(self.region(w), layout.dram(reg, symbol), width, cols * 4)
        e.barrier()
        for w, out, bias, _, _, cols in outputs:
            e.kvgen(
                x, self.region(w), self.region(out), rows_list, Reg.KBASE, rows, width, cols, self.region(bias), mode
            )
        e.barrier()
        e.advance(((CReg.GEN_X, width * 4), (CReg.GEN_WK, width * d * 4), (CReg.GEN_WV, width * dv * 4)))
