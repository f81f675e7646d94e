"""The analytical model that chooses a mask's format and mapping per layer (STOF, arXiv 2506.06095).

For each candidate it prices the kernel the lowering would emit, with the coarse per-step model
of `tile_plan.step_estimate` (the simulator's unit rates; docs/cost-model.md):

* **formats** (`MASK_FORMATS`): ``closed``, a band SADS evaluates on chip (no mask bytes; only
  for closed-form masks); ``bsr``, an index list of each query tile's non-empty KV tiles (16 bytes
  an entry, `MASK_ENTRY_BYTES`) plus, when any tile is partial, a bitmap loaded with every visited
  tile (full tiles read a shared all-ones bitmap); ``bitmap``, every KV tile visited with its bitmap
  (no list; wins only when no tile is empty).
* **mappings** (`MASK_MAPPINGS`): ``block``, query tiles of the target's lanes, and ``row``, query
  tiles of `ROW_LANES_DIVISOR` times fewer rows: more steps, each cheaper in compute but not in
  K-hat bytes, so it wins only where thin patterns (narrow windows) skip many more KV tiles.

The cheapest estimated cycles win; ties go to fewer DRAM bytes, then to the earlier format and mapping.
`sofa-dse`'s second stage searches tile sizes and keep among the survivors (`MaskPlan.ranked`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dialects.numerics import DATAPATH, tile_count
from dialects.numerics.tile_masks import BandMask, TileMask, tile_mask_of_band, tile_masks_of_array
from dialects.sofa import MASK_FORMATS, MASK_MAPPINGS, TargetAttr, TileMaskAttr
from passes.tile_plan import AttentionShape, query_lanes, step_estimate

MASK_ENTRY_BYTES = 16
"""One index-list entry: key base, K/K-hat offset, V offset, bitmap offset (i32 each); also a query tile's header."""

ROW_LANES_DIVISOR = 4
"""The row-wise mapping's query tile is the target's lanes divided by this."""


