"""SmolLM2-135M perplexity with attention replaced by an oracle top-k: what "keep 0.25" can cost at best.

Runs the transformers model (fp32, on the host, no simulator) on the first S
tokens of the benchmark text with every attention replaced by exact softmax
over the keys one selection keeps (exact scores, or DLZS's with
``--predictor dlzs``), and prints each selection's perplexity ratio to dense
and the true share of valid (causal) keys it keeps. "keep k" is read several
ways, because they differ by a factor of four on this model:

* ``row/valid``: ceil(k * L) keys of a row with L valid keys (the fair
  baseline's and budgeted SADS's reading; 25% of the valid keys);
* ``row/S``: ceil(k * S) keys a row whatever its causal length (rows with
  fewer valid keys keep them all; the issue's "⌈k·S⌉" baseline, 44% at S = 2048);
* ``tile<Bc>/valid``: ceil(k * valid keys of the tile) per KV tile;
* ``tile<Bc>/Bc``: min(ceil(k * Bc), valid keys of the tile) per KV tile (plain SADS, the compiler's keep);
* ``...+sink<N>+win<W>``: the N first keys and the W most recent ones ranked first inside the same count
  (an always-kept attention sink and local window; they do not add keys);
* ``row/valid+floor<F>``: max(ceil(k' * L), min(F, L)) keys a row, k' lowered so that the true share stays k.

Every figure is measured in the run. Progress goes to stderr.

    PYTHONPATH=$PWD:/tmp/wt/smollm-pkgs python benchmarks/smollm2_oracle.py [--seq 2048] [--keep 0.25]
        [--tiles 128,512] [--sink 1] [--window 64] [--floors 64,128,256] [--only NAME,NAME]
        [--predictor exact|dlzs] [--tuning best.json] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the repository's `benchmarks` package (xDSL's wheel ships another)

from benchmarks.smollm2.model import ModelUnavailable, load_model, load_tokenizer, text_token_ids  # noqa: E402
from benchmarks.smollm2.perplexity import perplexity  # noqa: E402

if TYPE_CHECKING:
    import torch

RANK_FIRST = 1e4
"""Added to a forced key's score so that it ranks before every unforced key of its row or tile."""
ORACLE_ATTENTION = "sofa_oracle"
"""The name the selection's attention function is registered under in transformers."""


@dataclass(frozen=True)
class Selection:
    """One reading of "keep k": whole row or per KV tile, how many keys, which keys are forced."""

    name: str
    tile: int | None  # None: whole row
    count: str  # "valid", "S" (row) or "Bc" (tile)
    sink: int = 0
    window: int = 0
    floor: int = 0  # rows keep at least min(floor, L) keys (whole row, count "valid" only)


@dataclass
class Result:
    name: str
    perplexity: float
    ratio: float
    kept: float  # kept keys / valid keys, over every row, head and layer
    late_ratio: float  # the same ratio on the second half of the tokens only (long rows)


def ceil_count(keep: float, length: np.ndarray | int) -> np.ndarray:
    """ceil(keep * length) (at least one), exact for the binary fractions of the usual keeps."""
    return np.maximum(1, np.ceil(keep * np.asarray(length, np.float64) - 1e-9)).astype(np.int64)


def floor_keep(keep: float, floor: int, seq: int) -> float:
    """The keep k' at which max(ceil(k' L), min(F, L)) keeps the share ``keep`` of rows 1..S (bisection)."""
    lengths = np.arange(1, seq + 1)
    target = keep * lengths.sum()
    low, high = 0.0, keep
    for _ in range(50):
        middle = (low + high) / 2
        kept = np.maximum(ceil_count(middle, lengths), np.minimum(floor, lengths)).sum()
        low, high = (middle, high) if kept < target else (low, middle)
    return low


def row_counts(selection: Selection, keep: float, seq: int) -> np.ndarray:
    """Keys each query row keeps under a whole-row selection: [S]."""
    lengths = np.arange(1, seq + 1)
    if selection.count == "S":
        return np.minimum(lengths, ceil_count(keep, seq))
    if selection.floor:
        reduced = floor_keep(keep, selection.floor, seq)
        return np.maximum(ceil_count(reduced, lengths), np.minimum(selection.floor, lengths))
    return ceil_count(keep, lengths)


