"""`sofa-dse`: design-space exploration of per-layer KV tiles and keep ratios, and hardware sweeps.

sofa-dse --workload bert-base-512 --layers 12 [--target FILE.toml] [--trials N] [--per-layer-keep]
         [--storage sqlite:///study.db --study-name NAME] [--workers N | --scheduler tcp://host:port]
         [-o DIR] [--baseline]
sofa-dse --mask PATTERN [--seq S] [--depth D] [--mask-param KEY=VALUE ...] [--margin M] [--keeps ...]
         [--tiles ...] [--cycles-weight W] [--max-error E] [--trials N] [--json] [-o DIR]
sofa-dse --sweep configs/*.toml [--workloads a,b,...] [--keep K] [-o DIR]
sofa-dse MODEL.onnx --inputs calib.npz [--objective attention|perplexity] [--mean-keep K]
         [--tiles ...] [--keeps ...] [--row-step N] [--radius R] [--target FILE.toml] [-o DIR]

See docs/dse.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dialects.sofa import keep_problem
from passes.tile_plan import TILE_CANDIDATES
from sofa_compiler.cli import exit_statuses
from sofa_compiler.dse.cluster import executor
from sofa_compiler.dse.mask_search import MaskSearchError, StageOne, compare, mask_problem
from sofa_compiler.dse.model import OBJECTIVES
from sofa_compiler.dse.objective import Weights
from sofa_compiler.dse.problem import PATTERNS, DseError, Problem, workload_problem
from sofa_compiler.dse.search import (
    Evaluator,
    SearchSpace,
    default_tiles,
    global_baseline,
    run_search,
)
from sofa_compiler.dse.sweep import DEFAULT_WORKLOADS, csv_table, markdown_table, output_names, run_sweep
from sofa_compiler.files import atomic_write_text
from sofa_compiler.mask_workloads import GENERATORS, MaskPatternError, mask_workload
from sofa_compiler.sim.config import ConfigError, HardwareConfig, load_config


def _numbers(text: str, kind: type, option: str) -> tuple:
    """``"16,32,64"`` or, for floats, ``"0.05:0.5:0.05"`` (start:stop:step, inclusive)."""
    try:
        if ":" in text and kind is float:
            start, stop, step = (float(part) for part in text.split(":"))
            count = round((stop - start) / step) + 1
            return tuple(round(start + i * step, 6) for i in range(count))
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise DseError(f"{option}: cannot read '{text}' as a list of numbers") from None


OBJECTIVE_HELP = (
    "model mode: attention-output error per layer, or the model's own loss (perplexity; a causal LM whose one"
    " input is token ids and whose output is logits)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sofa-dse", description=__doc__.split("\n")[0])
    what = parser.add_argument_group("what to explore")
    what.add_argument("model", nargs="?", help="an ONNX model to tune per attention layer (with --inputs)")
    what.add_argument("--inputs", metavar="CALIB.npz", help="the model's calibration inputs, one array per input name")
    what.add_argument("--objective", choices=OBJECTIVES, default="attention", help=OBJECTIVE_HELP)
    what.add_argument(
        "--mean-keep", default="0.25", help="model mode: mean keep over the layers (comma-separated: one tuning each)"
    )
    what.add_argument("--row-step", type=int, default=8, help="model mode: score every N-th query row (default 8)")
    what.add_argument("--workload", help="benchmark attention layer to stack (e.g. bert-base-512)")
    what.add_argument("--layers", type=int, default=None, help="layers in the model (default 1; BERT-base: 12)")
    what.add_argument(
        "--mask",
        choices=GENERATORS,
        help="two-stage search of one masked attention layer: the analytical model prunes (Bc, format, mapping),"
        " the search tunes Bc and keep among the survivors",
    )
    what.add_argument("--seq", type=int, default=4096, help="mask mode: sequence length (default 4096)")
    what.add_argument("--depth", type=int, default=128, help="mask mode: head dimension (default 128)")
    what.add_argument(
        "--mask-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="mask mode: a pattern parameter over its default (e.g. window=1024; repeatable)",
    )
    what.add_argument(
        "--margin", type=float, default=1.25, help="mask mode: stage one keeps estimates within this of the cheapest"
    )
    what.add_argument(
        "--input-pattern", choices=PATTERNS, default="local", help="mask mode: synthetic inputs (default local)"
    )
    what.add_argument("--sweep", nargs="+", metavar="CONFIG.toml", help="compare these targets over --workloads")
    what.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS), help="sweep workloads, comma-separated")
    what.add_argument("--target", metavar="FILE.toml", help="hardware config for the search (default: sofa-28nm)")
    what.add_argument("--heads", type=int, default=1, help="heads simulated per layer; figures scale to all heads")
    what.add_argument("--calibration", metavar="X.npz", help="calibration inputs (layer<i>.q/k/v or q/k/v)")
    what.add_argument("--seed", type=int, default=0, help="seed of the synthetic inputs and the sampler")
    what.add_argument("--radius", type=float, default=None, help="SADS radius in logits (default: no clip)")
    what.add_argument(
        "--far", type=float, default=None, help="model mode: budgeted SADS's far-tile ratio (default 1: plain SADS)"
    )
    what.add_argument("--keep", type=float, default=0.25, help="keep ratio of the sweep (default 0.25)")
    space = parser.add_argument_group("search space and objective")
    space.add_argument("--tiles", help="KV tiles Bc to choose from (default: S/Tc for Tc = 2, 4, ..., 32)")
    space.add_argument(
        "--keeps", help="keep ratios (list or start:stop:step; default 0.05:0.5:0.05, mask mode 1,0.5,0.25)"
    )
    space.add_argument("--per-layer-keep", action="store_true", help="a keep ratio per layer (default: one)")
    space.add_argument("--alpha", type=float, default=0.24, help="weight of L_cmp (paper, BERT: 0.24)")
    space.add_argument("--beta", type=float, default=0.31, help="weight of L_exp (paper, BERT: 0.31)")
    space.add_argument("--cycles-weight", type=float, default=0.0, help="weight of cycles / dense cycles")
    space.add_argument("--energy-weight", type=float, default=0.0, help="weight of energy / dense energy")
    space.add_argument("--max-error", type=float, help="constraint: mean relative error at most this")
    search = parser.add_argument_group("search")
    search.add_argument("--trials", type=int, default=100, help="finished trials the study should reach")
    search.add_argument("--batch", type=int, default=8, help="trials asked and evaluated together (fixed)")
    search.add_argument("--sampler", default="tpe", help="tpe (default) or gp (needs torch)")
    search.add_argument("--storage", help="Optuna storage URL (default: sqlite:///DIR/study.db)")
    search.add_argument("--study-name", help="study name (default: from workload, layers and target)")
    search.add_argument(
        "--initial", default="global", help="first trials: global (every single global Bc x keep) or random"
    )
    search.add_argument("--baseline", action="store_true", help="also evaluate every single global (Bc, keep)")
    run = parser.add_argument_group("where it runs and what it writes")
    run.add_argument("--workers", type=int, default=2, help="workers of the embedded Dask LocalCluster")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use an existing Dask cluster instead")
    run.add_argument("--threads", action="store_true", help="LocalCluster workers as threads, not processes")
    run.add_argument("-o", "--output-dir", default="sofa-dse-out", help="results directory (default sofa-dse-out)")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument("--json", action="store_true", help="search: print summary.json to stdout instead of text")
    return parser


def _log(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(f"sofa-dse: {text}", file=sys.stderr, flush=True)


def _plot(args: argparse.Namespace, draw, path: Path, *values) -> list[Path]:
    """Draw one plot to `path`: ``[path]``, or ``[]`` (and a note) where matplotlib is missing."""
    try:
        draw(*values, path)
    except ModuleNotFoundError:
        _log(args, "matplotlib is not installed: no plot (pip install -e '.[dev]')")
        return []
    return [path]


def do_sweep(args: argparse.Namespace, out: Path) -> int:
    from sofa_compiler.dse.plots import sweep_plot

    workloads = [name.strip() for name in args.workloads.split(",") if name.strip()]
    start = time.perf_counter()
    with executor(args.scheduler, args.workers, not args.threads) as ex:
        _log(args, f"sweep: {len(args.sweep)} target(s) x {len(workloads)} workload(s) on {ex.workers} worker(s)")
        points = run_sweep(ex, args.sweep, workloads, args.keep, args.heads)
    names = output_names(out)
    table = markdown_table(points, args.keep)
    atomic_write_text(names["md"], table)
    atomic_write_text(names["csv"], csv_table(points))
    written = [names["md"], names["csv"], *_plot(args, sweep_plot, names["png"], points)]
    sys.stdout.write(table)
    _log(args, f"sweep done in {time.perf_counter() - start:.1f} s; wrote {', '.join(map(str, written))}")
    return 0


def warn_uncovered_initial_design(args: argparse.Namespace, points: int) -> None:
    """The initial design is every single global (Bc, keep); fewer trials leave some of it untried."""
    if args.initial == "global" and args.trials < points:
        print(
            f"sofa-dse: warning: --trials {args.trials} covers only {args.trials} of the {points} initial"
            f" global (Bc, keep) points, so 'best' is the best of those; use --trials {points} or more",
            file=sys.stderr,
        )


def _mask_params(args: argparse.Namespace) -> dict[str, float | int]:
    params: dict[str, float | int] = {}
    for item in args.mask_param:
        key, sep, value = item.partition("=")
        try:
            params[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise DseError(f"--mask-param: expected KEY=NUMBER, got '{item}'")
    return params


def mask_stage_one(
    args: argparse.Namespace, config: HardwareConfig, tiles: tuple, keeps: tuple
) -> tuple[Problem, StageOne]:
    """Stage one of `--mask`: the problem of stage two and the model's verdicts."""
    if args.seq < 16:
        raise DseError(f"--seq must be at least 16, got {args.seq}")
    workload = mask_workload(args.mask, args.seq, _mask_params(args))
    _log(args, f"stage one: the analytical model prices {workload.name} at Bc {', '.join(map(str, tiles))}")
    start = time.perf_counter()
    problem, stage = mask_problem(
        workload,
        config,
        args.depth,
        keeps,
        args.margin,
        tiles,
        args.layers or 1,
        args.heads,
        args.seed,
        args.input_pattern,
        args.calibration,
        args.radius,
    )
    pairs = ", ".join(f"(Bc {tile}, keep {keep:g})" for tile, keep in stage.surviving_pairs())
    _log(
        args,
        f"stage one: {len(stage.priced)} (Bc, keep, format, mapping) priced, {len(stage.survivors)} within"
        f" {args.margin:g}x of the cheapest per keep, in {time.perf_counter() - start:.1f} s; survivors: {pairs}",
    )
    return problem, stage


