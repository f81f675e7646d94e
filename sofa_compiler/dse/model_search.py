"""The model mode of `sofa-dse`: compile, capture, score per layer, allocate, and (optionally) check the loss."""

from __future__ import annotations

import json
import math
import time
import warnings
from argparse import Namespace
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dialects.sofa import PLAIN_SADS, TargetAttr, far_problem, keep_problem
from passes.tile_plan import AttentionShape, PlanError, plan_sram
from sofa_compiler.dse.model import (
    Captured,
    GoldenRunner,
    Log,
    Selection,
    allocate,
    as_tuning,
    causal_lm_perplexity,
    layer_errors,
)
from sofa_compiler.dse.problem import DseError
from sofa_compiler.dse.search import default_tiles
from sofa_compiler.files import atomic_write_text
from sofa_compiler.sim.config import load_config

DEFAULT_KEEPS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)


def read_inputs(path: str | None, names: list[str]) -> dict[str, np.ndarray]:
    if path is None:
        raise DseError("a model search needs --inputs CALIB.npz (one array per model input)")
    try:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise DseError(f"{path}: cannot read calibration inputs: {error}") from None
    missing = [name for name in names if name not in arrays]
    if missing:
        raise DseError(f"{path}: no array for model input(s) {', '.join(missing)} (it has {', '.join(arrays)})")
    return {name: arrays[name] for name in names}


def _numbers(text: str | None, kind: type, default: tuple, option: str) -> tuple:
    if text is None:
        return default
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise DseError(f"{option}: cannot read '{text}' as a comma-separated list") from None


def _compile(model: str, target: str | None, log: Log) -> Any:
    from sofa_compiler.driver import CompileError, compile_model

    start = time.perf_counter()
    log(f"compiling {model} (dense) to find its attention layers")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = compile_model(model, load_config(target), keep=1.0)
    except CompileError as error:
        raise DseError(f"{model}: {error}") from None
    log(f"compiled in {time.perf_counter() - start:.1f} s: {len(compiled.programs)} kernels")
    return compiled


class _Progress:
    """One line per golden kernel call, for the long model runs."""

    def __init__(self, log: Log, label: str) -> None:
        self.log, self.label, self.start = log, label, time.perf_counter()

    def kernel(self, name: str) -> None:
        self.log(f"  {self.label}: {name} after {time.perf_counter() - self.start:.0f} s")

    def functional(self, executed: int, fraction: float) -> None:
        pass


def _forward(compiled: Any, inputs: dict, selections: list, log: Log, label: str, capture: bool = False) -> tuple:
    runner = GoldenRunner(compiled.programs, compiled.config, _Progress(log, label), selections=selections,
                          capture=capture)  # fmt: skip
    start = time.perf_counter()
    outputs, _ = compiled.run(inputs, runner=runner)
    log(f"{label}: model forward pass in {time.perf_counter() - start:.1f} s")
    return next(iter(outputs.values())), runner.captured


