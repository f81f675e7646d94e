"""`sofa-compile`: compile an ONNX model for the SOFA accelerator.

sofa-compile model.onnx -o model.sofa [--target FILE.toml] [--keep RATIO]
             [--tile BC] [--radius R] [--pipeline coordinated|separate]
             [--emit onnx-ir|sofa|tiled|isa|asm|bin] [--dump-ir-dir DIR]
             [--print-ir-after-all] [--tuning FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from xdsl.utils.exceptions import DiagnosticException

from sofa_compiler.bundle import bundle_bytes
from sofa_compiler.driver import EMIT_KINDS, PRESETS, CompiledModel, CompileError, Stage, compile_model
from sofa_compiler.files import atomic_write_bytes, atomic_write_text
from sofa_compiler.frontend.errors import FrontendError
from sofa_compiler.isa.asm import disassemble
from sofa_compiler.sim.config import ConfigError
from sofa_compiler.tools import interruptible, user_warnings


def add_compile_options(parser: argparse.ArgumentParser) -> None:
    """The options `sofa-compile` and `sofa-run` share."""
    parser.add_argument("model", help="an ONNX model (.onnx)")
    parser.add_argument("--target", metavar="FILE.toml", help="hardware config (default: the paper's sofa-28nm)")
    parser.add_argument("--keep", type=float, default=1.0, help="top-k keep ratio, 0 < k <= 1 (1.0 = exact)")
    parser.add_argument("--tile", type=int, help="KV tile size Bc (default: chosen from the target's SRAM)")
    parser.add_argument("--radius", type=float, help="SADS sphere radius in logits (default: no clip)")
    parser.add_argument(
        "--pipeline",
        default="coordinated",
        help=f"{' or '.join(PRESETS)}: SOFA's coordinated tiling, or the separate-stage baseline",
    )
    parser.add_argument(
        "--no-kv-generation",
        dest="kv_generation",
        action="store_false",
        help="read host-computed K/V rows instead of generating only the selected rows on chip",
    )


def compile_from_options(args: argparse.Namespace, on_stage: Any = None, **extra: Any) -> CompiledModel:
    """`compile_model` with the options `add_compile_options` declared."""
    return compile_model(
        args.model,
        args.target,
        args.keep,
        args.tile,
        args.radius,
        args.pipeline,
        on_stage,
        kv_generation=args.kv_generation,
        **extra,
    )


def emitted_text(model: CompiledModel, kind: str) -> str:
    if kind in ("onnx-ir", "sofa", "tiled", "isa"):
        return model.ir(kind)
    if kind == "asm":
        parts = [f"# kernel {name}\n{disassemble(program)}" for name, program in model.programs.items()]
        return "\n".join(parts) if parts else "# no attention kernel: the whole model runs on the host\n"
    raise CompileError(f"unknown --emit kind '{kind}' (choose from {', '.join(EMIT_KINDS)})")


def dump_stage(directory: Path, index: int, stage: Stage) -> None:
    atomic_write_text(
        directory / f"{index:02d}-{stage.step}.mlir", f"// stage {stage.name}, after {stage.step}\n{stage.text}"
    )


@interruptible("sofa-compile")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sofa-compile", description=__doc__.split("\n")[0])
    add_compile_options(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout for text kinds)")
    parser.add_argument("--emit", default="bin", help=f"what to write: {', '.join(EMIT_KINDS)} (default: bin)")
    parser.add_argument("--dump-ir-dir", metavar="DIR", help="write the IR after every stage, numbered")
    parser.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every stage to stderr")
    parser.add_argument(
        "--tuning", metavar="FILE", help="per-layer tile/keep (JSON or TOML, e.g. from sofa-dse; see docs/dse.md)"
    )
    args = parser.parse_args(argv)
    try:
        if args.emit not in EMIT_KINDS:
            raise CompileError(f"unknown --emit kind '{args.emit}' (choose from {', '.join(EMIT_KINDS)})")
        if args.emit == "bin" and not args.output:
            raise CompileError("--emit bin needs an output file: -o model.sofa")
        stages_seen: list[Stage] = []
        dump_dir = Path(args.dump_ir_dir) if args.dump_ir_dir else None
        if dump_dir is not None:
            dump_dir.mkdir(parents=True, exist_ok=True)

        def on_stage(stage: Stage) -> None:
            stages_seen.append(stage)
            if dump_dir is not None:
                dump_stage(dump_dir, len(stages_seen) - 1, stage)
            if args.print_ir_after_all:
                print(f"// -----// IR Dump After {stage.step} ({stage.name}) //----- //", file=sys.stderr)
                print(stage.text, file=sys.stderr)

        with user_warnings("sofa-compile"):
            model = compile_from_options(args, on_stage, tuning=args.tuning)
        if args.emit == "bin":
            atomic_write_bytes(args.output, bundle_bytes(model))
            return 0
        text = emitted_text(model, args.emit)
        if args.output:
            atomic_write_text(args.output, text)
        else:
            sys.stdout.write(text)
    except (CompileError, FrontendError, ConfigError) as error:
        print(f"sofa-compile: error: {error}", file=sys.stderr)
        return 1
    except DiagnosticException as error:
        print(f"sofa-compile: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"sofa-compile: error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
