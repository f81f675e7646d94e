"""General attention masks on the accelerator: what the tiling pass needs to know about a mask.

A `sofa.attention` whose mask is neither absent nor a key-padding mask keeps its mask operand
through tiling: `sofa.sads` never selects a masked key and `sofa.sufa` adds the mask, as the
interpreter defines. The tiling pass also plans the mask (`mask_model.plan_mask`: format and
mapping) and shows the plan as a `#sofa.tile_mask` on the `sofa.sads` op, which the lowering reads
(`MaskedAttention.of`) to emit the kernel's KV-tile index lists and bitmaps.

A mask known when the program is built is a `host.constant` (the front end folds masks built from
shapes and constants): its lists and bitmaps are constants of the program. A boolean mask computed at
run time from model inputs (an ``attn_mask`` graph input) gets a kernel of format ``launch``
(`launch_mask_attr`): its lists and bitmaps are inputs sized for the worst case, which the host builds
at launch from the actual mask (`lower_to_isa.masked.launch_tables`). The host holds the mask when the
call starts, and one pass over it is O(Sq * Skv) numpy work (`tile_mask_of_array`); shipping the mask
to the chip to build the lists there would cost its DRAM bytes and a kernel phase the ISA (no branches)
could only do by visiting every tile.

An additive (float) mask computed at run time may hold a bias (finite entries other than 0). Its -inf
entries define the visible keys (empty, full and partial tiles) exactly as a boolean mask's false ones;
its finite entries are a bias. Such a kernel is *biased* (`MaskedAttention.biased`, `sofa.sads`'s
``biased``): the host stages, for every visited (query tile, KV tile) pair, an fp32 bias tile (-inf where
the mask, the causal flag or padding hides a key) instead of a bitmap; SADS ranks the capped, scaled
prediction plus the bias (`sads.bias`) and SU-FA adds it to the exact scores (`sufa.bias`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import DenseResourceAttr, i1
from xdsl.ir import SSAValue

from dialects.host import ConstantOp
from dialects.numerics import (
    BandMask,
    MaskError,
    TileMask,
    boolean_masks,
    detect_band,
    tile_mask_of_array,
    tile_mask_of_band,
)
from dialects.sofa import AttentionOp, SadsOp, TargetAttr, TileMaskAttr
from passes.mask_model import MaskPlan, plan_mask
from passes.tile_plan import AttentionShape, query_lanes

TILE_MASK_ATTRIBUTE = "sofa.tile_mask"
"""The `sofa.sads` attribute holding the mask's `#sofa.tile_mask` (set by the tiling pass, read by the lowering)."""


def constant_mask(value: SSAValue) -> np.ndarray | None:
    """The mask's value when it is a compile-time constant (and was not elided from printed IR), else None."""
    owner = value.owner
    if not isinstance(owner, ConstantOp) or isinstance(owner.value, DenseResourceAttr):
        return None
    return owner.to_array()


def combined_mask(mask: np.ndarray, causal: bool, q_len: int, kv_len: int) -> np.ndarray:
    """The boolean ``[B', H', Sq, Skv]`` masks an attention applies: its mask (B', H' = 1 where it
    broadcasts over batch or heads), and the causal flag (upper-left)."""
    masks = boolean_masks(mask)
    visible = np.broadcast_to(masks, (*masks.shape[:2], q_len, kv_len))
    if causal:
        visible = visible & np.tri(q_len, kv_len, dtype=bool)
    return np.ascontiguousarray(visible)


def mask_heads(value: SSAValue) -> tuple[int, int]:
    """(B', H') of a mask value's type: its batch and head extents as a rank-4 mask (1 where it broadcasts)."""
    shape = list(value.type.get_shape())  # pyright: ignore[reportAttributeAccessIssue]
    padded = [1] * (4 - len(shape)) + shape
    return padded[0], padded[1]


def is_boolean(value: SSAValue) -> bool:
    return value.type.get_element_type() == i1  # pyright: ignore[reportAttributeAccessIssue]


def mask_problem(op: AttentionOp) -> str | None:
    """Why the accelerator cannot take this attention's general mask, or None."""
    assert op.mask is not None
    mask = constant_mask(op.mask)
    if mask is None:
        rank = len(op.mask.type.get_shape())  # pyright: ignore[reportAttributeAccessIssue]
        if rank > 4:
            return f"this mask runs on the host: a mask has rank at most 4, got rank {rank}"
        return None
    try:
        boolean_masks(mask)
    except MaskError as error:
        return f"this mask runs on the host: {error}"
    return None


LAUNCH_FORMAT = "launch"
"""The `#sofa.tile_mask` format of a run-time mask: index lists and bitmaps built by the host at launch."""


