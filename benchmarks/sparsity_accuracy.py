"""SOFA's selection in the paper's own metrics, measured side by side on one synthetic head.

Prints, for the `gaussian` and `clustered` inputs of `benchmarks/report/selection.py`
(tokens and projections, so DLZS also predicts in two phases as the hardware
does on demand):

1. per keep ratio and predictor: the attention output's relative error, the
   index error and recall against the exact whole-row top-k, and the recall
   against the exact per-tile top-k;
2. the index error against the number of SADS segments n (Bc = S / n), keep 0.25;
3. the sphere radius against the share of entries sorted;
4. the paper's own figures next to ours (SADS at S = 1024, n = 4, top 25 %;
   RASS on its Fig. 15 example).

Every figure is measured in the run.

    python benchmarks/sparsity_accuracy.py [--seq 1024] [--depth 64] [--tile 64]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the repository's `benchmarks` package (xDSL's wheel ships another)

from benchmarks.report.accuracy import keep_sweep, radius_sweep, segment_sweep  # noqa: E402
from benchmarks.report.calibration import calibration  # noqa: E402
from benchmarks.report.selection import INPUTS  # noqa: E402
from dialects import numerics  # noqa: E402

KEEPS = (1.0, 0.5, 0.25, 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--tile", type=int, default=64)
    args = parser.parse_args()
    inputs = {name: make(np.random.default_rng(0), args.seq, args.depth) for name, make in INPUTS.items()}
    print(f"S={args.seq} d={args.depth} Bc={args.tile} (n={numerics.tile_count(args.seq, args.tile)}), no sphere clip")
    columns = ("rel. error", "index err", "row rec.", "tile rec.")
    print(f"{'inputs':>10} {'predictor':>12} {'keep':>5} " + " ".join(f"{c:>10}" for c in columns))
    for name, heads in inputs.items():
        for p in keep_sweep(name, heads, args.tile, KEEPS):
            print(
                f"{name:>10} {p.predictor:>12} {p.keep:>5.2f} {p.rel_error:>10.2e} {p.index_error:>10.3f} "
                f"{p.row_recall:>10.3f} {p.tile_recall:>10.3f}"
            )
    print(f"\nindex error against the number of segments n (S={args.seq}, keep 0.25)")
    for name, heads in inputs.items():
        for p in segment_sweep(name, heads):
            print(f"{name:>10} {p.predictor:>12} n={p.segments:<4} {p.index_error:.3f}")
    print(f"\nsphere radius (logits), Bc={args.tile}, keep 0.25")
    for name, heads in inputs.items():
        for p in radius_sweep(name, heads, args.tile):
            radius = "inf" if math.isinf(p.radius) else f"{p.radius:g}"
            print(
                f"{name:>10} {p.predictor:>12} r={radius:<4} sorted {p.sorted_share:.3f} "
                f"index error {p.index_error:.3f} row recall {p.row_recall:.3f} rel. error {p.rel_error:.2e}"
            )
    print("\nthe paper's figures")
    for row in calibration(args.depth):
        print(f"{row.figure}: paper {row.paper}; measured {row.measured} ({row.how})")


if __name__ == "__main__":
    main()
