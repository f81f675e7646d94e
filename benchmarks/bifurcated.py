"""Bifurcated attention against the standard batched decode, on the simulator (issue 18).

A Llama-7B-shaped layer (32 MHA heads, d = 128) decodes M samples from one
prompt: every sample's cache is the prompt (the shared prefix, one copy in
DRAM) plus the tokens it has decoded itself (``--generated``, 256 by default),
so "context 8K" is a prefix of 8192 - 256 and a suffix of 256 per sample.
Per step it prints the simulated decode-attention cycles, DRAM bytes and energy
of the standard batched lowering (each sample streams the prefix and its suffix)
and of the bifurcated one (the prefix once for every sample's lanes, each
suffix for its own lanes, spread among the prefix tiles), their ratios, DRAM against the IO lower bound
(prefix once plus every suffix, plus Q and O), the cost model's choice
(`sofa_compiler.decode_cost`) against the measured faster lowering, what bounds
the bifurcated kernel, and the floor (`step_floor`): the cycles no lowering can
beat by the simulator's rules, the larger of the step's MACs over the SU-FA
array's 512 PEs and its necessary DRAM reads over the bandwidth. The speedup
cap is the standard lowering's cycles over that floor. At 512 GB/s a one-lane
(MHA) stream is DRAM-bound and the bifurcated prefix, all samples in the lanes,
SU-FA-bound at the MAC floor: the cap is about 2.25x however many samples share
the prefix. A SU-FA step is charged ``macs / 512`` cycles whatever lanes it
uses, so splitting the KV sequence across idle lanes (flash-decoding) cannot
lower it either (docs/cost-model.md, "Decode").

One KV head is simulated and the figures are scaled by 32: the kernel runs its
KV heads one after another, each exactly alike (a barrier between them), so
the layer is 32 times one head. Then a sweep of prefix lengths, sample counts
and GQA group sizes (4 and 64 decoded tokens each, ``--sweep-generated``) checks that the
cost model's choice is never slower than the faster of the two by more than 5%.
Finally the main rows again at the DRAM bandwidth the paper's power figures
assume (59.8 GB/s, Table IV), where the step is memory-bound for longer.

    python benchmarks/bifurcated.py [--generated 256] [--no-sweep] [--no-paper-dram]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass

import numpy as np

from passes.lower_to_isa.decode import DecodeLowering, DecodeStep
from sofa_compiler.decode import run_decode
from sofa_compiler.decode_cost import DecodeFloor, choose_lowering, step_floor
from sofa_compiler.sim.config import HardwareConfig, load_config
from sofa_compiler.sim.report import Report

HEADS, DEPTH = 32, 128
"""Llama-7B's attention: 32 MHA heads of 128."""

PAPER_DRAM_GBPS = 59.8
"""The DRAM bandwidth behind the paper's power figures (Table IV: DRAM 1.92 W at 59.8 GB/s)."""

SWEEP_PREFIXES = (16, 64, 256, 1024, 4096)
"""The sweep's shared prefix lengths."""

SPEEDUP_GOALS = {16: 2.1, 32: 6.2}
"""Issue 18's goals: fewer cycles per step than the standard lowering, by samples (the seed's GPU figures)."""

REGRET_LIMIT = 0.05
"""The cost model's choice may be at most this much slower than the measured faster lowering."""


@dataclass(frozen=True)
class Row:
    """Both lowerings of one step, measured, with the cost model's choice."""

    step: DecodeStep
    scale: int
    reports: dict[DecodeLowering, Report]
    choice: DecodeLowering
    same_output: bool
    """The two lowerings' outputs are equal bit for bit."""
    floor: DecodeFloor

    def cycles(self, lowering: DecodeLowering) -> int:
        return self.reports[lowering].total_cycles * self.scale

    def dram(self, lowering: DecodeLowering) -> int:
        report = self.reports[lowering]
        return (report.dram_read_bytes + report.dram_write_bytes) * self.scale

    def energy_uj(self, lowering: DecodeLowering) -> float:
        return self.reports[lowering].total_energy_pj * self.scale / 1e6

    @property
    def faster(self) -> DecodeLowering:
        return min(DecodeLowering, key=lambda lowering: (self.cycles(lowering), lowering is DecodeLowering.STANDARD))

    @property
    def floor_cycles(self) -> int:
        return self.floor.cycles * self.scale

    @property
    def speedup_cap(self) -> float:
        """Standard's cycles over the floor: no lowering of the same step (split or not) beats this speedup."""
        return self.cycles(DecodeLowering.STANDARD) / self.floor_cycles

    @property
    def regret(self) -> float:
        """How much slower the chosen lowering ran than the faster one."""
        return self.cycles(self.choice) / self.cycles(self.faster) - 1


def one_head_step(samples: int, prefix: int, generated: int, group: int = 1) -> DecodeStep:
    return DecodeStep(samples, group, 1, DEPTH, (prefix + generated,) * samples, prefix)


