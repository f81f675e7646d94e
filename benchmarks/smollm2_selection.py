"""Why per-tile top-k loses more than whole-row top-k on a real LM: softmax mass each selection misses.

Captures every accelerated attention's Q, K and V of an ONNX causal LM on its
calibration tokens (one dense forward pass, kernel calls answered by the
golden numerics: `sofa_compiler.dse.model`), then, on every ``--row-step``-th
query row of each layer, measures the exact softmax mass that each selection
leaves out (mean over rows and heads), and the share of the keys it keeps:

* ``row``: whole-row top-k, ceil(keep * valid keys) per row (the baseline's);
* ``tile<Bc>``: SADS per KV tile, ceil(keep * Bc) per tile (`numerics.sads`);
* ``tile<Bc>+sink``: the same with key 0 ranked first in its tile (an always-kept attention sink);
* ``tile<Bc>+window<W>``: the same with the W most recent keys ranked first (a kept local window);
* ``row@tile<Bc>``: whole-row top-n with n = what per-tile kept in that row (the same budget, free to move
  between tiles);
* ``tile<Bc>+far<F>``: budgeted SADS (`numerics.sads_budget`, the compiler's ``far`` option): far tiles keep
  ceil(F * m) keys, the rest of the row's budget moves to its last two tiles.

Selections rank exact scores (``--predictor exact``, the oracle) or DLZS's
(``dlzs``). Every figure is measured in the run. Progress goes to stderr.

    python benchmarks/smollm2_selection.py --onnx smollm2-135m-s2048-opset23-sdpa.onnx --inputs tokens-s2048.npz
        [--keep 0.25] [--tiles 128,512] [--window 16] [--row-step 8] [--predictor exact|dlzs] [--save-qkv F.npz]
        [--far 0.5,0.75]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dialects import numerics  # noqa: E402
from sofa_compiler.dse.model import Captured, GoldenRunner, sampled_rows  # noqa: E402
from sofa_compiler.dse.model_search import read_inputs  # noqa: E402
from sofa_compiler.dse.problem import DseError  # noqa: E402

RANK_FIRST = 1e9
"""Added to a forced key's predicted score so that SADS ranks it first in its tile."""


def capture(model: Path, inputs_file: Path, log: Callable[[str], None]) -> list[Captured]:
    from sofa_compiler.driver import compile_model

    compiled = compile_model(model, keep=1.0)
    inputs = read_inputs(str(inputs_file), compiled.input_names())
    runner = GoldenRunner(compiled.programs, compiled.config, capture=True)
    start = time.perf_counter()
    compiled.run(inputs, runner=runner)
    log(f"captured {len(runner.captured)} attention layers in {time.perf_counter() - start:.0f} s")
    return runner.captured


def row_top(scores: np.ndarray, valid: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Keep each row's ``counts`` best valid scores (ties: lower index first)."""
    ranked = np.where(valid, scores, -np.inf)
    order = np.argsort(-ranked, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[-1])[None, :], axis=-1)
    return (ranks < counts[:, None]) & valid


def tile_top(
    scores: np.ndarray, valid: np.ndarray, tile: int, keep: float, forced: np.ndarray | None, far: float = 1.0
) -> np.ndarray:
    """SADS per KV tile (`numerics.sads`; budgeted when ``far`` < 1), with ``forced`` keys ranked first."""
    ranked = np.where(forced, scores + RANK_FIRST, scores) if forced is not None else scores
    indices = numerics.sads(ranked, valid, tile, keep, np.inf, far).reshape(len(scores), -1)
    mask = np.zeros(scores.shape, bool)
    rows = np.broadcast_to(np.arange(len(scores))[:, None], indices.shape)
    chosen = indices != numerics.NO_INDEX
    mask[rows[chosen], indices[chosen]] = True
    return mask