def mask_summary(args: argparse.Namespace, stage: StageOne, cache: dict) -> dict:
    """The model against the simulator on every survivor the search ran, and per keep its first choice against
    the fastest survivor (within --max-error, if given); printed unless --json."""
    measured = compare(stage, cache)
    per_keep = []
    for keep in sorted({p.keep for p in stage.priced}, reverse=True):
        first = stage.first_choice(keep)
        points = [m for m in measured if m.keep == keep]
        chosen = next((m for m in points if m.tile == first.tile), None)
        feasible = [m for m in points if args.max_error is None or m.error <= args.max_error]
        fastest = min(feasible, key=lambda m: (m.cycles, m.tile)) if feasible else None
        if chosen is None or fastest is None:
            continue
        per_keep.append({"keep": keep, "model_first": chosen.to_dict(), "fastest": fastest.to_dict()})
    ratios = [m.model_over_simulator for m in measured]
    summary = {
        "measured": [m.to_dict() for m in measured],
        "per_keep": per_keep,
        "model_over_simulator": {"min": min(ratios), "max": max(ratios)} if ratios else None,
    }
    if args.json:
        return summary
    print("keep  Bc   format/mapping  model cycles  simulated  model/sim  rel. error")
    for m in measured:
        print(
            f"{m.keep:>4g}  {m.tile:>3}  {m.format + '/' + m.mapping:<14}  {m.estimated_cycles:>12.0f}"
            f"  {m.cycles:>9.0f}  {m.model_over_simulator:>9.3f}  {m.error:>10.3e}"
        )
    if ratios:
        print(f"model / simulator over the simulated survivors: {min(ratios):.3f} .. {max(ratios):.3f}")
    for row in per_keep:
        first, fastest = row["model_first"], row["fastest"]
        verdict = (
            "the same"
            if first["tile"] == fastest["tile"]
            else f"{first['cycles'] / fastest['cycles']:.3f}x the simulator's fastest survivor,"
            f" Bc {fastest['tile']} {fastest['format']}/{fastest['mapping']} ({fastest['cycles']:.0f} cycles,"
            f" error {fastest['error']:.2e})"
        )
        print(
            f"keep {row['keep']:g}: model's first choice Bc {first['tile']} {first['format']}/{first['mapping']}"
            f" ({first['cycles']:.0f} cycles simulated, error {first['error']:.2e}): {verdict}"
        )
    return summary


