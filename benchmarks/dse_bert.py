"""Per-layer DSE on BERT-base (12 layers, S = 512) against the best single global Bc, side by side.

Runs the `sofa-dse` search (Optuna TPE, the paper's Eq. 2-4 with a measured
error proxy, plus a cycles term) within a stated trial budget, then scores
every single global (Bc, keep) of the same space exhaustively, and prints
both objective values and their terms. The trial budget includes the
initial samples (Alg. 1's D): the global grid itself, queued first; the
search must then improve on it with per-layer choices.

Calibration inputs are synthetic BERT-like patterns (`sofa_compiler.dse.problem.synthetic_inputs`),
one simulated head per layer, figures scaled to 12 heads.

    python benchmarks/dse_bert.py [--quick] [--trials N] [--workers N] [--out build/dse/bert]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sofa_compiler.dse.cluster import executor
from sofa_compiler.dse.objective import Weights
from sofa_compiler.dse.plots import pareto_plot
from sofa_compiler.dse.problem import workload_problem
from sofa_compiler.dse.search import Evaluator, SearchSpace, default_tiles, global_baseline, run_search
from sofa_compiler.files import atomic_write_text
from sofa_compiler.sim.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="keep grid 0.1..0.5 step 0.1, 100 trials")
    parser.add_argument("--trials", type=int, help="trial budget (default 200, quick 100)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cycles-weight", type=float, default=0.5)
    parser.add_argument("--out", default="build/dse/bert")
    args = parser.parse_args()
    trials = args.trials or (100 if args.quick else 200)
    keeps = (
        tuple(round(0.1 * i, 2) for i in range(1, 6)) if args.quick else tuple(round(0.05 * i, 2) for i in range(1, 11))
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.db").unlink(missing_ok=True)

    config = load_config(None)
    problem = workload_problem("bert-base-512", config, layers=12, heads=1, seed=args.seed)
    space, dropped = SearchSpace(default_tiles(512), keeps, per_layer_keep=True).fitting(problem)
    weights = Weights(alpha=0.24, beta=0.31, cycles=args.cycles_weight)
    print(
        f"BERT-base, 12 layers, S = 512, target {config.name}; objective L_en + 0.24 L_cmp + 0.31 L_exp"
        f" + {args.cycles_weight} cycles/dense"
    )
    print(f"space per layer: Bc in {list(space.tiles)} (dropped, no fit: {dropped}), keep in {list(space.keeps)}")
    start = time.perf_counter()
    with executor(workers=args.workers) as ex:
        evaluator = Evaluator(problem, weights, ex)
        result = run_search(
            problem,
            space,
            weights,
            evaluator,
            trials,
            f"sqlite:///{out / 'study.db'}",
            "bert",
            args.seed,
            batch=16,
            progress=print,
        )
        search_s = time.perf_counter() - start
        rows, best_global = global_baseline(evaluator, space)
    assert result.best_trial is not None
    assert result.tuning is not None
    assert best_global is not None
    searched = {
        k: result.best_trial.user_attrs[k] for k in ("value", "error", "cmp", "exp", "cycles_ratio", "energy_ratio")
    }
    baseline = best_global.score.to_dict() if best_global.score else {}
    print()
    print(f"| | per-layer search ({trials} trials) | best single global Bc ({len(rows)} configs, exhaustive) |")
    print("|---|---:|---:|")
    print(f"| configuration | see below | Bc = {best_global.tile}, keep = {best_global.keep} |")
    for key, label in (
        ("value", "objective L"),
        ("error", "L_en (mean rel. error)"),
        ("cmp", "L_cmp"),
        ("exp", "L_exp (normalised)"),
        ("cycles_ratio", "cycles / dense"),
        ("energy_ratio", "energy / dense"),
    ):
        print(f"| {label} | {searched[key]:.5f} | {baseline[key]:.5f} |")
    gain = (baseline["value"] - searched["value"]) / baseline["value"]
    print(
        f"\nsearch objective {searched['value']:.5f} vs best global {baseline['value']:.5f}:"
        f" {gain:+.1%} better, found at trial {result.best_trial.number} of {trials}"
        f" ({search_s:.0f} s, {result.evaluations} distinct layer simulations, {args.workers} workers)"
    )
    for index, entry in sorted(result.tuning.layers.items()):
        print(f"  layer {index:2d}: Bc = {entry.tile:3d}, keep = {entry.keep}")
    atomic_write_text(out / "best.json", result.tuning.to_json())
    summary = {
        "trials": trials,
        "search": searched,
        "best_global": {"tile": best_global.tile, "keep": best_global.keep, **baseline},
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    pareto_plot(result.study, out / "pareto.png", baseline)
    print(f"wrote {out}/best.json, summary.json, pareto.png")


if __name__ == "__main__":
    main()
