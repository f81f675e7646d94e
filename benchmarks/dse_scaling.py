"""The same DSE work on 1 and on 2 Dask workers: identical results, and the wall-time ratio.

Runs a hardware sweep (configs/*.toml x benchmark workloads) and a small
per-layer search, each on a fresh `LocalCluster` of 1 and then 2 worker
processes (warmed up first: imports are not timed), checks the results are
identical, and prints wall times and the 1-worker / 2-worker ratio. On a
machine with fewer free cores than workers the ratio shows that, not Dask.

    python benchmarks/dse_scaling.py [--quick] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time
from glob import glob

from sofa_compiler.dse.cluster import executor
from sofa_compiler.dse.objective import Weights
from sofa_compiler.dse.problem import workload_problem
from sofa_compiler.dse.search import Evaluator, SearchSpace, run_search
from sofa_compiler.dse.sweep import DEFAULT_WORKLOADS, run_sweep, sweep_key
from sofa_compiler.sim.config import load_config

LONG_WORKLOADS = ("bloom-1.7b-2048", "pvt-3192", "llama-7b-4096")
"""Longer layers, so the full sweep has enough work to time (about 20 s on one worker)."""


def warm() -> None:
    """Import everything a task needs and compile and simulate one tiny layer, on a worker, before timing."""
    from sofa_compiler.driver import compile_model
    from sofa_compiler.workloads import attention_model, random_inputs, run_kernels

    compiled = compile_model(attention_model(1, 64, 16, False), keep=0.5)
    run_kernels(compiled, random_inputs(1, 64, 16))


def timed_sweep(workers: int, paths: list[str], workloads: list[str]) -> tuple[list, float]:
    with executor(workers=workers) as ex:
        ex.client.run(warm)
        start = time.perf_counter()
        points = run_sweep(ex, paths, workloads, keep=0.25)
        return points, time.perf_counter() - start


def timed_search(workers: int, layers: int, trials: int) -> tuple[list, float]:
    problem = workload_problem("bert-base-512", load_config(None), layers=layers, heads=1)
    space = SearchSpace((16, 32, 64), (0.1, 0.2, 0.3, 0.4, 0.5), per_layer_keep=True)
    weights = Weights(cycles=0.5)
    with executor(workers=workers) as ex:
        ex.client.run(warm)
        start = time.perf_counter()
        result = run_search(problem, space, weights, Evaluator(problem, weights, ex), trials, None, "s", batch=16)
        elapsed = time.perf_counter() - start
    return [(t.number, t.state, sorted(t.params.items()), t.value) for t in result.study.trials], elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two short workloads, a 4-layer search")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    paths = sorted(glob("configs/*.toml"))
    workloads = list(DEFAULT_WORKLOADS[:2] if args.quick else (*DEFAULT_WORKLOADS, *LONG_WORKLOADS))
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPU(s) on this machine, 1-min load average {load:.1f} before the run")
    print(f"sweep: {len(paths)} configs x {len(workloads)} workloads")
    one, t1 = timed_sweep(1, paths, workloads)
    two, t2 = timed_sweep(args.workers, paths, workloads)
    same = sweep_key(one) == sweep_key(two)
    print(f"  1 worker {t1:.1f} s, {args.workers} workers {t2:.1f} s: ratio {t1 / t2:.2f}x; identical results: {same}")
    layers, trials = (4, 32) if args.quick else (12, 64)
    print(f"search: BERT-base {layers} layers, {trials} trials (batch 16)")
    s1, u1 = timed_search(1, layers, trials)
    s2, u2 = timed_search(args.workers, layers, trials)
    print(
        f"  1 worker {u1:.1f} s, {args.workers} workers {u2:.1f} s: ratio {u1 / u2:.2f}x; identical trials: {s1 == s2}"
    )
    if not (same and s1 == s2):
        raise SystemExit("results differ between worker counts")


if __name__ == "__main__":
    main()
