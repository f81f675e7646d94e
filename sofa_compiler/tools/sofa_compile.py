"""`sofa-compile`: compile an ONNX model for the SOFA accelerator.

sofa-compile model.onnx -o model.sofa [--target FILE.toml] [--keep RATIO]
             [--tile BC] [--radius R] [--pipeline coordinated|separate]
             [--emit onnx-ir|sofa|tiled|isa|asm|bin] [--dump-ir-dir DIR]
             [--print-ir-after-all] [--print-ir-after PASS] [--pass-pipeline PIPELINE]
             [--mlir-elide-elementsattrs-if-larger N] [--tuning FILE] [--input-shape NAME=D0,D1,...]...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from xdsl.utils.exceptions import DiagnosticException

from sofa_compiler.cli import exit_statuses, user_warnings
from sofa_compiler.compile_options import EMIT_KINDS, add_compile_options, check_compile_options, compile_from_options
from sofa_compiler.files import atomic_write_bytes, atomic_write_text, check_output_path
from sofa_compiler.ir_printing import IrPrinting, add_ir_printing_options, dump_banner

if TYPE_CHECKING:
    from sofa_compiler.driver import CompiledModel, Stage


def emitted_text(model: CompiledModel, kind: str, elide_larger_than: int | None = None) -> str:
    from sofa_compiler.driver import CompileError
    from sofa_compiler.isa.asm import disassemble

    if kind in ("onnx-ir", "sofa", "tiled", "isa"):
        return model.ir(kind, elide_larger_than)
    if kind == "asm":
        parts = [f"# kernel {name}\n{disassemble(program)}" for name, program in model.programs.items()]
        return "\n".join(parts) if parts else "# no attention kernel: the whole model runs on the host\n"
    raise CompileError(f"unknown --emit kind '{kind}' (choose from {', '.join(EMIT_KINDS)})")


def dump_stage(directory: Path, stage: Stage, elide_larger_than: int | None) -> None:
    """One reproducer file per stage, ``NN-STEP.mlir``; full constants unless told to elide (they replay)."""
    atomic_write_text(directory / f"{stage.record.applied:02d}-{stage.step}.mlir", stage.dump(elide_larger_than))


def user_errors() -> tuple[type[Exception], ...]:
    # Imported when needed: the compiler takes a second to import, and --help does not need it.
    from sofa_compiler.driver import CompileError
    from sofa_compiler.frontend.errors import FrontendError
    from sofa_compiler.sim.config import ConfigError

    return CompileError, FrontendError, ConfigError


@exit_statuses("sofa-compile", DiagnosticException, deferred_errors=user_errors)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sofa-compile", description=__doc__.split("\n")[0])
    add_compile_options(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout for text kinds)")
    parser.add_argument("--emit", default="bin", help=f"what to write: {', '.join(EMIT_KINDS)} (default: bin)")
    parser.add_argument("--dump-ir-dir", metavar="DIR", help="write the IR after every stage, numbered")
    add_ir_printing_options(parser)
    parser.add_argument(
        "--pass-pipeline",
        metavar="PIPELINE",
        help="run these passes after sofa-bind-target instead of the ones the options choose (MLIR syntax)",
    )
    parser.add_argument(
        "--tuning", metavar="FILE", help="per-layer tile/keep (JSON or TOML, e.g. from sofa-dse; see docs/dse.md)"
    )
    args = parser.parse_args(argv)
    from passes import get_all_passes
    from sofa_compiler.bundle import bundle_bytes
    from sofa_compiler.driver import CompileError

    check_compile_options(args)
    if args.emit not in EMIT_KINDS:
        raise CompileError(f"unknown --emit kind '{args.emit}' (choose from {', '.join(EMIT_KINDS)})")
    if args.emit == "bin" and not args.output:
        raise CompileError("--emit bin needs an output file: -o model.sofa")
    check_output_path(args.output)
    printing = IrPrinting.from_args(args)
    dump_dir = Path(args.dump_ir_dir) if args.dump_ir_dir else None
    if dump_dir is not None:
        dump_dir.mkdir(parents=True, exist_ok=True)

    def on_stage(stage: Stage) -> None:
        if dump_dir is not None:
            dump_stage(dump_dir, stage, printing.elide_larger_than)
        if printing.prints_after(stage.step):
            print(dump_banner(stage.step, stage.name), file=sys.stderr)
            print(stage.dump(printing.dump_elide_limit), file=sys.stderr)

    try:
        printing.check_passes(frozenset(["import", *get_all_passes()]))
    except ValueError as error:
        raise CompileError(str(error)) from None
    with user_warnings("sofa-compile"):
        model = compile_from_options(args, on_stage, tuning=args.tuning, pass_pipeline=args.pass_pipeline)
    # On stderr: stdout may carry the emitted IR or assembly.
    for placement in model.placements:
        print(placement.line(), file=sys.stderr)
    if args.emit == "bin":
        atomic_write_bytes(args.output, bundle_bytes(model))
        return 0
    text = emitted_text(model, args.emit, printing.elide_larger_than)
    if args.output:
        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
