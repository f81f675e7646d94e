"""Combined sparsity: SOFA's top-k (keep 0.25) inside a static block mask, against exact masked attention.

Compiles one attention layer (default S = 8192, d = 128, one head) twice at keep 0.25: once with a
constant BigBird-style mask of 10% block density (`sofa_compiler.mask_workloads.bigbird`), once
without a mask; runs both on the simulator on the same Q, K, V; and compares each output with
exact attention under the same mask (float64 numpy). The inputs are sofa-dse's synthetic
ones (`--pattern`: ``broad`` is random Q/K, whose flat attention no top-k fits; ``local`` and
``global`` concentrate it as trained heads do): the relative Frobenius error
``||O - O_exact|| / ||O_exact||`` and the largest absolute error. At keep 1.0 both runs are also
checked (their error is the datapath's rounding alone), so the top-k's share shows.

    python -m benchmarks.masks_combined [--seq 8192] [--depth 128] [--heads 1] [--density 0.1] [--keep 0.25]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import masks_cli
from sofa_compiler.dse.problem import PATTERNS, Layer, synthetic_inputs
from sofa_compiler.mask_workloads import (
    bigbird,
    exact_masked_attention,
    relative_error,
    simulate_masked,
)


def errors(output: np.ndarray, inputs: dict[str, np.ndarray], mask: np.ndarray | None) -> tuple[float, float]:
    """Relative Frobenius and largest absolute error over every simulated head."""
    exact = np.stack(
        [exact_masked_attention(*(inputs[name][0, head] for name in "qkv"), mask) for head in range(output.shape[1])]
    )
    return relative_error(output[0], exact), float(np.abs(output[0] - exact).max())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, default=8192)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--density", type=float, default=0.1, help="the mask's block density")
    parser.add_argument("--keep", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pattern", choices=PATTERNS, default="broad", help="the inputs' attention pattern (sofa-dse's synthetic ones)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mask = bigbird(args.seq, args.density, window_blocks=1, global_blocks=1, seed=args.seed)
    layer = Layer(args.heads, args.seq, args.depth)
    inputs = {
        name: value.astype(np.float32)
        for name, value in synthetic_inputs(layer, PATTERNS.index(args.pattern), args.heads, args.seed).items()
    }
    print(f"S = {args.seq}, d = {args.depth}, heads = {args.heads}, BigBird mask of {args.density:.0%} blocks", end="")
    print(f", {args.pattern} inputs", flush=True)
    print("mask     keep   rel. error   max abs error   cycles")
    for label, layer_mask in ((f"{args.density:.0%} bl.", mask), ("none", None)):
        for keep in (args.keep, 1.0):
            start = time.perf_counter()
            run = simulate_masked(layer_mask, args.heads, args.depth, keep=keep, seq=args.seq, inputs=inputs)
            relative, largest = errors(run.output, inputs, layer_mask)
            print(
                f"{label:<8} {keep:>4.2f}  {relative:>10.3e}  {largest:>14.3e}  {run.cycles:>9}"
                f"   ({time.perf_counter() - start:.0f} s wall)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    masks_cli.run(main)
