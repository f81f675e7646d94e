"""Cost tracks mask density: BigBird-style masks against the same layer with a dense mask, in one run.

Compiles one attention layer (default S = 8192, d = 128, one head, keep 1.0) with a constant
boolean ``attn_mask`` (`sofa_compiler.mask_workloads.bigbird`: 128 x 128 blocks, the diagonal
block, one global block row and column, and random blocks up to the block density) at each
density, and the same layer with an all-true mask, and runs each on the simulator. Prints per
density: simulated cycles and DRAM bytes, their ratio to ``density x`` the dense figure (the
issue's goal: at most 1.3), the tiles the kernel visited (DLZS instructions, one per scored
(query tile, KV tile)) and the mask's non-empty tiles counted directly from the mask: they must
be equal. Density here is the fraction of non-empty tiles, which for these block-aligned masks
equals the block density.

    python -m benchmarks.masks_density [--seq 8192] [--depth 128] [--heads 1] [--densities 0.05,0.1,0.25,0.5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import masks_cli
from sofa_compiler.mask_workloads import MaskedRun, bigbird, nonempty_tiles, simulate_masked

GOAL = 1.3
"""Masked cost over density x dense cost, at most (issue 17)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, default=8192)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--heads", type=int, default=1, help="heads simulated (figures are for these heads)")
    parser.add_argument("--densities", default="0.05,0.1,0.25,0.5", help="BigBird block densities, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def run(mask: np.ndarray, args: argparse.Namespace, label: str) -> MaskedRun:
    print(f"  {label}: compiling and simulating ...", flush=True)
    start = time.perf_counter()
    result = simulate_masked(mask, args.heads, args.depth, keep=1.0)
    print(f"  {label}: {result.cycles} cycles ({time.perf_counter() - start:.1f} s wall)", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    densities = [float(value) for value in args.densities.split(",")]
    print(f"S = {args.seq}, d = {args.depth}, heads = {args.heads}, keep 1.0, BigBird block 128", flush=True)
    dense = run(np.ones((args.seq, args.seq), np.bool_), args, "dense mask")
    unmasked = simulate_masked(None, args.heads, args.depth, keep=1.0, seq=args.seq)
    tiling = next(iter(dense.compiled.tilings.values()))
    rows = []
    for density in densities:
        mask = bigbird(args.seq, density, window_blocks=1, global_blocks=1, seed=args.seed)
        masked = run(mask, args, f"{density:.0%} blocks")
        (plan,) = masked.plans
        lanes, tile = plan.lanes.data, plan.tile.data
        nonempty = nonempty_tiles(mask, lanes, tile)
        total = -(-args.seq // lanes) * -(-args.seq // tile)
        print(f"  plan: {plan.format.data}/{plan.mapping.data}, query tile {lanes} rows, Bc {tile}", flush=True)
        rows.append((density, masked, nonempty, nonempty / total))
    print()
    print(f"dense mask: Bc = {tiling.bc}, {dense.cycles} cycles, {dense.dram_bytes} DRAM bytes", end="")
    print(f" (no mask: {unmasked.cycles} cycles, {unmasked.dram_bytes} DRAM bytes)")
    print("density  tile density  cycles      x dense  / (density x dense)  DRAM bytes   / (density x dense)", end="")
    print("  visited  non-empty")
    failed = False
    for density, masked, nonempty, tile_density in rows:
        cycle_ratio = masked.cycles / (tile_density * dense.cycles)
        byte_ratio = masked.dram_bytes / (tile_density * dense.dram_bytes)
        equal = masked.visited_tiles == nonempty
        failed |= not equal
        print(
            f"{density:>7.0%}  {tile_density:>12.4f}  {masked.cycles:>10}  {masked.cycles / dense.cycles:>7.4f}"
            f"  {cycle_ratio:>19.3f}  {masked.dram_bytes:>11}  {byte_ratio:>19.3f}"
            f"  {masked.visited_tiles:>7}  {nonempty:>9}{'' if equal else '  MISMATCH'}"
        )
    worst = max(max(m.cycles / (d * dense.cycles), m.dram_bytes / (d * dense.dram_bytes)) for _, m, _, d in rows)
    print(f"worst ratio to density x dense: {worst:.3f} (goal <= {GOAL}); tiles visited == non-empty: {not failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    masks_cli.run(main)
