"""Check that (xDSL-printed) IR is valid for the real MLIR parser and verifier.

    mlir_generic_check.py [FILE|-]

Reads MLIR text, usually the generic form from `sofa-opt --print-op-generic`,
from FILE or stdin, splits it at `// -----` lines, and parses and verifies
each chunk with upstream MLIR (the `torch_mlir.ir` bindings). Ops of dialects
MLIR does not know, like `sofa.*`, are accepted as unregistered ops; ops of
upstream dialects (func, arith, tensor, ...) are fully verified.

Prints `MLIR-OK <ops>` per good chunk (ops nested in the module, not counting
the module itself) and exits 0; prints MLIR's diagnostics, with locations
mapped back to the input, and exits 1 if any chunk fails.
"""

import argparse
import re
import sys

from torch_mlir import ir

SPLIT_MARKER = "// -----"


def count_ops(module: ir.Module) -> int:
    count = 0

    def visit(op: ir.Operation) -> ir.WalkResult:
        nonlocal count
        count += 1
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return count - 1  # the module itself


def check_chunk(text: str, name: str, line_offset: int) -> tuple[int | None, str]:
    """(op count, "") if `text` parses and verifies, else (None, diagnostic)."""
    ctx = ir.Context()
    ctx.allow_unregistered_dialects = True
    try:
        module = ir.Module.parse(text, ctx)
        # Parsing verifies already; verify again so a bindings change cannot skip it.
        module.operation.verify()
    except ir.MLIRError as e:
        # MLIR names the buffer "-" and counts lines from the chunk start.
        def relocate(match: re.Match[str]) -> str:
            return f"{name}:{int(match[1]) + line_offset}:{match[2]}"

        return None, re.sub(r'"-":(\d+):(\d+)', relocate, str(e))
    return count_ops(module), ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", default="-", help="MLIR file to check (default: stdin)")
    args = parser.parse_args(argv)

    if args.file == "-":
        name, text = "<stdin>", sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as f:
                name, text = args.file, f.read()
        except OSError as e:
            print(f"mlir_generic_check: error: {e}", file=sys.stderr)
            return 1

    failed = False
    line_offset = 0
    for chunk in text.split(SPLIT_MARKER):
        count, diagnostic = check_chunk(chunk, name, line_offset)
        if count is None:
            failed = True
            print(diagnostic, file=sys.stderr)
        else:
            print(f"MLIR-OK {count}")
        line_offset += chunk.count("\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
