"""SmolLM2-135M greedy generation on the simulator, with the KV cache resident between steps, against onnxruntime.

Issue 18's exact-generation check: the prefill and decode-step graphs written by
`examples/smollm2/export_cached.py` (prompt S, cache capacity C) run on onnxruntime (the
reference: prefill, then one decode step per token) and through
`sofa_compiler.generation` at keep 1.0, every attention on the simulator. Prints both token
lists, whether they are equal, each step's simulated figures, and the compile and run time.
Every figure is measured in the run.

    python examples/smollm2/export_cached.py /tmp/kv-smollm --tokens      # the graphs and prompt-p512.npz
    python benchmarks/smollm2_generate.py /tmp/kv-smollm [--prompt 512] [--capacity 544] [--tokens 32] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from benchmarks.smollm2.cached_graphs import onnxruntime_greedy  # noqa: E402
from sofa_compiler.driver import DecodeOptions, compile_model  # noqa: E402
from sofa_compiler.generation import GenerationSession, GraphPair, Sampling, generate  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export_dir", type=Path, help="where export_cached.py wrote the graphs and the prompt")
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--capacity", type=int, default=544)
    parser.add_argument("--tokens", type=int, default=32, help="new tokens (prefill + tokens - 1 decode steps)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    prefill_path = args.export_dir / f"smollm2-135m-prefill-p{args.prompt}.onnx"
    decode_path = args.export_dir / f"smollm2-135m-decode-c{args.capacity}-m1.onnx"
    prompt = np.load(args.export_dir / f"prompt-p{args.prompt}.npz")["input_ids"]

    start = time.perf_counter()
    reference = onnxruntime_greedy(onnx.load(str(prefill_path)), onnx.load(str(decode_path)), prompt, args.tokens)
    reference_s = time.perf_counter() - start
    print(f"onnxruntime: {reference[0].tolist()} ({reference_s:.1f} s)", file=sys.stderr)

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pair = GraphPair(
            compile_model(str(prefill_path), keep=1.0),
            compile_model(str(decode_path), keep=1.0, decode=DecodeOptions(enabled=True)),
        )
    compile_s = time.perf_counter() - start
    on_accelerator = [sum(p.host_reason is None for p in m.placements) for m in (pair.prefill, pair.decode)]
    print(f"compiled in {compile_s:.1f} s; attention on the accelerator: {on_accelerator}", file=sys.stderr)

    def show(report) -> None:
        print(
            f"step {report.step:3d}: token {report.tokens[0]:6d}  cycles {report.cycles:>12,}  "
            f"latency {report.latency_us:10,.1f} us  DRAM {report.dram_read_bytes + report.dram_write_bytes:>12,} B  "
            f"host->DRAM {report.host_write_bytes:>10,} B  energy {report.energy_pj / 1e6:9,.1f} uJ  "
            f"({report.wall_s:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    start = time.perf_counter()
    session = GenerationSession(pair, Sampling())
    reports = generate(session, prompt, args.tokens, show)
    run_s = time.perf_counter() - start
    equal = bool(np.array_equal(session.tokens, reference))
    print(f"sofa:        {session.tokens[0].tolist()} ({run_s:.1f} s)")
    print(f"onnxruntime: {reference[0].tolist()}")
    print(f"greedy tokens equal onnxruntime's: {'yes' if equal else 'NO'}")
    if args.json:
        document = {
            "prompt": args.prompt,
            "capacity": args.capacity,
            "tokens": session.tokens.tolist(),
            "onnxruntime_tokens": reference.tolist(),
            "equal": equal,
            "attention_on_accelerator": on_accelerator,
            "compile_s": compile_s,
            "run_s": run_s,
            "onnxruntime_s": reference_s,
            "steps": [report.to_dict() for report in reports],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0 if equal else 3


if __name__ == "__main__":
    sys.exit(main())