def layer_study(call: Captured, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Per selection: (mean missed softmax mass, share of valid keys kept) on the sampled rows of one layer."""
    rows = sampled_rows(call.q.shape[2], args.row_step)
    heads = call.q.shape[1]
    k = numerics.expand_kv_heads(call.k, heads)[0].astype(np.float64)
    bias = call.bias(rows)
    valid = np.isfinite(bias)
    length = k.shape[1]
    recent = (rows[:, None] - np.arange(length)[None, :] < args.window) & valid
    sink = np.zeros_like(valid)
    sink[:, 0] = True
    results: dict[str, list[tuple[float, float]]] = {}
    for head in range(heads):
        q = call.q[0, head, rows].astype(np.float64)
        logits = q @ k[head].T * call.spec.scale + bias
        weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        predicted = numerics.predict_scores(args.predictor, q, k[head]).astype(np.float64)
        selections = {"row": row_top(predicted, valid, np.ceil(args.keep * valid.sum(-1) - 1e-9).astype(int))}
        for tile in args.tiles:
            plain = tile_top(predicted, valid, tile, args.keep, None)
            selections[f"tile{tile}"] = plain
            selections[f"tile{tile}+sink"] = tile_top(predicted, valid, tile, args.keep, sink & valid)
            selections[f"tile{tile}+window{args.window}"] = tile_top(predicted, valid, tile, args.keep, recent)
            selections[f"row@tile{tile}"] = row_top(predicted, valid, plain.sum(-1))
            for far in args.far:
                selections[f"tile{tile}+far{far:g}"] = tile_top(predicted, valid, tile, args.keep, None, far)
        for name, mask in selections.items():
            missed = float(np.mean(1.0 - (weights * mask).sum(-1)))
            results.setdefault(name, []).append((missed, mask.sum() / valid.sum()))
    return {name: tuple(np.mean(values, axis=0)) for name, values in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onnx", type=Path, help="the model (input_ids [1, S] -> logits)")
    parser.add_argument("--inputs", type=Path, help="its calibration inputs (.npz, one array per input)")
    parser.add_argument("--qkv", type=Path, help="Q/K/V saved by an earlier run's --save-qkv (skips the capture)")
    parser.add_argument("--save-qkv", type=Path, help="save the captured Q/K/V here")
    parser.add_argument("--keep", type=float, default=0.25)
    parser.add_argument("--tiles", default="128,512", help="KV tiles Bc, comma-separated")
    parser.add_argument("--window", type=int, default=16, help="recent keys of the local-window variant")
    parser.add_argument("--row-step", type=int, default=8)
    parser.add_argument("--predictor", choices=("exact", "dlzs"), default="exact")
    parser.add_argument("--far", default="0.5,0.75", help="budgeted SADS's far-tile ratios, comma-separated")
    args = parser.parse_args(argv)
    args.tiles = [int(t) for t in args.tiles.split(",")]
    args.far = [float(f) for f in args.far.split(",")] if args.far else []

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        if args.qkv is not None:
            calls = load_qkv(args.qkv)
        elif args.onnx is not None and args.inputs is not None:
            calls = capture(args.onnx, args.inputs, log)
        else:
            parser.error("give --onnx MODEL --inputs CALIB.npz, or --qkv FILE.npz")
        if args.save_qkv is not None:
            save_qkv(args.save_qkv, calls)
    except (DseError, OSError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    table: list[dict[str, tuple[float, float]]] = []
    for index, call in enumerate(calls):
        table.append(layer_study(call, args))
        log(f"layer {index}: " + ", ".join(f"{n} {m:.4f}" for n, (m, _) in table[-1].items()))
    print(f"softmax mass missed at keep {args.keep} ({args.predictor} scores, every {args.row_step}-th query row)")
    print("every figure below was measured in this run\n")
    names = list(table[0])
    print("| selection | mean missed mass | worst layer | keys kept |")
    print("|---|---:|---:|---:|")
    for name in names:
        missed = [layer[name][0] for layer in table]
        kept = np.mean([layer[name][1] for layer in table])
        print(f"| {name} | {np.mean(missed):.4f} | {max(missed):.4f} (layer {int(np.argmax(missed))}) | {kept:.3f} |")
    return 0


def save_qkv(path: Path, calls: list[Captured]) -> None:
    arrays = {f"layer{i}.{n}": getattr(c, n) for i, c in enumerate(calls) for n in "qkv"}
    specs = np.array([(c.spec.causal, c.spec.scale) for c in calls], np.float64)
    np.savez(path, specs=specs, **arrays)


def load_qkv(path: Path) -> list[Captured]:
    from sofa_compiler.dse.model import KernelSpec

    with np.load(path) as archive:
        specs = archive["specs"]
        return [
            Captured(
                archive[f"layer{i}.q"],
                archive[f"layer{i}.k"],
                archive[f"layer{i}.v"],
                KernelSpec(bool(causal), float(scale)),
            )
            for i, (causal, scale) in enumerate(specs)
        ]


if __name__ == "__main__":
    sys.exit(main())
