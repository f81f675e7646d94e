"""General attention masks on the accelerator: what the tiling pass needs to know about a mask.

A `sofa.attention` whose mask is neither absent nor a key-padding mask keeps its mask operand
through tiling: `sofa.sads` never selects a masked key and `sofa.sufa` adds the mask, as the
interpreter defines. The tiling pass also plans the mask (`mask_model.plan_mask`: format and
mapping) and shows the plan as a `#sofa.tile_mask` on the `sofa.sads` op, which the lowering reads
(`MaskedAttention.of`) to emit the kernel's KV-tile index lists and bitmaps.

The mask must be known when the program is built: a `host.constant` (the front end folds masks
built from shapes and constants). A mask computed at run time from model inputs would need its
description built at launch: such masks stay on the host (`RUNTIME_MASK_REASON`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import DenseResourceAttr
from xdsl.ir import SSAValue

from dialects.host import ConstantOp
from dialects.numerics import (
    BandMask,
    MaskError,
    TileMask,
    boolean_mask,
    detect_band,
    tile_mask_of_array,
    tile_mask_of_band,
)
from dialects.sofa import AttentionOp, SadsOp, TargetAttr, TileMaskAttr
from passes.mask_model import MaskPlan, plan_mask
from passes.tile_plan import AttentionShape

TILE_MASK_ATTRIBUTE = "sofa.tile_mask"
"""The `sofa.sads` attribute holding the mask's `#sofa.tile_mask` (set by the tiling pass, read by the lowering)."""


def constant_mask(value: SSAValue) -> np.ndarray | None:
    """The mask's value when it is a compile-time constant (and was not elided from printed IR), else None."""
    owner = value.owner
    if not isinstance(owner, ConstantOp) or isinstance(owner.value, DenseResourceAttr):
        return None
    return owner.to_array()


def combined_mask(mask: np.ndarray, causal: bool, q_len: int, kv_len: int) -> np.ndarray:
    """The boolean ``[Sq, Skv]`` mask an attention applies: its mask, and the causal flag (upper-left)."""
    visible = np.broadcast_to(boolean_mask(mask), (q_len, kv_len))
    if causal:
        visible = visible & np.tri(q_len, kv_len, dtype=bool)
    return np.ascontiguousarray(visible)


def mask_problem(op: AttentionOp) -> str | None:
    """Why the accelerator cannot take this attention's general mask, or None."""
    assert op.mask is not None
    mask = constant_mask(op.mask)
    if mask is None:
        return RUNTIME_MASK_REASON
    try:
        boolean_mask(mask)
    except MaskError as error:
        return f"this mask runs on the host: {error}"
    return None


RUNTIME_MASK_REASON = (
    "general attention masks run on the host when they are computed at run time "
    "(the accelerator takes causal, padding and compile-time masks)"
)
"""The `sofa.host_reason` of an attention whose general mask is not a compile-time constant."""


def plan_op_mask(target: TargetAttr, shape: AttentionShape, tile: int, mask: np.ndarray) -> MaskPlan:
    """Plan a combined boolean mask: closed form when it is a band, else its tile structure."""
    band = detect_band(mask)
    if band is not None:
        return plan_mask(target, shape, tile, band=band)
    return plan_mask(target, shape, tile, mask=mask)


@dataclass(frozen=True)
class MaskedAttention:
    """What the lowering needs of a masked, tiled attention: the plan's attribute and the boolean mask."""

    attr: TileMaskAttr
    mask: np.ndarray

    @staticmethod
    def of(select: SadsOp) -> MaskedAttention | None:
        """The mask of a tiled `sofa.sads`, None when it has none; `MaskError` when it cannot be lowered."""
        if select.mask is None:
            return None
        attr = select.attributes.get(TILE_MASK_ATTRIBUTE)
        if not isinstance(attr, TileMaskAttr):
            raise MaskError(f"a masked sofa.sads needs a {TILE_MASK_ATTRIBUTE} (run sofa-coordinated-tiling)")
        mask = constant_mask(select.mask)
        if mask is None:
            raise MaskError(RUNTIME_MASK_REASON)
        _, _, q_len, kv_len = select.scores.type.get_shape()  # pyright: ignore[reportAttributeAccessIssue]
        return MaskedAttention(attr, combined_mask(mask, select.causal is not None, q_len, kv_len))

    @property
    def band(self) -> BandMask | None:
        values = self.attr.band_values
        return BandMask(*values) if values else None

    def tile_mask(self) -> TileMask:
        """The tile structure for the attribute's query and KV tiles."""
        lanes, tile = self.attr.lanes.data, self.attr.tile.data
        q_len, kv_len = self.mask.shape
        band = self.band
        if band is not None:
            return tile_mask_of_band(band, q_len, kv_len, lanes, tile)
        return tile_mask_of_array(self.mask, lanes, tile)
