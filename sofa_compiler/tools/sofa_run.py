"""`sofa-run`: compile an ONNX model, run it on the simulated accelerator, check it against onnxruntime.

Host partitions run on onnxruntime, attention kernels on the simulator; the
outputs are compared with onnxruntime running the whole model on the same
inputs, and the simulator's report is printed (per kernel and in total),
after one line per attention node saying where it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

import numpy as np
from rich.console import Console
from xdsl.utils.exceptions import DiagnosticException

from sofa_compiler.cli import add_budget_option, exit_statuses, timing_progress, user_warnings
from sofa_compiler.compile_options import add_compile_options, compile_from_options
from sofa_compiler.driver import CompileError
from sofa_compiler.files import atomic_write
from sofa_compiler.frontend.errors import FrontendError
from sofa_compiler.sim.config import ConfigError
from sofa_compiler.sim.inputs import SimError, load_inputs, random_model_inputs
from sofa_compiler.sim.limits import LimitError


def onnxruntime_outputs(path: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """onnxruntime's outputs, or None (with a warning) when onnxruntime cannot run the model."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        return dict(zip(names, session.run(names, dict(inputs)), strict=True))
    except Exception as error:  # onnxruntime raises its own types (Fail, InvalidArgument, ...)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        message = f"onnxruntime cannot run this model, so nothing to compare with: {reason}"
        print(f"sofa-run: warning: {message}", file=sys.stderr)
        return None


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    difference = float(np.max(np.abs(actual.astype(np.float64) - expected))) if expected.size else 0.0
    return difference / scale if scale else difference


@exit_statuses("sofa-run", CompileError, FrontendError, ConfigError, SimError, DiagnosticException, LimitError)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sofa-run", description=__doc__.split("\n")[0])
    add_compile_options(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--inputs", metavar="X.npz", help="model inputs by name (default: random); they fix dynamic input shapes"
    )
    source.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    parser.add_argument("--output", metavar="OUT.npz", help="save the model outputs")
    parser.add_argument("--json", action="store_true", help="print errors and the report as JSON")
    parser.add_argument("--no-reference", action="store_true", help="skip the onnxruntime comparison")
    add_budget_option(parser)
    args = parser.parse_args(argv)
    given = load_inputs(args.inputs) if args.inputs else None
    with user_warnings("sofa-run"):
        model = compile_from_options(args, inputs=given)
    inputs = given if given is not None else random_model_inputs(model, args.seed)
    with timing_progress(sys.stderr.isatty()) as progress:
        outputs, report = model.run(inputs, progress, args.max_instructions)
    errors = {}
    if not args.no_reference:
        reference = onnxruntime_outputs(args.model, inputs) or {}
        errors = {name: relative_error(outputs[name], reference[name]) for name in outputs if name in reference}
    if args.output:
        atomic_write(args.output, lambda stream: np.savez(stream, **outputs))
    if args.json:
        document = {
            "max_relative_error": errors,
            "placements": [placement.to_dict() for placement in model.placements],
            "kernels": [{"kernel": name, **r.to_dict()} for name, r in report.kernels],
            "total": report.total.to_dict() if report.total else None,
        }
        print(json.dumps(document, indent=2))
        return 0
    for placement in model.placements:
        print(placement.line())
    for name, error in errors.items():
        print(f"output {name}: max relative error vs onnxruntime {error:.3e}")
    print(f"attention kernels run on the accelerator: {len(report.kernels)}")
    if report.total is not None:
        Console(width=110).print(report.total.render_table())
    else:
        print("no attention ran on the accelerator (host fallback); see `sofa-compile --emit tiled`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
