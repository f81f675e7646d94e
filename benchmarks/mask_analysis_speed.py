"""Mask analysis speed: the tile structure and plan of a 32K x 32K constant mask (goal: under 1 s).

Builds constant boolean masks ``[S, S]`` (default S = 32768, 1 GiB each) from
`sofa_compiler.mask_workloads` (BigBird at 10% block density, Longformer, document packing, Mistral's
window, dilated) and times, best of --repeat, what the compiler runs on a constant mask at compile time
(`passes.masked_attention.plan_op_mask`: band detection, the tile structure for each mapping, the
analytical model's pricing of every format) and, inside it, the tile structure alone
(`dialects.numerics.tile_mask_of_array` at the target's query lanes and Bc = 64). The masks
themselves are built before the clock starts.

    python -m benchmarks.mask_analysis_speed [--seq 32768] [--tile 64] [--repeat 3] [--patterns bigbird,...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from benchmarks import masks_cli
from dialects.numerics import tile_mask_of_array
from dialects.sofa import TargetAttr
from passes.masked_attention import plan_op_mask
from passes.tile_plan import AttentionShape, query_lanes
from sofa_compiler.mask_workloads import MaskPatternError, MaskWorkload
from sofa_compiler.sim.config import load_config

GOAL_S = 1.0
PATTERNS: dict[str, dict[str, float]] = {
    "bigbird": {"density": 0.1, "window_blocks": 1},
    "longformer": {"window": 512, "global_tokens": 16},
    "document_packing": {"documents": 8},
    "mistral": {"window": 4096},
    "dilated": {"window": 256, "dilation": 4},
}


def best_of(repeat: int, function: Callable[[], object]) -> tuple[float, float]:
    """The best wall time and the best CPU time (this process, all threads) of `repeat` calls, in seconds.

    On a shared machine the wall time includes waiting for a core; the CPU time does not.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, default=32768)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--tile", type=int, default=64, help="Bc, keys per KV tile")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--patterns", default=",".join(PATTERNS), help=f"comma-separated, of {', '.join(PATTERNS)}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    target = TargetAttr(load_config().as_target_dict())
    shape = AttentionShape(1, 1, 1, args.seq, args.seq, args.depth, args.depth, 1.0, False)
    lanes = query_lanes(target, args.seq)
    print(f"S = {args.seq} ({args.seq * args.seq / 2**30:.2f} GiB boolean mask), lanes = {lanes}, Bc = {args.tile}")
    print("pattern            density  tile structure wall/CPU (s)  whole plan wall/CPU (s)  format/mapping")
    worst = 0.0
    for name in args.patterns.split(","):
        if name not in PATTERNS:
            raise MaskPatternError(f"unknown pattern '{name}' (known: {', '.join(PATTERNS)})")
        print(f"  building {name} ...", flush=True)
        mask = MaskWorkload(name, args.seq, PATTERNS[name]).mask()
        structure_s = best_of(args.repeat, lambda: tile_mask_of_array(mask, lanes, args.tile))
        plan_s = best_of(args.repeat, lambda: plan_op_mask(target, shape, args.tile, mask))
        plan = plan_op_mask(target, shape, args.tile, mask)
        worst = max(worst, plan_s[0])
        print(
            f"{name:<18} {float(mask.mean()):>7.4f}  {structure_s[0]:>13.3f} / {structure_s[1]:>6.3f}"
            f"  {plan_s[0]:>13.3f} / {plan_s[1]:>6.3f}  {plan.chosen.format}/{plan.chosen.mapping}",
            flush=True,
        )
    print(f"slowest whole plan: {worst:.3f} s wall (goal < {GOAL_S} s)")
    return 0


if __name__ == "__main__":
    masks_cli.run(main)