def _token_ids(inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The one integer input of a causal LM (what --objective perplexity scores)."""
    if len(inputs) != 1 or np.asarray(next(iter(inputs.values()))).dtype.kind not in "iu":
        raise DseError("--objective perplexity needs a causal LM whose one input is integer token ids")
    return next(iter(inputs.values()))


def fitting_plan(target: TargetAttr, call: Captured, tile: int, keep: float, far: float = PLAIN_SADS) -> bool:
    """Whether the target's SRAM holds the coordinated plan of this layer at (tile, keep)."""
    batch, q_heads, length, depth = call.q.shape
    shape = AttentionShape(batch, q_heads, call.k.shape[1], length, call.k.shape[2], depth, call.v.shape[3],
                           keep, call.spec.causal, far=far)  # fmt: skip
    try:
        plan_sram(target, shape, tile)
    except PlanError:
        return False
    return True


def fitting(
    call: Captured, grid: list[tuple[int, float]], config: Any, far: float = PLAIN_SADS
) -> list[tuple[int, float]]:
    """The (tile, keep) of `grid` whose SRAM plan fits the target for this layer's shape."""
    target = TargetAttr(config.as_target_dict())
    result = [(tile, keep) for tile, keep in grid if fitting_plan(target, call, tile, keep, far)]
    if not result:
        fits = [tile for tile in (16, 32, 64, 128, 256, 512, 1024) if fitting_plan(target, call, tile, 0.1)]
        raise DseError(
            f"no (Bc, keep) of the grid fits the target for a layer of shape {list(call.q.shape)}"
            f" (tiles that fit at keep 0.1: {', '.join(map(str, fits)) or 'none'})"
        )
    return result


def run_model_search(args: Namespace, out: Path, log: Log) -> int:
    """Tune per-layer (Bc, keep) for each mean keep of ``args.mean_keep``: ``best.json`` for the first,
    ``best-keep<K>.json`` for every one; ``summary.json`` holds the errors and any loss checks."""
    if args.row_step < 1:
        raise DseError(f"--row-step must be at least 1, got {args.row_step}")
    budgets = _numbers(args.mean_keep, float, (), "--mean-keep")
    if not budgets or any(keep_problem(k) for k in budgets):
        raise DseError(f"--mean-keep must be keep ratios in (0, 1], got {args.mean_keep}")
    keeps = _numbers(args.keeps, float, DEFAULT_KEEPS, "--keeps")
    if any(keep_problem(k) for k in keeps):
        raise DseError(f"--keeps must lie in (0, 1], got {args.keeps}")
    compiled = _compile(args.model, args.target, log)
    inputs = read_inputs(args.inputs, compiled.input_names())
    token_ids = _token_ids(inputs) if args.objective == "perplexity" else None
    dense, calls = _forward(compiled, inputs, [], log, "dense (capturing Q/K/V)", capture=True)
    if not calls:
        raise DseError(f"{args.model}: no attention layer runs on the accelerator; nothing to tune")
    seq = calls[0].k.shape[2]
    tiles = _numbers(args.tiles, int, default_tiles(seq), "--tiles")
    grid = [(tile, keep) for tile in tiles for keep in keeps]
    radius = math.inf if args.radius is None else args.radius
    far = PLAIN_SADS if args.far is None else args.far
    if problem := far_problem(far):
        raise DseError(f"--far {problem}")
    log(f"{len(calls)} attention layers; scoring {len(grid)} (Bc, keep) each on every {args.row_step}-th query row")
    grids = [fitting(call, grid, compiled.config, far) for call in calls]
    errors = layer_errors(calls, grids, args.row_step, radius, log, far)
    summary: dict[str, Any] = {"model": str(args.model), "objective": args.objective, "row_step": args.row_step}
    summary["far"] = far
    template = Selection(0, 0.0, radius, far=far)  # each candidate's tile and keep replace the zeros
    # The uniform candidates of the loss check: tiles whose SRAM plan every layer holds (a tuning must compile).
    usable = tuple(tile for tile in tiles if all(any(t == tile for t, _ in grid) for grid in grids))
    summary["budgets"] = []
    for budget in budgets:
        choice = allocate(errors, budget)
        entry: dict[str, Any] = {
            "mean_keep": budget,
            "layers": [{"tile": t, "keep": k, "error": errors[i][(t, k)]} for i, (t, k) in enumerate(choice)],
        }
        if token_ids is not None:
            entry["perplexity"] = _loss_check(
                compiled, inputs, token_ids, dense, calls, choice, usable, budget, template, log
            )
            choice = entry["perplexity"]["chosen"]["layers"]
        summary["budgets"].append(entry)
        meta = {"objective": args.objective, "mean_keep": budget, "model": str(args.model), "far": far}
        text = as_tuning([tuple(c) for c in choice], meta).to_json()
        names = [f"best-keep{budget:g}.json"] + (["best.json"] if budget == budgets[0] else [])
        for name in names:
            atomic_write_text(out / name, text)
        print(f"mean keep {budget:g}: " + ", ".join(f"{i}:{t}/{k:g}" for i, (t, k) in enumerate(choice)))
        print(
            f"  mean keep {sum(k for _, k in choice) / len(choice):.4f}; wrote {', '.join(str(out / n) for n in names)}"
        )
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return 0


def _loss_check(
    compiled: Any,
    inputs: dict,
    token_ids: np.ndarray,
    dense: np.ndarray,
    calls: list[Captured],
    allocated: list[tuple[int, float]],
    tiles: tuple[int, ...],
    mean_keep: float,
    template: Selection,
    log: Log,
) -> dict[str, Any]:
    """The model's own loss for the allocation and for one uniform (Bc, mean keep) per tile: the lowest wins.

    Each candidate costs one whole forward pass (host partitions plus golden attention).
    """
    reference = causal_lm_perplexity(dense, token_ids)
    log(f"dense perplexity {reference:.4f}")
    candidates = {"allocated": [tuple(c) for c in allocated]}
    candidates |= {f"uniform Bc={tile}": [(tile, mean_keep)] * len(calls) for tile in tiles}
    results = []
    for name, choice in candidates.items():
        selections = [replace(template, tile=tile, keep=keep) for tile, keep in choice]
        logits, _ = _forward(compiled, inputs, selections, log, name)
        value = causal_lm_perplexity(logits, token_ids)
        log(f"{name}: perplexity {value:.4f} ({value / reference:.4f} x dense)")
        results.append({"name": name, "perplexity": value, "ratio": value / reference, "layers": choice})
    best = min(results, key=lambda r: r["perplexity"])
    return {"dense": reference, "candidates": results, "chosen": best}