def do_search(args: argparse.Namespace, out: Path) -> int:
    from sofa_compiler.dse.plots import pareto_plot

    config = load_config(args.target)
    keeps = _numbers(args.keeps or ("1,0.5,0.25" if args.mask else "0.05:0.5:0.05"), float, "--keeps")
    tiles = _numbers(args.tiles, int, "--tiles") if args.tiles else None
    if tiles is not None and (not tiles or any(t < 1 for t in tiles)):
        raise DseError(f"--tiles must be positive KV tile sizes, got {args.tiles}")
    if not keeps or any(keep_problem(k) for k in keeps):
        raise DseError(f"--keeps must lie in (0, 1], got {args.keeps}")
    stage = None
    if args.mask:
        tiles = tiles or tuple(t for t in TILE_CANDIDATES if t <= args.seq)
        problem, stage = mask_stage_one(args, config, tiles, keeps)
    else:
        problem = workload_problem(
            args.workload, config, args.layers, args.heads, args.seed, args.calibration, args.radius
        )
        tiles = tiles or default_tiles(problem.layers[0].seq)
    space, dropped = SearchSpace(tiles, keeps, args.per_layer_keep).fitting(problem)
    if dropped:
        why = "stage one pruned them, or they do not fit" if args.mask else "they do not fit"
        _log(args, f"tiles {', '.join(map(str, dropped))}: {why} {config.name}'s SRAM for any layer: not searched")
    weights = Weights(args.alpha, args.beta, args.cycles_weight, args.energy_weight, args.max_error)
    storage = args.storage or f"sqlite:///{out / 'study.db'}"
    study_name = args.study_name or f"{problem.name}-{config.name}"
    with executor(args.scheduler, args.workers, not args.threads) as ex:
        _log(args, f"study '{study_name}' in {storage}: {args.trials} trials on {ex.workers} worker(s)")
        evaluator = Evaluator(problem, weights, ex)
        result = run_search(
            problem,
            space,
            weights,
            evaluator,
            args.trials,
            storage,
            study_name,
            args.seed,
            args.batch,
            args.sampler,
            None if args.quiet else lambda line: _log(args, line),
            args.initial,
        )
        baseline = global_baseline(evaluator, space)[1] if args.baseline else None
        if stage is not None:  # the model's first choice at each keep is simulated, whatever the search picked
            evaluator.ensure([(0, stage.first_choice(keep).tile, keep) for keep in keeps])
    summary: dict = {"study": study_name, "storage": storage, "trials": len(result.study.trials)}
    if stage is not None:
        summary["mask"] = {"workload": problem.name, "margin": args.margin} | mask_summary(args, stage, evaluator.cache)
    if result.tuning is None or result.best_trial is None:
        _log(args, "no feasible configuration (all trials pruned or over --max-error)")
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        if args.json:
            print(json.dumps(summary, indent=2))
        return 3
    atomic_write_text(out / "best.json", result.tuning.to_json())
    summary |= {"best": result.tuning.meta, "layers": result.tuning.to_dict()["layers"]}
    base = None
    if baseline is not None and baseline.score is not None:
        base = baseline.score.to_dict()
        summary["best_global"] = {"tile": baseline.tile, "keep": baseline.keep, "score": base}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    plots = _plot(args, lambda study, path: pareto_plot(study, path, base), out / "pareto.png", result.study)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    best = result.best_trial
    print(f"best objective {best.value:.5f} (trial {best.number}; error {best.user_attrs['error']:.4f})")
    for index, entry in sorted(result.tuning.layers.items()):
        print(f"  layer {index}: tile {entry.tile}, keep {entry.keep}")
    if baseline is not None and baseline.score is not None:
        print(f"best single global Bc: tile {baseline.tile}, keep {baseline.keep}: {baseline.score.value:.5f}")
    written = [f"{out / 'best.json'} (sofa-compile --tuning)", *map(str, plots), str(out / "summary.json")]
    print(f"wrote {', '.join(written)}")
    return 0


@exit_statuses("sofa-dse", DseError, ConfigError, MaskPatternError, MaskSearchError)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.model is not None:
        from sofa_compiler.dse.model_search import run_model_search

        if args.sweep or args.workload or args.mask:
            raise DseError("give a MODEL.onnx, --workload or --mask (a search) or --sweep CONFIG.toml ..., not several")
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        return run_model_search(args, out, lambda line: _log(args, line))
    if bool(args.sweep) + bool(args.workload) + bool(args.mask) != 1:
        raise DseError("give MODEL.onnx --inputs X.npz, --workload or --mask (a search), or --sweep CONFIG.toml ...")
    if args.trials < 1 or args.batch < 1:
        # Before anything is made: the output directory, the Dask cluster, the study.
        raise DseError(f"--trials and --batch must be at least 1, got {args.trials} and {args.batch}")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return do_sweep(args, out) if args.sweep else do_search(args, out)


if __name__ == "__main__":
    sys.exit(main())
