"""Accuracy of SOFA's sparse attention against keep ratio, measured side by side.

For keep ratios 0.5, 0.25 and 0.1, on one head (S = 1024, d = 64, Bc = 64),
prints the output relative error and cosine similarity against exact dense
attention, and the recall of DLZS + SADS's selection against the exact
per-tile top-k (what an oracle predictor with the same tiling would keep).
Two input kinds: i.i.d. Gaussian (flat attention, the hard case) and
"clustered" inputs where each query has a few strongly related keys, as
trained models do (paper §3.1, the distributed cluster effect).

    python benchmarks/sparsity_accuracy.py [--seq 1024] [--depth 64] [--tile 64]
"""

from __future__ import annotations

import argparse

import numpy as np

from dialects import numerics

KEEPS = (1.0, 0.5, 0.25, 0.1)


def gaussian(rng: np.random.Generator, seq: int, depth: int) -> tuple[np.ndarray, ...]:
    return tuple(rng.standard_normal((1, 1, seq, depth)).astype(np.float32) for _ in range(3))


def clustered(rng: np.random.Generator, seq: int, depth: int) -> tuple[np.ndarray, ...]:
    """Keys drawn around a few centres; each query points at one centre."""
    centres = rng.standard_normal((16, depth)) * 2.0
    k = centres[rng.integers(0, 16, seq)] + rng.standard_normal((seq, depth)) * 0.7
    q = centres[rng.integers(0, 16, seq)] + rng.standard_normal((seq, depth)) * 0.7
    v = rng.standard_normal((seq, depth))
    return tuple(a[None, None].astype(np.float32) for a in (q, k, v))


def selection_recall(predicted: np.ndarray, exact: np.ndarray) -> float:
    """Mean over rows and tiles of |predicted ∩ exact| / |exact| (ignoring empty slots)."""
    hits = total = 0
    flat_p = predicted.reshape(-1, predicted.shape[-1])
    flat_e = exact.reshape(-1, exact.shape[-1])
    for p, e in zip(flat_p, flat_e, strict=True):
        wanted = set(e[e >= 0].tolist())
        hits += len(wanted & set(p[p >= 0].tolist()))
        total += len(wanted)
    return hits / total if total else 1.0


def measure(q: np.ndarray, k: np.ndarray, v: np.ndarray, keep: float, tile: int) -> tuple[float, float, float]:
    scale = 1.0 / np.sqrt(q.shape[-1])
    bias = numerics.mask_to_bias(None, False, q.shape[2], k.shape[2])
    dense = numerics.dense_attention(q, k, v, bias, scale).astype(np.float64)
    sparse = numerics.sofa_attention(q, k, v, bias, scale, keep, tile, np.inf).astype(np.float64)
    error = float(np.linalg.norm(sparse - dense) / np.linalg.norm(dense))
    cosine = float(np.sum(sparse * dense) / (np.linalg.norm(sparse) * np.linalg.norm(dense)))
    valid = np.ones((1, 1, q.shape[2], k.shape[2]), dtype=bool)
    predicted = numerics.sads(numerics.predict_scores("dlzs", q, k), valid, tile, keep, np.inf)
    exact = numerics.sads(numerics.exact_score(q, k), valid, tile, keep, np.inf)
    return error, cosine, selection_recall(predicted, exact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--tile", type=int, default=64)
    args = parser.parse_args()
    print(f"S={args.seq} d={args.depth} Bc={args.tile}, predictor DLZS, no sphere clip")
    print(f"{'inputs':>10} {'keep':>5} {'rel. error':>10} {'cosine':>8} {'top-k recall':>12}")
    for name, make in (("gaussian", gaussian), ("clustered", clustered)):
        q, k, v = make(np.random.default_rng(0), args.seq, args.depth)
        for keep in KEEPS:
            error, cosine, recall = measure(q, k, v, keep, args.tile)
            print(f"{name:>10} {keep:>5.2f} {error:>10.2e} {cosine:>8.5f} {recall:>12.3f}")


if __name__ == "__main__":
    main()
