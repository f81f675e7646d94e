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
from typing import TYPE_CHECKING

from sofa_compiler.cli import (
    InputShapeError,
    add_input_shape_option,
    exit_statuses,
    input_shapes,
    print_error,
    user_warnings,
)
from sofa_compiler.files import atomic_write_text

if TYPE_CHECKING:
    from xdsl.dialects.builtin import ModuleOp


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
    from xdsl.printer import Printer

    text = io.StringIO()
    Printer(stream=text).print_op(module)
    return text.getvalue() + "\n"


def frontend_errors() -> tuple[type[Exception], ...]:
    from sofa_compiler.frontend import FrontendError

    return (FrontendError,)


@exit_statuses("sofa-import", InputShapeError, deferred_errors=frontend_errors)
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported after parsing: the front end (onnx) takes a second to import, and --help does not need it.
    from xdsl.printer import Printer

    from sofa_compiler.frontend import FrontendError, import_model

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
