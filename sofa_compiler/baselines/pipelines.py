"""The two baselines SOFA is compared with, as phase programs (`phases`) on SOFA's own engines.

* `fair_separate`: a separate-stage accelerator done fairly. Per query head:
  (1) predict A-hat tile by tile and spill it to DRAM once; (2) read whole
  rows back, keep ceil(k * valid length) keys a row on the target's
  `row_topk` engine and write the result as an index list; (3)
  FlashAttention over the K/V tiles, reading each tile's slice of the index
  list. Every phase skips the KV tiles that are fully masked (causal).
* `paper_vanilla`: the paper's "vanilla dynamic-sparsity accelerator with
  low-precision prediction" (§1.3, §1.5 of docs/sofa-paper.md): 4-bit
  multiply prediction, A-hat and A through DRAM by row, a 2 MB SRAM
  (Fig. 3). Per query head: (1) A-hat = Q4 K4^T row by row, to DRAM;
  (2) top-k by row, index list to DRAM; (3) the selected scores S = Q K^T,
  written to DRAM as A; (4) A read back by row for the softmax and A V.

Both run on the SOFA target's arrays (the same rates and pJ, `docs/cost-model.md`),
so the comparison is of dataflows, not of silicon.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialects.numerics import tile_count
from dialects.sofa import TargetAttr
from passes.kernel_interface import ELEMENT_BYTES, KernelInterface, KernelKind, Symbol
from passes.tile_plan import AttentionShape, query_lanes, sram_sizes
from sofa_compiler.baselines.phases import PhaseProgram, Priced, compute, dma_load, dma_store, price
from sofa_compiler.baselines.rows import Rows, group_rows, row_topk_work
from sofa_compiler.sim.config import HardwareConfig
from sofa_compiler.sim.events import Unit, Work
from sofa_compiler.sim.semantics import attention_step_work

INDEX_BYTES = 4
"""An index-list entry: a key index in one 32-bit word, as the ISA's index regions hold them."""

AHAT_BYTES = 2
"""A-hat (and A) elements are fp16."""

VANILLA_SRAM_BYTES = 2 << 20
"""The vanilla accelerator's on-chip SRAM: "with 2MB SRAM" (paper Fig. 3) [P-fig]."""

PREDICTORS = ("dlzs", "mul4")


def element_bytes() -> dict[Symbol, int]:
    """Bytes of one element of each DRAM symbol, as the compiled kernels store them."""
    return {spec.name: ELEMENT_BYTES[spec.dtype] for spec in KernelInterface(KernelKind.PLAIN).symbols()}


def predict_work(predictor: str, lanes: int, keys: int, depth: int) -> Work:
    """A-hat of `lanes` queries against `keys` keys: DLZS's shift-adds and LZ encodes (dense:
    no zero elimination), or the baseline's 4-bit MACs."""
    if predictor == "mul4":
        return Work(mul4_macs=lanes * keys * depth)
    if predictor == "dlzs":
        return Work(shift_adds=lanes * keys * depth, lz_encodes=lanes * depth)
    raise ValueError(f"unknown predictor '{predictor}'; expected one of {', '.join(PREDICTORS)}")


@dataclass(frozen=True)
class Layer:
    """What a baseline runs: the attention `shape`, the target, the KV tile and the predictor."""

    target: TargetAttr
    shape: AttentionShape
    tile: int
    predictor: str = "dlzs"

    def __post_init__(self) -> None:
        predict_work(self.predictor, 0, 0, 0)  # the predictor's name is checked here, not deep in a phase
        if self.tile < 1:
            raise ValueError(f"the KV tile must be positive, got {self.tile}")

    @property
    def lanes(self) -> int:
        return query_lanes(self.target, self.shape.q_len)

    @property
    def heads(self) -> int:
        return self.shape.batch * self.shape.q_heads

    @property
    def query_tiles(self) -> int:
        return tile_count(self.shape.q_len, self.lanes)

    def query_rows(self, query_tile: int) -> tuple[int, int]:
        """(first row, rows) of `query_tile`."""
        first = query_tile * self.lanes
        return first, min(self.lanes, self.shape.q_len - first)


def _predict_phase(p: PhaseProgram, layer: Layer, rows: Rows, q_row: int, k_row: int) -> None:
    """A-hat tile by tile for every query tile, each tile spilled to DRAM once; masked tiles skipped.
    `q_row` and `k_row` are the bytes of a query and a key row the predictor reads; `k_row` is 0
    when the keys are resident on chip."""
    d, tile = layer.shape.depth, layer.tile
    for query_tile in range(layer.query_tiles):
        first, count = layer.query_rows(query_tile)
        p.single(dma_load(count * q_row))
        for _ in range(rows.tiles_needed(first, count, tile)):
            chain = [dma_load(tile * k_row)] if k_row else []
            work = predict_work(layer.predictor, count, tile, d)
            chain += [compute(Unit.DLZS, work, writes=count * tile * AHAT_BYTES)]
            chain += [dma_store(count * tile * AHAT_BYTES, requests=count)]
            p.step(chain)
    p.barrier()


