"""Coordinated tiling against the separate-stage baseline, on the same simulated hardware.

One causal attention layer of Llama-7B's shape (32 heads, d = 128, S = 4096)
as an ONNX `Attention` op, compiled twice at the same keep ratio:

* ``coordinated``: one KV tile shared by DLZS, SADS and SU-FA; A-hat and the
  selection never leave the chip; only the selected K/V rows are fetched.
* ``separate``: what prior accelerators do: A-hat spilled to DRAM, whole-row
  top-k, FlashAttention-2 over densely loaded K/V tiles.

Both run in this one process on the simulator; the table gives DRAM bytes,
cycles and energy side by side, and the coordinated/separate ratios. Heads
run one after another and do the same work, so by default the benchmark
simulates ``--heads 2`` of the 32 and scales cycles, bytes and energy by
32 / heads (say ``--heads 32`` for the whole layer; it takes minutes).

    python benchmarks/coordinated_vs_separate.py [--heads 2] [--seq 4096] [--keep 0.25]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sofa_compiler.driver import compile_model
from sofa_compiler.workloads import attention_model

LAYER_HEADS = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heads", type=int, default=2, help="heads to simulate (the figures are scaled to 32)")
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--keep", type=float, default=0.25)
    args = parser.parse_args()
    model = attention_model(args.heads, args.seq, args.depth, causal=True)
    rng = np.random.default_rng(0)
    shape = (1, args.heads, args.seq, args.depth)
    inputs = {name: rng.standard_normal(shape).astype(np.float32) for name in ("q", "k", "v")}
    scale = LAYER_HEADS / args.heads
    rows = {}
    for pipeline in ("coordinated", "separate"):
        start = time.perf_counter()
        compiled = compile_model(model, keep=args.keep, pipeline=pipeline)
        _, report = compiled.run(inputs)
        total = report.total
        assert total is not None
        rows[pipeline] = {
            "DRAM bytes": (total.dram_read_bytes + total.dram_write_bytes) * scale,
            "cycles": total.total_cycles * scale,
            "energy (uJ)": total.total_energy_pj * scale / 1e6,
            "wall (s)": time.perf_counter() - start,
        }
    print(
        f"Llama-7B attention layer: {LAYER_HEADS} heads (simulated {args.heads}, scaled x{scale:g}), "
        f"d={args.depth}, S={args.seq}, causal, keep={args.keep}"
    )
    print(f"{'':>14} {'coordinated':>16} {'separate':>16} {'coord/sep':>10}")
    for metric in ("DRAM bytes", "cycles", "energy (uJ)"):
        ours, theirs = rows["coordinated"][metric], rows["separate"][metric]
        print(f"{metric:>14} {ours:>16.4g} {theirs:>16.4g} {ours / theirs:>10.3f}")
    reduction = 1 - rows["coordinated"]["DRAM bytes"] / rows["separate"]["DRAM bytes"]
    print(f"memory access: {100 * reduction:.1f}% less with coordinated tiling (paper, §1.5: 79% less)")
    wall = {pipeline: round(row["wall (s)"], 1) for pipeline, row in rows.items()}
    print(f"simulation wall time (s): {wall}")


if __name__ == "__main__":
    main()
