"""Simulated cycles of one attention head against keep, with the bound each run sits on.

One head (S queries and keys, depth d; causal and not) is compiled and run
on the simulator at each keep ratio, in one run. Prints the cycles, the KV
tile Bc and keys kept per tile m the compiler chose, the bound the run sits
on (the unit, or DRAM, whose work at its rate takes longest: docs/simulator.md,
Bounds) and the bounds of SU-FA, DLZS, the two load queues and DRAM as a share
of the cycles. Every figure is measured in the run.

    python benchmarks/cycles_vs_keep.py [--seq 2048] [--depth 128] [--keep 1.0 0.5 0.25 0.1 0.05]
"""

from __future__ import annotations

import argparse

import numpy as np

from sofa_compiler.kernels import AttentionProblem, compile_attention
from sofa_compiler.sim.config import load_config
from sofa_compiler.sim.functional import Machine, run_with_timing
from sofa_compiler.sim.report import Report, build_report

KEEPS = (1.0, 0.5, 0.25, 0.1, 0.05)
SHARES = ("sufa", "dlzs", "dma_load", "dma_prefetch")
"""Unit bounds printed as a share of the cycles (DRAM's follows them)."""


def run_head(seq: int, depth: int, causal: bool, keep: float) -> tuple[Report, int, int]:
    """The report of one head at `keep`, and the Bc and m the compiler chose."""
    config = load_config(None)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((seq, depth)).astype(np.float32) for _ in range(3))
    kernel = compile_attention(AttentionProblem(seq, seq, depth, depth, causal=causal), config, keep=keep)
    machine = Machine.from_target(config.as_target_dict(), dram_bytes=kernel.program.dram_bytes)
    result, timing = run_with_timing(machine, kernel.program, kernel.inputs(q, k, v), config)
    return build_report(timing, result.sram_peak), kernel.tiling.tile.data, kernel.tiling.keep_count.data


def row(keep: float, causal: bool, report: Report, tile: int, m: int) -> str:
    shares = [report.units[name].bound_cycles / report.total_cycles for name in SHARES]
    shares.append(report.dram_bound_cycles / report.total_cycles)
    cells = [f"{keep:g}", "causal" if causal else "full", f"{report.total_cycles:,}", str(tile), str(m)]
    cells += [f"{report.bound_by} ({report.bound_cycles / report.total_cycles:.0%})"]
    return " | ".join(cells + [f"{share:.0%}" for share in shares])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--keep", type=float, nargs="+", default=list(KEEPS))
    args = parser.parse_args()
    print(f"one head, S={args.seq}, d={args.depth}, sofa-28nm (simulated, measured in this run)")
    print(" | ".join(["keep", "mask", "cycles", "Bc", "m", "bound by", *SHARES, "dram"]))
    for causal in (False, True):
        for keep in args.keep:
            print(row(keep, causal, *run_head(args.seq, args.depth, causal, keep)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
