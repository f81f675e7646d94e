"""`python -m benchmarks [--quick | --smoke] [--out DIR]`: the evaluation report (issue 6).

Writes ``report.md`` and PNG plots to ``--out`` (default ``build/report/``),
printing one progress line per measurement. ``--quick`` (under 3 minutes on
2 cores) and ``--smoke`` (the test suite's, well under a minute) simulate
fewer heads, shorter sequences and fewer keep ratios; the report says so.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.compile_time import LENGTHS
from benchmarks.report.ablation import run_ablation
from benchmarks.report.accuracy import (
    accuracy_sweep,
    compiled_tile,
    radius_sweep,
    segment_sweep,
    workload_points,
)
from benchmarks.report.calibration import calibration
from benchmarks.report.gpu import compare, default_baseline_path, load_baseline, multipliers, table_ii_row
from benchmarks.report.masks import mask_rows
from benchmarks.report.real_model import (
    MODEL_NAME,
    RealModelResult,
    missing_dependencies,
    real_activations,
    real_model_sweep,
)
from benchmarks.report.render import write_report
from benchmarks.report.render_models import LM_JSON, load_lm_table
from benchmarks.report.results import Results
from benchmarks.report.roofline import place, roof
from benchmarks.report.selection import INPUTS
from benchmarks.report.speed import compile_times, simulator_speed
from dialects.sofa.attrs import TargetAttr
from sofa_compiler.sim.config import load_config
from sofa_compiler.workloads import WORKLOADS, Workload, find_workload, simulate


@dataclass(frozen=True)
class Mode:
    """How much of each measurement a run does."""

    name: str
    long_heads: int  # heads simulated for S > 4096
    short_heads: int  # heads simulated otherwise
    seq_cap: int | None  # simulate at most this many tokens (scaled by (S/s)^2)
    ablation: tuple[tuple[str, int, int | None], ...]  # (workload, heads, seq)
    accuracy: tuple[int, int, int, tuple[float, ...]]  # seq, depth, tile, keeps
    speed: tuple[tuple[str, int, int], ...]  # (workload, heads, seq)
    compile_lengths: tuple[int, ...]
    repeat: int
    real_model: tuple[int, tuple[float, ...]] | None  # (sentences, keeps); None: skipped
    real_seq: int | None = None  # tokens of the real-activation accuracy inputs; None: random only
    accuracy_rows: int = 32  # query rows sampled per workload for the index error at the compiler's n
    mask_lengths: tuple[int, ...] = ()  # S of the masked workloads (issue 17); () = not measured

    def heads(self, target: Workload) -> int:
        return self.long_heads if target.seq > 4096 else self.short_heads

    def seq(self, target: Workload) -> int:
        return min(target.seq, self.seq_cap) if self.seq_cap else target.seq


FULL_KEEPS = (1.0, 0.75, 0.5, 0.25, 0.15, 0.1, 0.05)

MODES = {
    "full": Mode(
        "full",
        1,
        2,
        None,
        (("bert-base-512", 2, None), ("llama-7b-4096", 1, None)),
        (1024, 64, 64, FULL_KEEPS),
        (("bert-base-512", 12, 512), ("llama-7b-4096", 1, 4096)),
        LENGTHS,
        3,
        (16, (1.0, 0.5, 0.25, 0.1)),
        256,
        256,
        (4096, 8192, 16384),
    ),
    "quick": Mode(
        "quick",
        1,
        1,
        2048,
        (("bert-base-512", 1, None), ("llama-7b-4096", 1, 1024)),
        (512, 64, 64, (1.0, 0.5, 0.25, 0.1, 0.05)),
        (("bert-base-512", 2, 512), ("llama-7b-4096", 1, 1024)),
        LENGTHS,
        1,
        (8, (1.0, 0.25)),
        128,
        64,
        (4096,),
    ),
    "smoke": Mode(
        "smoke",
        1,
        1,
        512,
        (("bert-base-512", 1, 256),),
        (256, 64, 64, (1.0, 0.25, 0.05)),
        (("bert-base-512", 1, 256),),
        LENGTHS[:2],
        1,
        None,
    ),
}


class Progress:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:7.1f} s] {message}", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def timed(results: Results, section: str, log: Progress, body: Callable[[], None]) -> None:
    start = time.perf_counter()
    log(f"{section} ...")
    body()
    results.section_s[section] = time.perf_counter() - start
    log(f"{section} done in {results.section_s[section]:.1f} s")


def run(mode: Mode, keep: float, baseline: Path, lm_json: Path, out: Path, command: str) -> Path:
    log = Progress()
    config = load_config(None)
    results = Results(mode.name, config.name, keep, command=command, multipliers=multipliers(config))

    def workloads() -> None:
        for target in WORKLOADS:
            heads, seq = mode.heads(target), mode.seq(target)
            sofa = simulate(target, keep, heads, seq)
            base = simulate(target, keep, heads, seq, pipeline="separate")
            log(
                f"  {target.name}: SOFA {sofa.latency_ms:.4g} ms, separate {base.latency_ms:.4g} ms "
                f"({heads} heads, S={seq}; {sofa.wall_s + base.wall_s:.1f} s)"
            )
            results.workloads.append((sofa, base))

    def ablation() -> None:
        for name, heads, seq in mode.ablation:
            target = find_workload(name)
            knobs, rows = run_ablation(target, keep, heads, seq, log)
            results.ablation_knobs = knobs
            results.ablations.append((target, rows))

    def accuracy() -> None:
        seq, depth, tile, keeps = mode.accuracy
        real = {}
        inputs = {name: make(np.random.default_rng(0), seq, depth) for name, make in INPUTS.items()}
        setup = f"random inputs: one head, S={seq}, d={depth}; Bc={tile}, no sphere clip"
        missing = missing_dependencies()
        if mode.real_seq is None:
            setup += f"; no real activations in the {mode.name} run"
        elif missing:
            setup += f"; real activations not measured ({', '.join(missing)} not installed)"
        else:
            heads = real_activations(mode.real_seq)
            real["minilm"] = heads
            shape = heads.q.shape
            setup += (
                f"; `minilm`: real Q/K/V of {MODEL_NAME} (all 6 layers x 12 heads = {shape[1]} heads, "
                f"S={shape[2]}, d={shape[3]}) on the report's sentences as one passage"
            )
            log(f"  captured {MODEL_NAME} Q/K/V {list(shape)}")
        results.accuracy = accuracy_sweep({**inputs, **real}, tile, keeps)
        results.accuracy_setup = setup
        for name, heads in {**inputs, **real}.items():
            results.segments += segment_sweep(name, heads)
            results.radii += radius_sweep(name, heads, tile)
        target = TargetAttr(config.as_target_dict())
        for workload in WORKLOADS:
            seq_used = mode.seq(workload)
            bc = compiled_tile(target, workload, mode.heads(workload), seq_used, keep)
            results.workload_accuracy += workload_points(workload, seq_used, bc, mode.accuracy_rows)
        log(f"  index error at the compiler's n: {len(WORKLOADS)} workloads")
        results.calibration = calibration()
        results.lm = load_lm_table(lm_json)

    def real_model() -> None:
        if mode.real_model is None:
            results.real_model = RealModelResult(
                note=f"skipped in the {mode.name} run (`--quick` and the full run measure it)"
            )
            return
        sentences, keeps = mode.real_model
        results.real_model = real_model_sweep(sentences, keeps, log)
        if results.real_model.note:
            log(f"  real model {results.real_model.note}")

    def gpu() -> None:
        results.gpu_device, entries = load_baseline(baseline)
        results.gpu = compare([sofa for sofa, _ in results.workloads], entries, config)
        reference = next(s for s, _ in results.workloads if s.workload.name == "llama-7b-512")
        results.table_ii = table_ii_row(reference, config)

    def speed() -> None:
        for name, heads, seq in mode.speed:
            row = simulator_speed(find_workload(name), heads, seq, mode.repeat)
            log(f"  {row.name}: sim {row.sim_s:.3f} s, numpy {row.numpy_s:.4f} s, ort {row.ort_s:.4f} s")
            results.speed.append(row)
        results.compile = compile_times(mode.compile_lengths, mode.repeat)
        results.roof = roof(config)
        results.points = [place(sofa) for sofa, _ in results.workloads]

    timed(results, "workloads", log, workloads)
    timed(results, "ablation", log, ablation)
    timed(results, "accuracy", log, accuracy)
    timed(results, "real model", log, real_model)
    timed(results, "gpu", log, gpu)
    timed(results, "speed", log, speed)
    timed(results, "masks", log, lambda: results.masks.extend(mask_rows(mode.mask_lengths, log)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.pickle").write_bytes(pickle.dumps(results))
    path = write_report(results, out)
    log(f"wrote {path} and {len(list(out.glob('*.png')))} plots in {log.elapsed():.0f} s")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="reduced run, under 3 minutes on 2 cores")
    size.add_argument("--smoke", action="store_true", help="smallest run, for the test suite")
    parser.add_argument("--out", type=Path, default=Path("build/report"))
    parser.add_argument("--keep", type=float, default=0.25, help="keep ratio for the workload and ablation tables")
    parser.add_argument("--gpu-baseline", type=Path, default=default_baseline_path())
    parser.add_argument(
        "--lm-json", type=Path, default=LM_JSON, help="SmolLM2 perplexity sweep to show (read, not measured)"
    )
    parser.add_argument(
        "--render-only", action="store_true", help="re-render --out from its results.pickle without measuring"
    )
    args = parser.parse_args(argv)
    if args.render_only:
        results = pickle.loads((args.out / "results.pickle").read_bytes())
        results.lm = load_lm_table(args.lm_json)  # a file read, not a measurement: re-read it
        print(f"wrote {write_report(results, args.out)}")
        return 0
    mode = MODES["quick" if args.quick else "smoke" if args.smoke else "full"]
    command = "python -m benchmarks" + (f" --{mode.name}" if mode.name != "full" else "")
    run(mode, args.keep, args.gpu_baseline, args.lm_json, args.out, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