def tile_counts(selection: Selection, keep: float, seq: int) -> np.ndarray:
    """Keys each query row keeps in each KV tile: [S, Tc] (zero in tiles after the row's last key)."""
    tile = selection.tile
    assert tile is not None
    tiles = -(-seq // tile)
    starts = np.arange(tiles) * tile
    valid = np.clip(np.arange(1, seq + 1)[:, None] - starts[None, :], 0, tile)
    wanted = ceil_count(keep, valid) if selection.count == "valid" else ceil_count(keep, tile)
    return np.where(valid > 0, np.minimum(wanted, valid), 0)


def top_counts(ranked: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Keep the ``counts`` best entries along the last axis (counts broadcast over it; 0: none).

    The cut is the counts-th largest value, so exact ties at the cut keep more (the share kept is counted).
    """
    import torch

    top = torch.topk(ranked, int(counts.max()), dim=-1).values
    cut = top.gather(-1, (counts - 1).clamp(min=0).expand(*top.shape[:-1], 1))
    return (ranked >= cut) & (counts > 0)


def keep_mask(scores: torch.Tensor, selection: Selection, keep: float) -> torch.Tensor:
    """The kept keys [heads, S, S] of causal ``scores`` [heads, S, S] (-inf above the diagonal)."""
    import torch

    seq = scores.shape[-1]
    valid = torch.isfinite(scores)
    distance = torch.arange(seq)[:, None] - torch.arange(seq)[None, :]
    forced = (torch.arange(seq)[None, :] < selection.sink) | (distance < selection.window)
    ranked = scores.double()  # fp64: forced keys (+RANK_FIRST) keep distinct values
    ranked = torch.where(forced & valid, ranked + RANK_FIRST, ranked)
    if selection.tile is None:
        counts = torch.from_numpy(row_counts(selection, keep, seq))
        return top_counts(ranked, counts[:, None]) & valid
    tile = selection.tile
    tiles = -(-seq // tile)
    padded = torch.nn.functional.pad(ranked, (0, tiles * tile - seq), value=-math.inf)
    counts = torch.from_numpy(tile_counts(selection, keep, seq))
    tiled = top_counts(padded.reshape(*scores.shape[:-1], tiles, tile), counts[:, :, None])
    kept = tiled.reshape(*scores.shape[:-1], tiles * tile)[..., :seq]
    return kept & valid


class OracleAttention:
    """A transformers attention function: causal softmax over the keys a selection keeps; counts kept keys."""

    def __init__(
        self, selection: Selection | None, keep: float, predictor: str, layer_keeps: dict[int, float] | None = None
    ) -> None:
        self.selection, self.keep, self.predictor = selection, keep, predictor
        self.layer_keeps = layer_keeps or {}
        self.kept = 0
        self.valid = 0

    def predicted(self, query: torch.Tensor, key: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.predictor == "exact":
            return scores
        import torch

        from dialects.numerics import predict_scores

        q, k = query[0].double().numpy(), key[0].double().numpy()
        predicted = torch.from_numpy(predict_scores(self.predictor, q, k).astype(np.float32))
        return torch.where(torch.isfinite(scores), predicted, -math.inf)

    def __call__(
        self,
        module: Any,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: Any,
        scaling: float,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        import torch
        from transformers.models.llama.modeling_llama import repeat_kv

        key = repeat_kv(key, module.num_key_value_groups)
        value = repeat_kv(value, module.num_key_value_groups)
        seq = query.shape[-2]
        causal = torch.ones(seq, seq, dtype=torch.bool).tril()
        scores = torch.where(causal, torch.matmul(query, key.transpose(2, 3)) * scaling, -math.inf)
        if self.selection is not None:
            mask = keep_mask(
                self.predicted(query, key, scores)[0], self.selection, self.layer_keeps.get(module.layer_idx, self.keep)
            )[None]
            scores = torch.where(mask, scores, -math.inf)
            self.kept += int(mask.sum())
            self.valid += int(causal.sum()) * mask.shape[1]
        weights = torch.softmax(scores, dim=-1)
        return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def selections(args: argparse.Namespace) -> list[Selection]:
    extra = f"+sink{args.sink}+win{args.window}"
    chosen = [Selection("row/valid", None, "valid"), Selection("row/S", None, "S")]
    chosen += [Selection(f"row/valid+floor{floor}", None, "valid", floor=floor) for floor in args.floors]
    chosen.append(Selection(f"row/valid{extra}", None, "valid", args.sink, args.window))
    for tile in args.tiles:
        for count in ("valid", "Bc"):
            chosen.append(Selection(f"tile{tile}/{count}", tile, count))
            chosen.append(Selection(f"tile{tile}/{count}{extra}", tile, count, args.sink, args.window))
    return chosen


def register(attention: OracleAttention) -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ORACLE_ATTENTION, attention)


def run(model: Any, input_ids: np.ndarray, attention: OracleAttention) -> np.ndarray:
    import torch

    register(attention)
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(input_ids), use_cache=False).logits.numpy()


def late_perplexity(logits: np.ndarray, input_ids: np.ndarray) -> float:
    """Perplexity of the second half of the tokens (rows with at least S/2 valid keys)."""
    half = input_ids.shape[-1] // 2
    return perplexity(logits[:, half - 1 :], input_ids[:, half - 1 :])


def layer_keeps(tuning: Path | None) -> dict[int, float]:
    """Per-layer keep ratios of a `sofa-dse` tuning file (its tiles are not used: whole rows and --tiles)."""
    if tuning is None:
        return {}
    from sofa_compiler.tuning import load_tuning

    return {index: entry.keep for index, entry in load_tuning(tuning).layers.items() if entry.keep is not None}


def measure_all(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[float, list[Result]]:
    import torch

    torch.set_num_threads(args.threads)
    input_ids = text_token_ids(load_tokenizer(), args.seq)
    model = load_model("eager")
    dense = OracleAttention(None, 1.0, "exact")
    register(dense)
    model.set_attn_implementation(ORACLE_ATTENTION)
    logits = run(model, input_ids, dense)
    reference, late_reference = perplexity(logits, input_ids), late_perplexity(logits, input_ids)
    log(f"dense: perplexity {reference:.4f}")
    results = []
    for selection in selections(args):
        if args.only is not None and selection.name not in args.only.split(","):
            continue
        start = time.perf_counter()
        attention = OracleAttention(selection, args.keep, args.predictor, layer_keeps(args.tuning))
        logits = run(model, input_ids, attention)
        ppl = perplexity(logits, input_ids)
        result = Result(
            selection.name,
            ppl,
            ppl / reference,
            attention.kept / attention.valid,
            late_perplexity(logits, input_ids) / late_reference,
        )
        log(f"{result.name}: ratio {result.ratio:.4f}, kept {result.kept:.3f} ({time.perf_counter() - start:.0f} s)")
        results.append(result)
    return reference, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--keep", type=float, default=0.25)
    parser.add_argument("--tiles", default="128,512", help="KV tiles Bc, comma-separated")
    parser.add_argument("--sink", type=int, default=1, help="first keys always kept (inside the count)")
    parser.add_argument("--window", type=int, default=64, help="most recent keys always kept (inside the count)")
    parser.add_argument("--floors", default="64,128,256", help="least keys a whole row keeps (share held at keep)")
    parser.add_argument("--only", help="measure only these selections (names, comma-separated)")
    parser.add_argument("--predictor", choices=("exact", "dlzs"), default="exact")
    parser.add_argument("--tuning", type=Path, help="per-layer keep ratios from a sofa-dse tuning file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    args.tiles = [int(t) for t in args.tiles.split(",") if t]
    args.floors = [int(f) for f in args.floors.split(",") if f]
    if not 0.0 < args.keep <= 1.0:
        parser.error("--keep must be in (0, 1]")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        reference, results = measure_all(args, log)
    except (ModelUnavailable, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    keep = f"per-layer keep of {args.tuning}" if args.tuning else f"keep {args.keep}"
    print(f"SmolLM2-135M, S = {args.seq}, {keep}, {args.predictor} scores; dense perplexity {reference:.4f}")
    print("every figure below was measured in this run (fp32 host model, no simulator)\n")
    print("| selection | perplexity | ratio to dense | ratio, tokens S/2..S | share of valid keys kept |")
    print("|---|---:|---:|---:|---:|")
    for result in results:
        print(
            f"| {result.name} | {result.perplexity:.4f} | {result.ratio:.4f} | {result.late_ratio:.4f} "
            f"| {result.kept:.3f} |"
        )
    if args.json is not None:
        figures = {"seq": args.seq, "keep": args.keep, "tuning": str(args.tuning), "predictor": args.predictor}
        figures["dense"] = reference
        args.json.write_text(json.dumps({**figures, "results": [asdict(r) for r in results]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
