"""SOFA's coordinated tiling against the fair separate-stage baseline and the paper's vanilla accelerator.

One attention layer of Llama-7B's shape (`llama-7b-4096`: 32 heads, d = 128,
S = 4096), causal and non-causal, at the same keep ratio:

* ``coordinated``: SOFA, compiled and run on the simulator (DLZS, per-tile
  SADS, union gather of the selected K/V, SU-FA; A-hat never leaves the chip).
* ``fair separate``: a separate-stage accelerator on the same engines
  (`sofa_compiler.baselines.fair_separate`: DLZS, A-hat spilled once, whole-row
  top-k of ceil(k * valid) keys as an index list, FlashAttention-2 over the
  K/V tiles; fully masked tiles skipped in every phase).
* ``paper vanilla``: the paper's vanilla dynamic-sparsity accelerator with
  4-bit prediction (`paper_vanilla`: A-hat and A through DRAM by row, 2 MB
  SRAM), the reference of its -23 % / -79 % memory-access figures (§1.5).

The baselines are phase programs priced by the simulator's own timing and
energy models (docs/cost-model.md); SOFA is simulated instruction by
instruction. Heads run one after another and do the same work, so
``--heads`` of the 32 are run and every figure is scaled by 32 / heads.
The pipelines select differently (per-tile SADS against whole-row top-k), so
each row also gives the output's error against exact dense attention on the
simulated heads (`sofa_compiler.accuracy`: max relative error and cosine).

    python benchmarks/coordinated_vs_separate.py [--heads 1] [--keep 0.25] [--row-topk sort|quickselect]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dialects.sofa import TOPK_ENGINES, TargetAttr
from passes.tile_plan import AttentionShape, choose_tile
from sofa_compiler.accuracy import cosine_similarity, relative_error
from sofa_compiler.baselines import Layer, Priced, Rows, fair_separate, paper_vanilla
from sofa_compiler.baselines.outputs import dense_reference, row_topk_outputs
from sofa_compiler.driver import compile_model
from sofa_compiler.sim.config import HardwareConfig, load_config
from sofa_compiler.sim.report import combine_reports
from sofa_compiler.workloads import Workload, attention_model, find_workload, random_inputs, run_kernels

WORKLOAD = "llama-7b-4096"
PIPELINES = ("coordinated", "fair separate", "paper vanilla")


@dataclasses.dataclass(frozen=True)
class Row:
    """One pipeline on one layer: per-layer (scaled) cost, and accuracy on the simulated heads."""

    dram_bytes: float
    cycles: float
    energy_uj: float
    error: float
    cosine: float


def kind(causal: bool) -> str:
    return "causal" if causal else "non-causal"


def scaled(priced: Priced, scale: float, output: np.ndarray, reference: np.ndarray) -> Row:
    return Row(
        priced.dram_bytes * scale,
        priced.cycles * scale,
        priced.energy_pj * scale / 1e6,
        relative_error(output, reference),
        cosine_similarity(output, reference),
    )


def measure(
    workload: Workload, heads: int, keep: float, config: HardwareConfig, log: Callable[[str], None]
) -> dict[str, Row]:
    """The three pipelines on `workload` (its causality), `heads` heads simulated."""
    target = TargetAttr(config.as_target_dict())
    inputs = random_inputs(heads, workload.seq, workload.depth)
    scale = 1 / np.sqrt(workload.depth)
    layer_scale = workload.heads / heads
    exact = dense_reference(inputs, workload.causal, scale)
    shape = AttentionShape(
        1, heads, heads, workload.seq, workload.seq, workload.depth, workload.depth, keep, workload.causal
    )
    tile, _ = choose_tile(target, shape)
    start = time.perf_counter()
    compiled = compile_model(attention_model(heads, workload.seq, workload.depth, workload.causal), config, keep=keep)
    outputs, runs = run_kernels(compiled, inputs)
    report = combine_reports([run.report for run in runs])
    log(f"  coordinated, {kind(workload.causal)}: simulated in {time.perf_counter() - start:.0f} s")
    sofa = Row(
        (report.dram_read_bytes + report.dram_write_bytes) * layer_scale,
        report.total_cycles * layer_scale,
        report.total_energy_pj * layer_scale / 1e6,
        relative_error(next(iter(outputs.values())), exact),
        cosine_similarity(next(iter(outputs.values())), exact),
    )
    rows = Rows.of(shape)
    fair = fair_separate(Layer(target, shape, tile, "dlzs"), config)
    vanilla = paper_vanilla(Layer(target, shape, tile, "mul4"), config)
    return {
        "coordinated": sofa,
        "fair separate": scaled(fair, layer_scale, row_topk_outputs(inputs, rows, "dlzs", scale), exact),
        "paper vanilla": scaled(vanilla, layer_scale, row_topk_outputs(inputs, rows, "mul4", scale), exact),
    }


def print_table(results: dict[bool, dict[str, Row]]) -> None:
    metrics: tuple[tuple[str, Callable[[Row], float], str], ...] = (
        ("DRAM MB", lambda r: r.dram_bytes / 1e6, ".4g"),
        ("Mcycles", lambda r: r.cycles / 1e6, ".4g"),
        ("energy uJ", lambda r: r.energy_uj, ".4g"),
        ("out error", lambda r: r.error, ".3g"),
        ("cosine", lambda r: r.cosine, ".5f"),
    )
    header = f"{'':>14}" + "".join(f"{p + (' (causal)' if c else ''):>24}" for c in (True, False) for p in PIPELINES)
    print(header)
    for name, value, spec in metrics:
        cells = "".join(f"{format(value(results[c][p]), spec):>24}" for c in (True, False) for p in PIPELINES)
        print(f"{name:>14}{cells}")
    print()
    print(
        f"{'coordinated vs':>14}"
        + "".join(f"{b + (' (causal)' if c else ''):>24}" for c in (True, False) for b in PIPELINES[1:])
    )
    for name, value, _ in metrics[:3]:
        cells = ""
        for causal in (True, False):
            sofa = value(results[causal]["coordinated"])
            cells += "".join(f"{100 * (sofa / value(results[causal][b]) - 1):>+23.1f}%" for b in PIPELINES[1:])
        print(f"{name:>14}{cells}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heads", type=int, default=1, help="heads to simulate (the figures are scaled to 32)")
    parser.add_argument("--keep", type=float, default=0.25)
    parser.add_argument("--row-topk", choices=TOPK_ENGINES, default="sort", help="the baselines' row top-k engine")
    args = parser.parse_args(argv)
    workload = find_workload(WORKLOAD)
    config = load_config(None).with_values({"target.row_topk": args.row_topk})
    log: Callable[[str], Any] = print
    results = {}
    for causal in (True, False):
        results[causal] = measure(dataclasses.replace(workload, causal=causal), args.heads, args.keep, config, log)
    print(
        f"\n{workload.model} attention layer, S={workload.seq}, d={workload.depth}: {workload.heads} heads "
        f"(simulated {args.heads}, scaled x{workload.heads / args.heads:g}), keep {args.keep}, row top-k "
        f"'{args.row_topk}'. Costs per layer; error and cosine of the output against exact dense attention."
    )
    print_table(results)
    for causal in (True, False):
        sofa, vanilla = results[causal]["coordinated"], results[causal]["paper vanilla"]
        print(
            f"memory access, {kind(causal)}: {100 * (1 - sofa.dram_bytes / vanilla.dram_bytes):.1f}% "
            "less than the paper's vanilla accelerator (paper, §1.5: 79% less with SU-FA and tiling)"
        )


if __name__ == "__main__":
    main()
