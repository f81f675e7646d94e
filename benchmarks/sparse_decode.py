"""Sparse decode against dense decode: DRAM bytes per decoded token, on the simulator (issue 18).

One decode step of one sample at context 8K (the cache holds 8192 keys):
dense decode (`passes.lower_to_isa.decode`, every K/V row) against sparse
decode (`passes.lower_to_isa.decode_sparse`: the predictor's cache of 4-bit K
codes, DLZS + SADS per 64-key tile, only the selected K/V rows gathered) at
several keep ratios. Two layer shapes: Llama-7B (32 MHA heads, d = 128; one
head simulated and scaled by 32) and SmolLM2-135M (9 query heads on 3 KV heads,
d = 64; all simulated). Per layer and step it prints the DRAM bytes (= per
decoded token: one step decodes one token), their ratio to dense, the cycles and
energy, and the attention output against dense decode's (max error relative to
max|O|, and the cosine) on N(0, 1) data, whose flat attention is the hardest case
for selection. Token agreement and perplexity of generated text need a model
and the generation driver (issue 18's `sofa-generate`): not measured here.

    python benchmarks/sparse_decode.py [--context 8192] [--keep 1.0 0.5 0.25]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from passes.lower_to_isa.decode import DecodeLowering, DecodeStep
from passes.lower_to_isa.decode_sparse import SparseDecode
from sofa_compiler.accuracy import cosine_similarity
from sofa_compiler.decode import run_decode
from sofa_compiler.sim.config import load_config

GOAL_KEEP, GOAL_RATIO = 0.25, 0.4
"""Issue 18: at keep 0.25 and 8K context, at most 0.4x dense decode's DRAM bytes per token."""


@dataclass(frozen=True)
class Layer:
    name: str
    q_heads: int
    kv_heads: int
    depth: int
    simulated_kv_heads: int

    @property
    def scale(self) -> int:
        return self.kv_heads // self.simulated_kv_heads


LAYERS = (Layer("Llama-7B", 32, 32, 128, 1), Layer("SmolLM2-135M", 9, 3, 64, 3))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--context", type=int, default=8192)
    parser.add_argument("--keep", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    args = parser.parse_args()
    config = load_config(None)
    rng = np.random.default_rng(0)
    print(f"one decode step (one token) at context {args.context}, per layer; {config.name}")
    print("layer | keep | DRAM bytes/token | vs dense | cycles | energy uJ | max err / max|O| | cosine")
    goal_met = True
    for layer in LAYERS:
        group = layer.q_heads // layer.kv_heads
        heads = layer.simulated_kv_heads
        step = DecodeStep(1, group * heads, heads, layer.depth, (args.context,), 0)
        q = rng.standard_normal((1, step.q_heads, 1, step.depth), np.float32)
        k = [rng.standard_normal((heads, args.context, step.depth), np.float32)]
        v = [rng.standard_normal((heads, args.context, step.depth), np.float32)]
        dense = run_decode(step, DecodeLowering.STANDARD, q, k, v, config)
        dense_bytes = (dense.report.dram_read_bytes + dense.report.dram_write_bytes) * layer.scale
        print(
            f"{layer.name} | dense | {dense_bytes:,} | 1.000 | {dense.report.total_cycles * layer.scale:,} | "
            f"{dense.report.total_energy_pj * layer.scale / 1e6:.2f} | 0 | 1"
        )
        for keep in args.keep:
            sparse = run_decode(step, SparseDecode(keep), q, k, v, config)
            sparse_bytes = (sparse.report.dram_read_bytes + sparse.report.dram_write_bytes) * layer.scale
            error = float(np.max(np.abs(sparse.output - dense.output)) / np.max(np.abs(dense.output)))
            cosine = cosine_similarity(sparse.output, dense.output)
            energy_uj = sparse.report.total_energy_pj * layer.scale / 1e6
            print(
                f"{layer.name} | {keep} | {sparse_bytes:,} | {sparse_bytes / dense_bytes:.3f} | "
                f"{sparse.report.total_cycles * layer.scale:,} | {energy_uj:.2f} | {error:.3f} | {cosine:.4f}"
            )
            if keep == GOAL_KEEP and layer.name == LAYERS[0].name:
                goal_met = sparse_bytes / dense_bytes <= GOAL_RATIO
    print(f"goal (Llama-7B, keep {GOAL_KEEP}: <= {GOAL_RATIO}x dense): {'met' if goal_met else 'NOT met'}")
    return 0 if goal_met else 1


if __name__ == "__main__":
    sys.exit(main())
