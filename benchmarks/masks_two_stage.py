"""The two-stage search of a masked layer: where the analytical model's first choice is not the simulator's best.

Runs `sofa_compiler.dse.mask_search.two_stage_search` on one masked layer (default: Longformer,
window 512 and 16 global tokens, S = 4096, d = 128, one head, keeps 1.0 / 0.5 / 0.25, sofa-dse's
``local`` synthetic inputs): stage one prices every (Bc, format, mapping) with the analytical
model and keeps those within --margin of the cheapest per keep; stage two simulates the survivors.
Prints every survivor with the model's estimate, the simulated cycles and their ratio, then per
keep the model's first choice against the simulator's fastest survivor.

    python -m benchmarks.masks_two_stage [--pattern longformer] [--seq 4096] [--depth 128] [--keeps 1,0.5,0.25]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import masks_cli
from sofa_compiler.dse.mask_search import two_stage_search
from sofa_compiler.dse.problem import PATTERNS, Layer, synthetic_inputs
from sofa_compiler.mask_workloads import MaskWorkload

DEFAULT_PARAMS = {
    "longformer": {"window": 512, "global_tokens": 16},
    "bigbird": {"density": 0.1, "window_blocks": 1},
    "mistral": {"window": 1024},
    "dilated": {"window": 64, "dilation": 4},
    "document_packing": {"documents": 8},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pattern", choices=DEFAULT_PARAMS, default="longformer")
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--keeps", default="1,0.5,0.25")
    parser.add_argument("--margin", type=float, default=1.25, help="stage one keeps estimates within this of the best")
    parser.add_argument("--inputs", choices=PATTERNS, default="local", help="sofa-dse's synthetic attention pattern")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keeps = [float(value) for value in args.keeps.split(",")]
    workload = MaskWorkload(args.pattern, args.seq, DEFAULT_PARAMS[args.pattern])
    layer = Layer(args.heads, args.seq, args.depth)
    inputs = {
        name: value.astype(np.float32)
        for name, value in synthetic_inputs(layer, PATTERNS.index(args.inputs), args.heads, 0).items()
    }
    print(f"{workload.name}, d = {args.depth}, heads = {args.heads}, {args.inputs} inputs", flush=True)
    start = time.perf_counter()
    result = two_stage_search(workload.mask(), args.heads, args.depth, keeps, args.margin, inputs=inputs, progress=True)
    wall = time.perf_counter() - start
    print(f"stage one priced {len(result.priced)} candidates, {len(result.survivors)} survived; {wall:.0f} s in all")
    print("keep  Bc   format/mapping  model cycles  simulated   model/sim  rel. error")
    for m in sorted(result.measured, key=lambda m: (-m.keep, m.cycles)):
        print(
            f"{m.keep:>4g}  {m.tile:>3}  {m.format + '/' + m.mapping:<14}  {m.estimated_cycles:>12.0f}"
            f"  {m.cycles:>9}  {m.model_over_simulator:>9.3f}  {m.error:>10.3e}"
        )
    ratios = [m.model_over_simulator for m in result.measured]
    print(f"model/simulator over all survivors: {min(ratios):.3f} .. {max(ratios):.3f}")
    for keep in keeps:
        first, fastest = result.model_choice(keep), result.fastest(keep)
        mine = next(m for m in result.measured if (m.tile, m.keep) == (first.tile, keep))
        verdict = "the same" if mine.tile == fastest.tile else f"{mine.cycles / fastest.cycles:.3f}x the fastest"
        print(
            f"keep {keep:g}: model's first choice Bc {first.tile} {first.candidate.format}/{first.candidate.mapping}"
            f" ({mine.cycles} cycles simulated), simulator's fastest Bc {fastest.tile} {fastest.format}/"
            f"{fastest.mapping} ({fastest.cycles} cycles): {verdict}"
        )
    return 0


if __name__ == "__main__":
    masks_cli.run(main)