def is_runtime_bias(value: SSAValue) -> bool:
    """A float mask known only at run time: it may hold a bias, so its kernel is biased."""
    return constant_mask(value) is None and not is_boolean(value)


def launch_mask_attr(target: TargetAttr, shape: AttentionShape, tile: int, heads: tuple[int, int]) -> TileMaskAttr:
    """The description of a run-time mask: block mapping, every tile counted as visited and partial (the
    worst case its inputs are sized for); no densities, since the mask is not known yet."""
    lanes = query_lanes(target, shape.q_len)
    tiles = -(-shape.q_len // lanes) * -(-shape.kv_len // tile)
    walks = 1 if heads == (1, 1) else shape.batch * shape.q_heads
    return TileMaskAttr(LAUNCH_FORMAT, "block", lanes, tile, walks * tiles, walks * tiles, (), ())


def plan_op_mask(target: TargetAttr, shape: AttentionShape, tile: int, masks: np.ndarray) -> MaskPlan:
    """Plan combined boolean masks ``[B', H', Sq, Skv]``: closed form when one mask is a band, else the
    tile structure of each. A mask of lower rank is broadcast as ``[1, 1, Sq, Skv]``."""
    masks = boolean_masks(masks)
    if masks.shape[:2] != (1, 1):
        return plan_mask(target, shape, tile, masks=tuple(masks.reshape(-1, *masks.shape[2:])))
    band = detect_band(masks[0, 0])
    if band is not None:
        return plan_mask(target, shape, tile, band=band)
    return plan_mask(target, shape, tile, mask=masks[0, 0])


@dataclass(frozen=True)
class MaskedAttention:
    """What the lowering needs of a masked, tiled attention: the plan's attribute, the mask's extents
    (B', H') (1 where the mask is the same for every batch element or head) and, when known at compile
    time, the boolean masks ``[B', H', Sq, Skv]`` (None: a run-time mask, built into tables at launch).
    `biased`: a run-time float mask, whose kernel reads bias tiles instead of bitmaps."""

    attr: TileMaskAttr
    heads: tuple[int, int]
    mask: np.ndarray | None
    biased: bool = False

    @staticmethod
    def of(select: SadsOp) -> MaskedAttention | None:
        """The mask of a tiled `sofa.sads`, None when it has none; `MaskError` when it cannot be lowered."""
        if select.mask is None:
            return None
        attr = select.attributes.get(TILE_MASK_ATTRIBUTE)
        if not isinstance(attr, TileMaskAttr):
            raise MaskError(f"a masked sofa.sads needs a {TILE_MASK_ATTRIBUTE} (run sofa-coordinated-tiling)")
        mask = constant_mask(select.mask)
        heads = mask_heads(select.mask)
        if mask is None:
            if attr.format_name != LAUNCH_FORMAT:
                raise MaskError(f"a run-time mask needs a {LAUNCH_FORMAT} {TILE_MASK_ATTRIBUTE}")
            if is_boolean(select.mask) == (select.biased is not None):
                raise MaskError("sofa.sads is biased exactly when its run-time mask is a float (additive) one")
            return MaskedAttention(attr, heads, None, biased=select.biased is not None)
        if select.biased is not None:
            raise MaskError("a compile-time mask holds no bias: its sofa.sads cannot be biased")
        _, _, q_len, kv_len = select.scores.type.get_shape()  # pyright: ignore[reportAttributeAccessIssue]
        return MaskedAttention(attr, heads, combined_mask(mask, select.causal is not None, q_len, kv_len))

    @property
    def band(self) -> BandMask | None:
        values = self.attr.band_values
        return BandMask(*values) if values else None

    @property
    def shared(self) -> bool:
        """One mask for every batch element and head."""
        return self.heads == (1, 1)

    @property
    def at_launch(self) -> bool:
        """A run-time mask: its tables are built by the host at launch."""
        return self.mask is None

    def head_mask(self, batch: int, head: int) -> np.ndarray:
        """The ``[Sq, Skv]`` mask of (batch element, query head)."""
        assert self.mask is not None
        return self.mask[batch if self.mask.shape[0] > 1 else 0, head if self.mask.shape[1] > 1 else 0]

    def tile_mask(self, batch: int = 0, head: int = 0) -> TileMask:
        """The tile structure of one (batch element, query head)'s mask for the attribute's tiles."""
        lanes, tile = self.attr.lanes.data, self.attr.tile.data
        q_len, kv_len = self.mask.shape[2:]
        band = self.band
        if band is not None:
            return tile_mask_of_band(band, q_len, kv_len, lanes, tile)
        return tile_mask_of_array(self.head_mask(batch, head), lanes, tile)
