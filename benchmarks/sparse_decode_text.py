"""Sparse decode against dense decode on real text: token match over N greedy tokens and perplexity (issue 18).

SmolLM2-135M's prefill and decode-step graphs (`examples/smollm2/export_cached.py`, prompt S,
cache capacity C) on the simulator, every attention on the accelerator. The prompt is the
first S tokens of the bundled English text (benchmarks/data/english_text/python_execution_model.txt,
written by export_cached.py --tokens). The prefill runs at keep 1.0 for every row (the same
first token), the decode steps at each keep: keep 1.0 on the dense decode kernel, keep < 1 on
the sparse decode kernel (`passes/lower_to_isa/decode_sparse.py`: DLZS over the cache's 4-bit
key codes, SADS keeps ceil(keep * 64) keys of each 64-key tile per query, only the union of the
group's selected K/V rows fetched). Per keep:

* greedy generation of N tokens, and their match with the dense tokens
  (`sofa_compiler.generation.agreement.token_match`: the fraction of the N positions equal,
  the common prefix before the first divergence, the fraction equal after it);
* the dense tokens fed one by one (teacher forcing) and the NLL this decoder gives each next
  dense token; the perplexity exp(mean NLL) over the N tokens. For keep 1.0 it is the dense
  decoder's own perplexity of its text;
* per decode step (one token): DRAM bytes of the attention kernels (all 30 layers), host-to-DRAM
  bytes into the resident images (steps after the first), cycles.

Every figure is measured in the run.

    python examples/smollm2/export_cached.py /tmp/sdec-kv --prompt 512 --capacity 640 --tokens
    python -m benchmarks.sparse_decode_text /tmp/sdec-kv [--prompt 512] [--capacity 640] [--tokens 128]
        [--keep 0.25 0.5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from sofa_compiler.driver import CompiledModel, DecodeOptions, compile_model  # noqa: E402
from sofa_compiler.generation import GenerationSession, GraphPair, Sampling, StepReport, generate  # noqa: E402
from sofa_compiler.generation.agreement import (  # noqa: E402
    perplexity,
    teacher_forced_nll,
    token_match,
    token_nll,
)


@dataclass
class KeepRun:
    """One decode keep ratio's generation and teacher-forced scoring."""

    keep: float
    tokens: list[int] = field(default_factory=list)
    generated_nll: list[float] = field(default_factory=list)
    """NLL of each generated token under this decoder (greedy: its own text)."""
    forced_nll: list[float] = field(default_factory=list)
    """NLL this decoder gives each dense token, fed the dense tokens before it."""
    steps: list[StepReport] = field(default_factory=list)
    wall_s: float = 0.0

    def per_step(self) -> dict[str, float]:
        """Means over the decode steps (one token each); host writes over the steps after the first."""
        decode = self.steps[1:]
        later = decode[1:] or decode
        return {
            "dram_bytes": float(np.mean([s.dram_read_bytes + s.dram_write_bytes for s in decode])),
            "dram_read_bytes": float(np.mean([s.dram_read_bytes for s in decode])),
            "host_write_bytes": float(np.mean([s.host_write_bytes for s in later])),
            "cycles": float(np.mean([s.cycles for s in decode])),
            "energy_pj": float(np.mean([s.energy_pj for s in decode])),
        }


def compile_decode(path: Path, keep: float) -> CompiledModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_model(str(path), keep=keep, decode=DecodeOptions(enabled=True))


def progress(label: str, total: int):
    def show(report: StepReport) -> None:
        print(
            f"{label}: step {report.step:3d}/{total - 1}  cycles {report.cycles:>10,}  "
            f"DRAM {report.dram_read_bytes + report.dram_write_bytes:>11,} B  ({report.wall_s:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    return show


def run_keep(pair: GraphPair, keep: float, prompt: np.ndarray, count: int, dense: list[int] | None) -> KeepRun:
    """Greedy generation at `keep`, then (with `dense` tokens) their teacher-forced NLL under this decoder."""
    run = KeepRun(keep)
    start = time.perf_counter()
    session = GenerationSession(pair, Sampling())

    def record(report: StepReport) -> None:
        assert session.logits is not None
        run.generated_nll.append(token_nll(session.logits[0], report.tokens[0]))
        progress(f"keep {keep} generate", count)(report)

    run.steps = generate(session, prompt, count, record)
    run.tokens = session.tokens[0].tolist()
    if dense is None:
        run.forced_nll = run.generated_nll  # greedy dense decoding: its text is the reference
    else:
        forced = GenerationSession(pair, Sampling())
        run.forced_nll, _ = teacher_forced_nll(forced, prompt, np.array(dense), progress(f"keep {keep} forced", count))
    run.wall_s = time.perf_counter() - start
    return run


def summary(run: KeepRun, dense: KeepRun) -> dict[str, Any]:
    figures = run.per_step()
    return {
        "keep": run.keep,
        "match": token_match(np.array(dense.tokens), np.array(run.tokens)).to_dict(),
        "perplexity_of_dense_text": perplexity(run.forced_nll),
        "perplexity_of_own_text": perplexity(run.generated_nll),
        "per_decode_step": figures,
        "dram_vs_dense": figures["dram_bytes"] / dense.per_step()["dram_bytes"],
        "tokens": run.tokens,
        "wall_s": run.wall_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export_dir", type=Path, help="where export_cached.py wrote the graphs and the prompt")
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--capacity", type=int, default=640)
    parser.add_argument("--tokens", type=int, default=128, help="new tokens (prefill + tokens - 1 decode steps)")
    parser.add_argument("--keep", type=float, nargs="+", default=[0.25], help="sparse decode keep ratios (< 1)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if not all(0 < keep < 1 for keep in args.keep):
        parser.error("--keep: sparse keep ratios must be in (0, 1)")
    prefill_path = args.export_dir / f"smollm2-135m-prefill-p{args.prompt}.onnx"
    decode_path = args.export_dir / f"smollm2-135m-decode-c{args.capacity}-m1.onnx"
    prompt = np.load(args.export_dir / f"prompt-p{args.prompt}.npz")["input_ids"]

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prefill = compile_model(str(prefill_path), keep=1.0)
    pairs = {keep: GraphPair(prefill, compile_decode(decode_path, keep)) for keep in (1.0, *args.keep)}
    print(f"compiled in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    dense = run_keep(pairs[1.0], 1.0, prompt, args.tokens, None)
    runs = [dense, *(run_keep(pairs[keep], keep, prompt, args.tokens, dense.tokens) for keep in args.keep)]
    rows = [summary(run, dense) for run in runs]
    print(f"SmolLM2-135M, {args.prompt}-token prompt, cache capacity {args.capacity}, {args.tokens} greedy tokens")
    print("keep | match rate | common prefix | match after divergence | PPL of dense text | DRAM B/token | vs dense")
    for row in rows:
        match = row["match"]
        print(
            f"{row['keep']} | {match['rate']:.3f} | {match['common_prefix']} | {match['rate_after']:.3f} | "
            f"{row['perplexity_of_dense_text']:.4f} | {row['per_decode_step']['dram_bytes']:,.0f} | "
            f"{row['dram_vs_dense']:.3f}"
        )
    if args.json:
        document = {"prompt": args.prompt, "capacity": args.capacity, "new_tokens": args.tokens, "rows": rows}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