def bitmap_bytes(lanes: int, tile: int) -> int:
    """One (query tile, KV tile) bitmap: a bit a (row, key), rows of whole bytes."""
    return lanes * -(-tile // 8)


@dataclass(frozen=True)
class MaskCandidate:
    """One (format, mapping) and what the model expects it to cost for the whole layer."""

    format: str
    mapping: str
    lanes: int
    steps: int
    cycles: float
    dram_bytes: int


@dataclass(frozen=True)
class MaskPlan:
    """The chosen candidate, its tile structure, and every candidate the model priced (best first)."""

    chosen: MaskCandidate
    tile_masks: tuple[TileMask, ...]
    """One per distinct mask (several where the mask differs per batch or head), for the chosen mapping."""
    band: BandMask | None
    ranked: tuple[MaskCandidate, ...]

    @property
    def tile_mask(self) -> TileMask:
        return self.tile_masks[0]

    def attr(self) -> TileMaskAttr:
        """The `#sofa.tile_mask` that shows this plan in the IR (several masks: summed counts, mean densities)."""
        tm, band = self.tile_mask, self.band
        band_values = (band.left, band.right, band.offset, band.dilation) if self.chosen.format == "closed" else ()
        assert band is not None or not band_values
        density = np.mean([each.density for each in self.tile_masks], axis=0)
        return TileMaskAttr(
            self.chosen.format,
            self.chosen.mapping,
            tm.lanes,
            tm.tile,
            self.chosen.steps,
            sum(each.partial_count for each in self.tile_masks),
            band_values,
            density.tolist(),
        )


def _candidates(
    target: TargetAttr, shape: AttentionShape, tm: TileMask, mapping: str, closed: bool, heads: float
) -> list[MaskCandidate]:
    """Each format's figures for `heads` (query head, batch) pairs that apply `tm`'s mask."""
    lanes, tile = tm.lanes, tm.tile
    query_tiles = tm.query_tiles
    # Per query tile: Q twice (SU-FA's and DLZS's copy) and O.
    query_bytes = lanes * (2 * shape.depth + shape.v_depth) * DATAPATH.nbytes
    bitmap = bitmap_bytes(lanes, tile)
    options = [("bsr", tm.visited, bitmap if tm.partial_count else 0, MASK_ENTRY_BYTES)]
    if closed:
        options.insert(0, ("closed", tm.visited, 0, MASK_ENTRY_BYTES))
    options.append(("bitmap", query_tiles * tm.kv_tiles, bitmap, 0))
    out = []
    for format_name, steps, step_bitmap, entry in options:
        # The fraction of a visited tile's pairs the mask keeps (SADS and SU-FA work only on those).
        kept = min(1.0, tm.overall_density * query_tiles * tm.kv_tiles / steps) if steps else 1.0
        step = step_estimate(target, shape, tile, lanes, step_bitmap + entry, kept)
        list_bytes = query_tiles * entry
        dram = heads * (steps * step.dram_bytes + query_tiles * query_bytes + list_bytes)
        out.append(MaskCandidate(format_name, mapping, lanes, steps, heads * steps * step.cycles, round(dram)))
    return out


def _summed(candidates: list[list[MaskCandidate]]) -> list[MaskCandidate]:
    """Per format, the figures of several masks' candidates added up."""
    return [
        replace(
            group[0],
            steps=sum(c.steps for c in group),
            cycles=sum(c.cycles for c in group),
            dram_bytes=sum(c.dram_bytes for c in group),
        )
        for group in zip(*candidates, strict=True)
    ]


def _order(candidate: MaskCandidate) -> tuple[float, int, int, int]:
    return (
        candidate.cycles,
        candidate.dram_bytes,
        MASK_FORMATS.index(candidate.format),
        MASK_MAPPINGS.index(candidate.mapping),
    )


def _structures(
    shape: AttentionShape, tile: int, lanes_of: dict[str, int], masks: tuple[np.ndarray, ...], band: BandMask | None
) -> dict[str, tuple[TileMask, ...]]:
    """Per mapping, the tile structure of each mask (one pass over each mask array for all mappings)."""
    if band is not None:
        return {
            mapping: (tile_mask_of_band(band, shape.q_len, shape.kv_len, lanes, tile),)
            for mapping, lanes in lanes_of.items()
        }
    per_mask = [tile_masks_of_array(each, tuple(lanes_of.values()), tile) for each in masks]
    return {mapping: tuple(tms[index] for tms in per_mask) for index, mapping in enumerate(lanes_of)}


def plan_mask(
    target: TargetAttr,
    shape: AttentionShape,
    tile: int,
    mask: np.ndarray | None = None,
    band: BandMask | None = None,
    mappings: tuple[str, ...] = MASK_MAPPINGS,
    masks: tuple[np.ndarray, ...] = (),
) -> MaskPlan:
    """Choose the format and mapping of one layer's mask: a boolean ``[Sq, Skv]`` `mask`, a closed-form `band`,
    or `masks`, one per (batch, head) group where the mask differs between them (no closed form then)."""
    masks = masks or (() if mask is None else (mask,))
    if bool(masks) == (band is not None):
        raise ValueError("plan_mask needs exactly one of mask arrays and a band")
    block_lanes = query_lanes(target, shape.q_len)
    lanes_of = {"block": block_lanes, "row": max(1, block_lanes // ROW_LANES_DIVISOR)}
    heads = shape.batch * shape.q_heads / max(1, len(masks))
    used = {mapping: lanes_of[mapping] for mapping in mappings}
    if "row" in used and used["row"] == block_lanes:
        del used["row"]  # no row-wise mapping distinct from the block-wise one
    structures = _structures(shape, tile, used, masks, band)
    ranked: list[MaskCandidate] = []
    for mapping, tms in structures.items():
        ranked += _summed([_candidates(target, shape, tm, mapping, band is not None, heads) for tm in tms])
    ranked.sort(key=_order)
    best = ranked[0]
    return MaskPlan(best, structures[best.mapping], band, tuple(ranked))


def dense_estimate(target: TargetAttr, shape: AttentionShape, tile: int) -> MaskCandidate:
    """The same model's figures for the layer without a mask (every KV tile of every query tile)."""
    lanes = query_lanes(target, shape.q_len)
    unmasked = replace(shape, causal=False)
    step = step_estimate(target, unmasked, tile, lanes)
    query_tiles, kv_tiles = tile_count(shape.q_len, lanes), tile_count(shape.kv_len, tile)
    heads = shape.batch * shape.q_heads
    query_bytes = lanes * (2 * shape.depth + shape.v_depth) * DATAPATH.nbytes
    steps = query_tiles * kv_tiles
    dram = heads * (steps * step.dram_bytes + query_tiles * query_bytes)
    return MaskCandidate("none", "block", lanes, steps, heads * steps * step.cycles, dram)
