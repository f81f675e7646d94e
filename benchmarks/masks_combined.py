"""Combined sparsity: SOFA's top-k (keep 0.25) inside a static block mask, against exact masked attention.

Compiles one attention layer (default S = 8192, d = 128, one head) twice at keep 0.25: once with a
constant BigBird-style mask of 10% block density (`sofa_compiler.mask_workloads.bigbird`), once
without a mask; runs both on the simulator on the same Q, K, V; and compares each output with
exact attention under the same mask (float64 numpy): the relative Frobenius error
``||O - O_exact|| / ||O_exact||`` and the largest absolute error. At keep 1.0 both runs are also
checked (their error is the datapath's rounding alone), so the top-k's share shows.

    python benchmarks/masks_combined.py [--seq 8192] [--depth 128] [--heads 1] [--density 0.1] [--keep 0.25]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from sofa_compiler.mask_workloads import MaskPatternError, bigbird, simulate_masked
from sofa_compiler.workloads import random_inputs

ROWS = 1024
"""Query rows of the exact reference computed at a time (keeps its float64 scores small)."""


def exact_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Exact attention of one head in float64 (rows without a visible key give zeros, as the spec says)."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    out = np.zeros((q.shape[0], v.shape[1]))
    for start in range(0, q.shape[0], ROWS):
        scores = q[start : start + ROWS] @ k.T / np.sqrt(q.shape[1])
        if mask is not None:
            scores = np.where(mask[start : start + ROWS], scores, -np.inf)
        top = scores.max(axis=1, keepdims=True)
        weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
        total = weights.sum(axis=1, keepdims=True)
        out[start : start + ROWS] = (weights @ v) / np.where(total > 0, total, 1.0)  # a row of zeros stays zero
    return out


def errors(output: np.ndarray, inputs: dict[str, np.ndarray], mask: np.ndarray | None) -> tuple[float, float]:
    """Relative Frobenius and largest absolute error over every simulated head."""
    diff_sq = ref_sq = largest = 0.0
    for head in range(output.shape[1]):
        exact = exact_attention(*(inputs[name][0, head] for name in "qkv"), mask)
        diff = output[0, head].astype(np.float64) - exact
        diff_sq, ref_sq = diff_sq + float(np.sum(diff**2)), ref_sq + float(np.sum(exact**2))
        largest = max(largest, float(np.abs(diff).max()))
    return float(np.sqrt(diff_sq / ref_sq)), largest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, default=8192)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--density", type=float, default=0.1, help="the mask's block density")
    parser.add_argument("--keep", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mask = bigbird(args.seq, args.density, window_blocks=1, global_blocks=1, seed=args.seed)
    inputs = random_inputs(args.heads, args.seq, args.depth)
    print(
        f"S = {args.seq}, d = {args.depth}, heads = {args.heads}, mask: BigBird {args.density:.0%} blocks", flush=True
    )
    print("mask     keep   rel. error   max abs error   cycles")
    for label, layer_mask in ((f"{args.density:.0%} bl.", mask), ("none", None)):
        for keep in (args.keep, 1.0):
            start = time.perf_counter()
            run = simulate_masked(layer_mask, args.heads, args.depth, keep=keep, seq=args.seq)
            relative, largest = errors(run.output, inputs, layer_mask)
            print(
                f"{label:<8} {keep:>4.2f}  {relative:>10.3e}  {largest:>14.3e}  {run.cycles:>9}"
                f"   ({time.perf_counter() - start:.0f} s wall)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MaskPatternError as error:
        sys.exit(f"error: {error}")
