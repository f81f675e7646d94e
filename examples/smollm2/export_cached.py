"""Export SmolLM2-135M-Instruct as a prefill graph and a decode-step graph with a KV cache (ONNX opset 24).

The graphs follow `sofa_compiler.generation.contract` (written op by op from the model's
weights by `benchmarks/smollm2/cached_graphs.py`): the prefill takes the prompt and gives the
logits and every layer's K/V; the decode step takes one token per sample, the cache of
capacity C and its length, writes the new K/V with TensorScatter and attends with
nonpad_kv_seqlen. The weights go to an external data file beside each graph.

    python examples/smollm2/export_cached.py OUT_DIR [--prompt 512] [--capacity 544] [--samples 1]

Then `sofa-generate OUT_DIR/smollm2-135m-prefill-p512.onnx OUT_DIR/smollm2-135m-decode-c544-m1.onnx --prompt ...`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the repository's `benchmarks` package (xDSL's wheel ships another)

from benchmarks.smollm2 import model as smollm2  # noqa: E402
from benchmarks.smollm2.cached_graphs import SMOLLM2_135M, build  # noqa: E402


def graph_names(prompt: int, capacity: int, samples: int) -> tuple[str, str]:
    return f"smollm2-135m-prefill-p{prompt}.onnx", f"smollm2-135m-decode-c{capacity}-m{samples}.onnx"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder for the ONNX files (created if absent)")
    parser.add_argument("--prompt", type=int, default=512, help="prompt length S of the prefill graph (default 512)")
    parser.add_argument("--capacity", type=int, default=544, help="KV cache capacity C of the decode graph")
    parser.add_argument("--samples", type=int, default=1, help="samples M decoded together (default 1)")
    parser.add_argument("--tokens", action="store_true", help="also write OUT_DIR/prompt-pS.npz (the bundled text)")
    args = parser.parse_args()
    if not 1 <= args.prompt < args.capacity:
        parser.error("need 1 <= --prompt < --capacity")
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    if args.out_dir.resolve().is_relative_to(ROOT):
        parser.error(f"{args.out_dir} is inside the repository; export elsewhere (the files are about 600 MB each)")
    try:
        model = smollm2.load_model("sdpa")
        weights = {name: tensor.detach().numpy() for name, tensor in model.state_dict().items()}
        if args.tokens:
            import numpy as np

            args.out_dir.mkdir(parents=True, exist_ok=True)
            ids = smollm2.text_token_ids(smollm2.load_tokenizer(), args.prompt)
            np.savez(args.out_dir / f"prompt-p{args.prompt}.npz", input_ids=ids)
    except (smollm2.ModelUnavailable, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    weights.pop("lm_head.weight", None)  # tied to the embedding
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for decode, name in zip((False, True), graph_names(args.prompt, args.capacity, args.samples), strict=True):
        start = time.perf_counter()
        graph = build(
            weights, SMOLLM2_135M, prompt=args.prompt, capacity=args.capacity, samples=args.samples, decode=decode
        )
        path = args.out_dir / name
        onnx.save(graph, str(path), save_as_external_data=True, location=f"{name}.data", size_threshold=1024)
        print(f"wrote {path} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
