"""The two-stage search of a masked layer (STOF, arXiv 2506.06095): the analytical model prunes, the simulator decides.

`sofa-dse --mask PATTERN` runs it with sofa-dse's own search as stage two (`mask_problem`: the survivors
of `stage_one` become the search problem; every other (Bc, keep) is told to the search as pruned);
`two_stage_search` below is the plain form, which simulates every survivor.

Stage one prices, at each keep of a grid and every KV tile Bc that fits the target's SRAM, every
mask format and mapping with the analytical model (`passes.mask_model.plan_mask`: the tile
structure of the mask and the per-step cost model) and keeps the (Bc, keep, format, mapping)
candidates within ``margin`` of the cheapest estimate at their keep. Stage two compiles each
surviving (Bc, keep) and runs it on the simulator (the tiling pass plans the mask at that Bc with
the same model, so the kernel runs the model's best format and mapping there), measuring cycles and
the output's error against exact masked attention. The result says which candidate the model ranked
first, which one the simulator found fastest, and the model's estimate over the simulated
cycles for each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dialects.sofa import TargetAttr
from passes.mask_model import MaskCandidate
from passes.masked_attention import plan_op_mask
from passes.tile_plan import TILE_CANDIDATES, AttentionShape, PlanError, plan_sram
from sofa_compiler.dse.problem import PATTERNS, Layer, LayerResult, Problem, load_calibration, synthetic_inputs
from sofa_compiler.mask_workloads import MaskWorkload, exact_masked_attention, relative_error, simulate_masked
from sofa_compiler.sim.config import HardwareConfig, load_config
from sofa_compiler.workloads import random_inputs


class MaskSearchError(ValueError):
    """Bad search options; the message says which."""


@dataclass(frozen=True)
class Priced:
    """One stage-one candidate: a KV tile and keep, and the model's priced (format, mapping) there."""

    tile: int
    keep: float
    candidate: MaskCandidate


@dataclass(frozen=True)
class Measured:
    """One stage-two point: a surviving (tile, keep) on the simulator, with the format and mapping it ran."""

    tile: int
    keep: float
    format: str
    mapping: str
    estimated_cycles: float
    cycles: float
    error: float
    """Relative Frobenius error of the output against exact masked attention."""

    @property
    def model_over_simulator(self) -> float:
        return self.estimated_cycles / self.cycles

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "tile": self.tile,
            "keep": self.keep,
            "format": self.format,
            "mapping": self.mapping,
            "estimated_cycles": self.estimated_cycles,
            "cycles": self.cycles,
            "model_over_simulator": self.model_over_simulator,
            "error": self.error,
        }


@dataclass(frozen=True)
class SearchResult:
    priced: tuple[Priced, ...]
    """Every stage-one candidate, by keep, cheapest estimate first."""
    survivors: tuple[Priced, ...]
    measured: tuple[Measured, ...]

    def model_choice(self, keep: float) -> Priced:
        """The model's first choice at `keep`: its cheapest (tile, format, mapping)."""
        return next(p for p in self.priced if p.keep == keep)

    def fastest(self, keep: float, max_error: float = float("inf")) -> Measured:
        """The simulator's fastest survivor at `keep` whose error is at most `max_error`."""
        points = [m for m in self.measured if m.keep == keep and m.error <= max_error]
        if not points:
            raise MaskSearchError(f"no measured candidate at keep {keep:g} with error <= {max_error:g}")
        return min(points, key=lambda m: (m.cycles, m.tile))


def layer_shape(mask: np.ndarray, heads: int, depth: int, keep: float) -> AttentionShape:
    return AttentionShape(1, heads, heads, mask.shape[0], mask.shape[1], depth, depth, keep, False)


def stage_one(
    target: TargetAttr,
    mask: np.ndarray,
    heads: int,
    depth: int,
    keeps: Sequence[float],
    margin: float,
    tiles: Sequence[int] = TILE_CANDIDATES,
) -> tuple[list[Priced], list[Priced]]:
    """Every (Bc, format, mapping) the model prices at each keep, cheapest first per keep, and the survivors:
    those within `margin` of the cheapest at their keep."""
    if margin < 1:
        raise MaskSearchError(f"margin must be >= 1, got {margin}")
    if not keeps or any(not 0 < keep <= 1 for keep in keeps):
        raise MaskSearchError(f"keeps must lie in (0, 1], got {list(keeps)}")
    priced: list[Priced] = []
    survivors: list[Priced] = []
    for keep in keeps:
        shape = layer_shape(mask, heads, depth, keep)
        at_keep: list[Priced] = []
        for tile in tiles:
            try:
                plan_sram(target, shape, tile)
            except PlanError:
                continue
            at_keep += [Priced(tile, keep, candidate) for candidate in plan_op_mask(target, shape, tile, mask).ranked]
        if not at_keep:
            raise MaskSearchError(f"no KV tile of {list(tiles)} fits the target's SRAM at keep {keep:g}")
        at_keep.sort(key=lambda p: (p.candidate.cycles, p.tile))
        priced += at_keep
        survivors += [p for p in at_keep if p.candidate.cycles <= margin * at_keep[0].candidate.cycles]
    return priced, survivors


