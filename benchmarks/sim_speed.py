"""Simulator speed against numpy dense attention, measured side by side.

Builds the 128-lane SOFA attention program for one head (default S = 4096,
d = 128, keep 1.0), runs it through the functional machine and the timing
model, and times numpy dense attention on the same data in the same run.
Prints each wall time (best of --repeat) and their ratio; the issue's goal is
a ratio of at most 1.5 at keep 1.0.

    python benchmarks/sim_speed.py [--seq 4096] [--depth 128] [--tile 64] [--keep 1.0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from sofa_compiler.isa.builder import AttentionShape, attention_inputs, attention_program
from sofa_compiler.sim.config import load_config
from sofa_compiler.sim.functional import Machine
from sofa_compiler.sim.timing import simulate


def dense_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """The numpy baseline: one fp32 head, softmax over all keys."""
    scores = q @ k.T * scale
    scores -= scores.max(axis=1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights @ v


def best_time(run: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--tile", type=int, default=64, help="KV tile Bc")
    parser.add_argument("--keep", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    config = load_config(None)
    shape = AttentionShape(
        sq=args.seq, skv=args.seq, depth=args.depth, vdepth=args.depth, tile=args.tile, keep=args.keep
    )
    program = attention_program(shape, config_hash=config.config_hash())
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((args.seq, args.depth)).astype(np.float32) for _ in range(3))
    inputs = attention_inputs(shape, q, k, v)
    scale = 1.0 / np.sqrt(args.depth)

    def simulate_program() -> tuple[np.ndarray, int]:
        machine = Machine.from_target(config.as_target_dict(), dram_bytes=program.dram_bytes)
        functional = machine.run(program, inputs, expected_config_hash=config.config_hash())
        return functional.outputs["o"], simulate(functional.events, config).total_cycles

    numpy_time, expected = best_time(lambda: dense_attention(q, k, v, scale), args.repeat)
    sim_time, (out, cycles) = best_time(simulate_program, args.repeat)
    error = float(np.max(np.abs(out - expected)) / np.max(np.abs(expected)))
    print(f"shape: S={args.seq} d={args.depth} Bc={args.tile} keep={args.keep} lanes=128")
    print(f"numpy dense attention: {numpy_time:.3f} s")
    print(f"sofa-sim (functional + timing): {sim_time:.3f} s  ({cycles} simulated cycles)")
    print(f"max relative difference vs numpy: {error:.2e}")
    print(f"ratio sim/numpy: {sim_time / numpy_time:.2f}x")


if __name__ == "__main__":
    main()
