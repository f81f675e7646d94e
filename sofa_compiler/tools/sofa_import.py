"""`sofa-import`: import an ONNX model and print the IR.

    sofa-import MODEL.onnx [-o OUT.mlir] [--input-shape NAME=D0,D1,...]... [--no-kv-projection]

Problems with the model are printed as one message, without a traceback,
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer

from sofa_compiler.cli import (
    InputShapeError,
    add_input_shape_option,
    exit_statuses,
    input_shapes,
    print_error,
    user_warnings,
)
from sofa_compiler.files import atomic_write_text
from sofa_compiler.frontend import FrontendError, import_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sofa-import", description="Import an ONNX model into SOFA IR.")
    parser.add_argument("model", type=Path, help="the .onnx file")
    parser.add_argument("-o", "--output", type=Path, help="write the IR here instead of standard output")
    add_input_shape_option(parser)
    parser.add_argument(
        "--no-kv-projection", action="store_true", help="keep K/V projections on the host (no sofa.kv_projection)"
    )
    return parser


def print_module(module: ModuleOp) -> str:
    text = io.StringIO()
    Printer(stream=text).print_op(module)
    return text.getvalue() + "\n"


@exit_statuses("sofa-import", FrontendError, InputShapeError)
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shapes = input_shapes(args.input_shape)
    try:
        with user_warnings("sofa-import"):
            module = import_model(args.model, shapes, kv_projection=not args.no_kv_projection)
    except FrontendError:
        raise  # a problem with the model: reported as a user error
    except Exception as error:  # a bug here, not a problem with the model: still no traceback
        print(f"sofa-import: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    if args.output is None:
        Printer(stream=sys.stdout).print_op(module)
        print()
        return 0
    try:
        atomic_write_text(args.output, print_module(module))
    except OSError as error:
        return print_error("sofa-import", f"cannot write '{args.output}': {error.strerror}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