def caches(step: DecodeStep, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Random Q and caches sharing their first `step.prefix` rows (N(0, 1), as the workloads draw)."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((step.batch, step.q_heads, 1, step.depth), np.float32)
    shared = [rng.standard_normal((step.kv_heads, step.prefix, step.depth), np.float32) for _ in "kv"]
    k, v = [], []
    for length in step.cache_lengths:
        own = [rng.standard_normal((step.kv_heads, length - step.prefix, step.depth), np.float32) for _ in "kv"]
        k.append(np.concatenate([shared[0], own[0]], axis=1))
        v.append(np.concatenate([shared[1], own[1]], axis=1))
    return q, k, v


def measure(step: DecodeStep, config: HardwareConfig, scale: int = 1) -> Row:
    q, k, v = caches(step)
    runs = {lowering: run_decode(step, lowering, q, k, v, config) for lowering in DecodeLowering}
    reports = {lowering: run.report for lowering, run in runs.items()}
    same = np.array_equal(*(run.output for run in runs.values()), equal_nan=True)
    return Row(step, scale, reports, choose_lowering(step, config).lowering, same, step_floor(step, config))


def main_table(config: HardwareConfig, generated: int, title: str) -> list[Row]:
    standard, bifurcated = DecodeLowering.STANDARD, DecodeLowering.BIFURCATED
    print(f"\n{title}")
    print(
        "context | samples | standard cycles | bifurcated cycles | speedup | standard DRAM MB | bifurcated DRAM MB"
        " | IO bound MB | DRAM / bound | standard energy uJ | bifurcated energy uJ | model picks | faster"
        " | bifurcated bound by | floor cycles | bifurcated / floor | speedup cap"
    )
    rows = []
    for context in (8192, 16384):
        for samples in (16, 32):
            step = one_head_step(samples, context - generated, generated)
            row = measure(step, config, HEADS)
            rows.append(row)
            bound = step.io_lower_bound() * HEADS
            print(
                f"{context} | {samples} | {row.cycles(standard):,} | {row.cycles(bifurcated):,} | "
                f"{row.cycles(standard) / row.cycles(bifurcated):.2f}x | {row.dram(standard) / 1e6:.1f} | "
                f"{row.dram(bifurcated) / 1e6:.1f} | {bound / 1e6:.1f} | {row.dram(bifurcated) / bound:.3f} | "
                f"{row.energy_uj(standard):.1f} | {row.energy_uj(bifurcated):.1f} | {row.choice.value} | "
                f"{row.faster.value} | {row.reports[bifurcated].bound_by} | {row.floor_cycles:,} | "
                f"{row.cycles(bifurcated) / row.floor_cycles:.3f} | {row.speedup_cap:.2f}x"
            )
    return rows


def print_goals(rows: list[Row]) -> None:
    """Each speedup goal against the worst measured row and the best any lowering could reach (the cap)."""
    for samples, goal in SPEEDUP_GOALS.items():
        mine = [row for row in rows if row.step.batch == samples]
        speedup = min(row.cycles(DecodeLowering.STANDARD) / row.cycles(DecodeLowering.BIFURCATED) for row in mine)
        cap = max(row.speedup_cap for row in mine)
        verdict = "met" if speedup >= goal else ("not met" if cap >= goal else "not met, above the floor's cap")
        print(f"goal {goal}x at {samples} samples: {verdict} (measured >= {speedup:.2f}x, cap {cap:.2f}x)")


def sweep(config: HardwareConfig, generated: tuple[int, ...]) -> list[Row]:
    print(f"\nsweep: one KV head, d = {DEPTH} (cycles per step, unscaled)")
    print("group | samples | prefix | decoded | standard | bifurcated | model picks | faster | regret")
    rows = []
    for group, samples, prefix, suffix in itertools.product((1, 4), (2, 4, 8, 16, 32), SWEEP_PREFIXES, generated):
        row = measure(one_head_step(samples, prefix, suffix, group), config)
        rows.append(row)
        print(
            f"{group} | {samples} | {prefix} | {suffix} | {row.cycles(DecodeLowering.STANDARD):,} | "
            f"{row.cycles(DecodeLowering.BIFURCATED):,} | {row.choice.value} | {row.faster.value} | "
            f"{100 * row.regret:.1f}%"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generated", type=int, default=256, help="tokens each sample has decoded (its suffix)")
    parser.add_argument(
        "--sweep-generated", type=int, nargs="+", default=[4, 64], help="the sweep's decoded tokens per sample"
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep")
    parser.add_argument("--no-paper-dram", action="store_true", help="skip the table at the paper's 59.8 GB/s")
    args = parser.parse_args()
    started = time.perf_counter()
    config = load_config(None)
    print(
        f"Llama-7B-shaped decode attention: {HEADS} MHA heads, d = {DEPTH}, one head simulated and scaled by "
        f"{HEADS}; {args.generated} tokens decoded per sample; {config.name}, "
        f"{config.target['dram_bandwidth_gbps']} GB/s DRAM"
    )
    rows = main_table(config, args.generated, "per decode step (measured on the simulator):")
    print(f"outputs of the two lowerings equal bit for bit: {all(row.same_output for row in rows)}")
    print_goals(rows)
    failures = [row for row in rows if row.choice is not row.faster or not row.same_output]
    if not args.no_sweep:
        swept = sweep(config, tuple(args.sweep_generated))
        worst = max(swept, key=lambda row: row.regret)
        print(
            f"sweep: the model's choice is the faster lowering in {sum(r.choice is r.faster for r in swept)} of "
            f"{len(swept)} cases; worst regret {100 * worst.regret:.2f}% (limit {100 * REGRET_LIMIT:.0f}%)"
        )
        failures += [row for row in swept if row.regret > REGRET_LIMIT or not row.same_output]
    if not args.no_paper_dram:
        paper = config.with_values({"target.dram_bandwidth_gbps": PAPER_DRAM_GBPS})
        main_table(paper, args.generated, f"the same at the paper's {PAPER_DRAM_GBPS} GB/s DRAM (Table IV):")
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