def _select_phase(p: PhaseProgram, layer: Layer, rows: Rows, buffer_bytes: int) -> None:
    """Whole rows of A-hat back from DRAM (their valid tiles only), the row top-k, an index list out."""
    tile = layer.tile
    padded = tile_count(layer.shape.kv_len, tile) * tile
    group = group_rows(layer.lanes, padded * AHAT_BYTES, buffer_bytes, buffers=2)
    for first in range(0, layer.shape.q_len, group):
        count = min(group, layer.shape.q_len - first)
        loaded = count * rows.tiles_needed(first, count, tile) * tile * AHAT_BYTES
        work = row_topk_work(layer.target, rows.valid[first : first + count], rows.kept[first : first + count])
        listed = int(rows.kept[first : first + count].sum()) * INDEX_BYTES
        p.step([dma_load(loaded, requests=count), compute(Unit.SADS, work, reads=loaded), dma_store(listed, count)])
    p.barrier()


def fair_separate(layer: Layer, config: HardwareConfig, attention: str = "fa2.step") -> Priced:
    """The fair separate-stage baseline (module docstring), priced on `config`.

    `attention` is the attention array's tile step: ``fa2.step`` (prior
    accelerators) or ``sufa.step``. K and V tiles are loaded whole, as a dense
    FlashAttention dataflow does.
    """
    shape, tile = layer.shape, layer.tile
    d, dv = shape.depth, shape.v_depth
    widths = element_bytes()
    rows = Rows.of(shape)
    p = PhaseProgram()
    p.start()
    for _ in range(layer.heads):
        _predict_phase(p, layer, rows, d * widths[Symbol.Q16], d * widths[Symbol.KHAT])
        _select_phase(p, layer, rows, max(sram_sizes(layer.target).values()))
        for query_tile in range(layer.query_tiles):
            first, count = layer.query_rows(query_tile)
            p.single(dma_load(count * d * widths[Symbol.Q]))
            for index in range(rows.tiles_needed(first, count, tile)):
                kept = rows.kept_in_tile(first, count, tile, index)
                slots = -(-kept // count)
                step = attention_step_work(attention, count, slots, kept, d, dv, tile)
                p.step(
                    [
                        dma_load(kept * INDEX_BYTES, requests=count),
                        dma_load(tile * d * widths[Symbol.K]),
                        dma_load(tile * dv * widths[Symbol.V]),
                        compute(Unit.SUFA, step),
                    ]
                )
            p.single(compute(Unit.SUFA, Work(divs=count * dv)), dma_store(count * dv * widths[Symbol.OUT]))
        p.barrier()
    return price(p, config)


def _resident(layer: Layer, row_bytes: int) -> bool:
    """Whether one head's K (or V) rows of `row_bytes` fit half the vanilla SRAM, and so are loaded once."""
    return layer.shape.kv_len * row_bytes <= VANILLA_SRAM_BYTES // 2


def _formal_phase(p: PhaseProgram, layer: Layer, rows: Rows, symbol: Symbol) -> None:
    """The vanilla's formal pass over K (S = Q K^T on the kept pairs, A out by row) or V (A back
    by row: max, exp, sum, A V, normalise, O out); K or V is loaded once a head if it fits."""
    widths, d, dv = element_bytes(), layer.shape.depth, layer.shape.v_depth
    row_bytes = (d if symbol is Symbol.K else dv) * widths[symbol]
    resident = _resident(layer, row_bytes)
    if resident:
        p.single(dma_load(layer.shape.kv_len * row_bytes))
    for query_tile in range(layer.query_tiles):
        first, count = layer.query_rows(query_tile)
        kept = int(rows.kept[first : first + count].sum())
        streamed = rows.tiles_needed(first, count, layer.tile) * layer.tile * row_bytes
        operands = [dma_load(kept * INDEX_BYTES, requests=count), *([] if resident else [dma_load(streamed)])]
        if symbol is Symbol.K:
            work = Work(macs=kept * d)
            chain = [dma_load(count * d * widths[Symbol.Q]), *operands, compute(Unit.SUFA, work)]
            chain.append(dma_store(kept * AHAT_BYTES, requests=count))
        else:
            work = Work(compares=kept, exps=kept, macs=kept * dv, divs=count * dv)
            chain = [dma_load(kept * AHAT_BYTES, requests=count), *operands, compute(Unit.SUFA, work)]
            chain.append(dma_store(count * dv * widths[Symbol.OUT]))
        p.step(chain)
    p.barrier()


def paper_vanilla(layer: Layer, config: HardwareConfig) -> Priced:
    """The paper's vanilla dynamic-sparsity accelerator (module docstring), priced on `config`.

    Operands the SRAM holds for a whole head (4-bit K for prediction; K, then V,
    when half the 2 MB fits them) are loaded once a head, else tile by tile.
    The softmax needs a row's maximum before its exponentials, so A makes one
    round trip through DRAM between the score and the A V products.
    """
    rows = Rows.of(layer.shape)
    k4_row = -(-layer.shape.depth // 2)  # 4-bit keys and queries
    keys_resident = _resident(layer, k4_row)
    p = PhaseProgram()
    p.start()
    for _ in range(layer.heads):
        if keys_resident:
            p.single(dma_load(layer.shape.kv_len * k4_row))
        _predict_phase(p, layer, rows, k4_row, 0 if keys_resident else k4_row)
        _select_phase(p, layer, rows, VANILLA_SRAM_BYTES)
        _formal_phase(p, layer, rows, Symbol.K)
        _formal_phase(p, layer, rows, Symbol.V)
    return price(p, config)
