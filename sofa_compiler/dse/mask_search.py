"""The two-stage search of a masked layer (STOF, arXiv 2506.06095): the analytical model prunes, the simulator decides.

Stage one prices, for every KV tile Bc that fits the target's SRAM, every mask format and
mapping with the analytical model (`passes.mask_model.plan_mask`: the tile structure of the
mask and the per-step cost model) and keeps the (Bc, format, mapping) candidates within
``margin`` of the cheapest estimate. Stage two compiles the surviving tile sizes at each keep
of a grid and runs them on the simulator (the tiling pass plans the mask at that Bc with the same
model, so a survivor's format and mapping are the ones the kernel runs), measuring cycles and the
output's error against exact masked attention. The result says which candidate the model ranked
first, which one the simulator found fastest, and the model's estimate over the simulated
cycles for each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dialects.sofa import TargetAttr
from passes.mask_model import MaskCandidate
from passes.masked_attention import plan_op_mask
from passes.tile_plan import TILE_CANDIDATES, AttentionShape, PlanError, plan_sram
from sofa_compiler.mask_workloads import exact_masked_attention, relative_error, simulate_masked
from sofa_compiler.sim.config import HardwareConfig, load_config
from sofa_compiler.workloads import random_inputs


class MaskSearchError(ValueError):
    """Bad search options; the message says which."""


@dataclass(frozen=True)
class Priced:
    """One stage-one candidate: a KV tile and the model's priced (format, mapping) at it."""

    tile: int
    candidate: MaskCandidate


@dataclass(frozen=True)
class Measured:
    """One stage-two point: a surviving tile at one keep, on the simulator."""

    tile: int
    keep: float
    format: str
    mapping: str
    estimated_cycles: float
    cycles: int
    error: float
    """Relative Frobenius error of the output against exact masked attention."""

    @property
    def model_over_simulator(self) -> float:
        return self.estimated_cycles / self.cycles


@dataclass(frozen=True)
class SearchResult:
    priced: tuple[Priced, ...]
    """Every stage-one candidate, cheapest estimate first."""
    survivors: tuple[Priced, ...]
    measured: tuple[Measured, ...]

    @property
    def model_choice(self) -> Priced:
        return self.priced[0]

    def fastest(self, keep: float, max_error: float = float("inf")) -> Measured:
        """The simulator's fastest survivor at `keep` whose error is at most `max_error`."""
        points = [m for m in self.measured if m.keep == keep and m.error <= max_error]
        if not points:
            raise MaskSearchError(f"no measured candidate at keep {keep} with error <= {max_error:g}")
        return min(points, key=lambda m: (m.cycles, m.tile))


def layer_shape(mask: np.ndarray, heads: int, depth: int, keep: float) -> AttentionShape:
    seq = mask.shape[0]
    return AttentionShape(1, heads, heads, seq, mask.shape[1], depth, depth, keep, False)


def stage_one(
    target: TargetAttr, mask: np.ndarray, heads: int, depth: int, margin: float, tiles: Sequence[int] = TILE_CANDIDATES
) -> tuple[list[Priced], list[Priced]]:
    """Every (Bc, format, mapping) the model prices at keep 1.0, cheapest first, and those within `margin` of it."""
    if margin < 1:
        raise MaskSearchError(f"margin must be >= 1, got {margin}")
    shape = layer_shape(mask, heads, depth, 1.0)
    priced: list[Priced] = []
    for tile in tiles:
        try:
            plan_sram(target, shape, tile)
        except PlanError:
            continue
        plan = plan_op_mask(target, shape, tile, mask)
        priced += [Priced(tile, candidate) for candidate in plan.ranked]
    if not priced:
        raise MaskSearchError(f"no KV tile of {list(tiles)} fits the target's SRAM for this layer")
    priced.sort(key=lambda p: (p.candidate.cycles, p.tile))
    best = priced[0].candidate.cycles
    return priced, [p for p in priced if p.candidate.cycles <= margin * best]


def two_stage_search(
    mask: np.ndarray,
    heads: int,
    depth: int,
    keeps: Sequence[float] = (1.0,),
    margin: float = 1.5,
    config: HardwareConfig | None = None,
    progress: bool = False,
) -> SearchResult:
    """Stage one on the model, stage two on the simulator (see the module docstring)."""
    config = config or load_config()
    target = TargetAttr(config.as_target_dict())
    priced, survivors = stage_one(target, mask, heads, depth, margin)
    inputs = random_inputs(heads, mask.shape[0], depth)
    reference = np.stack([exact_masked_attention(*(inputs[n][0, h] for n in "qkv"), mask) for h in range(heads)])
    tiles = sorted({p.tile for p in survivors})
    measured = []
    for tile in tiles:
        for keep in keeps:
            run = simulate_masked(mask, heads, depth, keep=keep, tile=tile, target=config)
            (plan,) = run.plans
            estimate = plan_op_mask(target, layer_shape(mask, heads, depth, keep), tile, mask).chosen
            point = Measured(
                tile,
                keep,
                plan.format.data,
                plan.mapping.data,
                estimate.cycles,
                run.cycles,
                relative_error(run.output[0], reference),
            )
            measured.append(point)
            if progress:
                print(f"  Bc {tile} keep {keep:g}: {run.cycles} cycles, error {point.error:.3e}", flush=True)
    return SearchResult(tuple(priced), tuple(survivors), tuple(measured))