def two_stage_search(
    mask: np.ndarray,
    heads: int,
    depth: int,
    keeps: Sequence[float] = (1.0,),
    margin: float = 1.25,
    config: HardwareConfig | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    progress: bool = False,
) -> SearchResult:
    """Stage one on the model, stage two on the simulator (see the module docstring).

    `inputs` (``q``, ``k``, ``v`` ``[1, heads, S, depth]``) default to `random_inputs`.
    """
    config = config or load_config()
    target = TargetAttr(config.as_target_dict())
    priced, survivors = stage_one(target, mask, heads, depth, keeps, margin)
    inputs = inputs if inputs is not None else random_inputs(heads, mask.shape[0], depth)
    reference = np.stack([exact_masked_attention(*(inputs[n][0, h] for n in "qkv"), mask) for h in range(heads)])
    measured = []
    for tile, keep in sorted({(p.tile, p.keep) for p in survivors}):
        run = simulate_masked(mask, heads, depth, keep=keep, inputs=inputs, tile=tile, target=config)
        (plan,) = run.plans
        chosen = next(p for p in priced if (p.tile, p.keep) == (tile, keep))  # the plan the tiling pass makes
        error = relative_error(run.output[0], reference)
        measured.append(
            Measured(tile, keep, plan.format.data, plan.mapping.data, chosen.candidate.cycles, run.cycles, error)
        )
        if progress:
            print(f"  Bc {tile}, keep {keep:g}: {run.cycles} cycles, error {error:.3e}", flush=True)
    return SearchResult(tuple(priced), tuple(survivors), tuple(measured))


@dataclass(frozen=True)
class StageOne:
    """Stage one's verdict at each keep: every priced candidate (cheapest first per keep) and the survivors."""

    priced: tuple[Priced, ...]
    survivors: tuple[Priced, ...]
    margin: float

    def plan(self, tile: int, keep: float) -> Priced:
        """The candidate the tiling pass compiles at (tile, keep): the model's cheapest at that tile."""
        return next(p for p in self.priced if (p.tile, p.keep) == (tile, keep))

    def first_choice(self, keep: float) -> Priced:
        return next(p for p in self.priced if p.keep == keep)

    def surviving_pairs(self) -> list[tuple[int, float]]:
        return sorted({(p.tile, p.keep) for p in self.survivors}, key=lambda pair: (-pair[1], pair[0]))

    def pruned(self) -> dict[tuple[int, float], str]:
        """Each priced (tile, keep) without a survivor, with the reason (for the search: told as pruned)."""
        alive = set(self.surviving_pairs())
        out = {}
        for tile, keep in sorted({(p.tile, p.keep) for p in self.priced} - alive):
            ratio = self.plan(tile, keep).candidate.cycles / self.first_choice(keep).candidate.cycles
            out[(tile, keep)] = (
                f"stage one: tile {tile}'s estimate is {ratio:.2f}x the model's cheapest at keep {keep:g}"
                f" (margin {self.margin:g})"
            )
        return out


def mask_problem(
    workload: MaskWorkload,
    config: HardwareConfig,
    depth: int,
    keeps: Sequence[float],
    margin: float,
    tiles: Sequence[int] = TILE_CANDIDATES,
    layers: int = 1,
    heads: int = 1,
    seed: int = 0,
    pattern: str = "local",
    calibration: str | Path | None = None,
    radius: float | None = None,
) -> tuple[Problem, StageOne]:
    """Stage one on `workload`'s mask, and the search problem of stage two: `layers` copies of the masked layer
    (`heads` heads, all simulated) whose (tile, keep) pairs outside the survivors are pruned.

    Synthetic inputs follow sofa-dse's `pattern` (``broad``, ``local`` or ``global``) in every layer.
    """
    if layers < 1 or heads < 1 or depth < 1:
        raise MaskSearchError(f"layers, heads and depth must be >= 1, got {layers}, {heads} and {depth}")
    if pattern not in PATTERNS:
        raise MaskSearchError(f"unknown input pattern '{pattern}' (choose from {', '.join(PATTERNS)})")
    mask = workload.mask()
    target = TargetAttr(config.as_target_dict())
    priced, survivors = stage_one(target, mask, heads, depth, keeps, margin, tiles)
    stage = StageOne(tuple(priced), tuple(survivors), margin)
    layer = Layer(heads, workload.seq, depth, mask=workload)
    stack = [layer] * layers
    if calibration is not None:
        inputs = load_calibration(calibration, stack, heads)
    else:
        inputs = [synthetic_inputs(layer, PATTERNS.index(pattern), heads, seed + index) for index in range(layers)]
    return Problem(workload.name, stack, config, inputs, heads, radius, pruned=stage.pruned()), stage


def compare(stage: StageOne, results: Mapping[tuple[int, int | None, float], LayerResult]) -> list[Measured]:
    """Every survivor that layer 0's `results` (the search's cache, keyed (layer, tile, keep)) simulated."""
    out = []
    for tile, keep in stage.surviving_pairs():
        result = results.get((0, tile, keep))
        if result is None or result.failure:
            continue
        plan = stage.plan(tile, keep).candidate
        out.append(Measured(tile, keep, plan.format, plan.mapping, plan.cycles, result.cycles, result.error))
    return out
