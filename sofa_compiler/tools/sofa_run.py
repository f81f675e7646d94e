"""`sofa-run`: compile an ONNX model, run it on the simulated accelerator, check it against onnxruntime.

Host partitions run on onnxruntime, attention kernels on the simulator; the
outputs are compared with onnxruntime running the whole model on the same
inputs, and the simulator's report is printed (per kernel and in total),
after one line per attention node saying where it runs. Relative errors are
taken over the positions where both are finite; NaN and infinities are
counted, and where they differ from onnxruntime's, position for position,
sofa-run says so and exits with status 3.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from xdsl.utils.exceptions import DiagnosticException

from sofa_compiler.cli import MISMATCH_STATUS, add_budget_option, exit_statuses, simulation_progress, user_warnings
from sofa_compiler.compile_options import add_compile_options, check_compile_options, compile_from_options
from sofa_compiler.files import atomic_write, check_output_path

if TYPE_CHECKING:
    import numpy as np

    from sofa_compiler.accuracy import OutputAccuracy
    from sofa_compiler.driver import CompiledModel, ModelReport
    from sofa_compiler.sim.report import Report


def onnxruntime_outputs(path: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """onnxruntime's outputs, or None (with a warning) when onnxruntime cannot run the model."""
    from sofa_compiler.interpreters.host import onnxruntime_session

    try:
        session = onnxruntime_session(path)
        names = [output.name for output in session.get_outputs()]
        return dict(zip(names, session.run(names, dict(inputs)), strict=True))
    except Exception as error:  # onnxruntime raises its own types (Fail, InvalidArgument, ...)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        message = f"onnxruntime cannot run this model, so nothing to compare with: {reason}"
        print(f"sofa-run: warning: {message}", file=sys.stderr)
        return None


def user_errors() -> tuple[type[Exception], ...]:
    # Imported when needed: the compiler and simulator take a second to import, and --help needs neither.
    from sofa_compiler.driver import CompileError
    from sofa_compiler.frontend.errors import FrontendError
    from sofa_compiler.sim.config import ConfigError
    from sofa_compiler.sim.inputs import SimError
    from sofa_compiler.sim.limits import LimitError

    return CompileError, FrontendError, ConfigError, SimError, LimitError


@exit_statuses("sofa-run", DiagnosticException, deferred_errors=user_errors)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sofa-run", description=__doc__.split("\n")[0])
    add_compile_options(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--inputs", metavar="X.npz", help="model inputs by name (default: random); they fix dynamic input shapes"
    )
    source.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    parser.add_argument("--output", metavar="OUT.npz", help="save the model outputs")
    parser.add_argument("--trace", metavar="FILE.json", help="write a Chrome/Perfetto trace of the whole model run")
    parser.add_argument("--json", action="store_true", help="print errors and the report as JSON")
    parser.add_argument("--no-reference", action="store_true", help="skip the onnxruntime comparison")
    add_budget_option(parser)
    args = parser.parse_args(argv)
    check_compile_options(args)
    check_output_path(args.output)
    check_output_path(args.trace)
    import numpy as np

    from sofa_compiler.accuracy import OutputAccuracy, describe_non_finite, non_finite_counts
    from sofa_compiler.sim.inputs import load_inputs, random_model_inputs
    from sofa_compiler.sim.trace import write_model_trace

    given = load_inputs(args.inputs) if args.inputs else None
    with user_warnings("sofa-run"):
        model = compile_from_options(args, inputs=given)
    inputs = given if given is not None else random_model_inputs(model, args.seed)
    with simulation_progress(sys.stderr.isatty()) as progress:
        outputs, report = model.run(inputs, progress, args.max_instructions, trace=bool(args.trace))
    if args.trace:
        write_model_trace(args.trace, report.timeline)
    accuracy: dict[str, OutputAccuracy] = {}
    if not args.no_reference:
        reference = onnxruntime_outputs(args.model, inputs) or {}
        accuracy = {name: OutputAccuracy.of(outputs[name], reference[name]) for name in outputs if name in reference}
    if args.output:
        atomic_write(args.output, lambda stream: np.savez(stream, **outputs))
    if args.json:
        document = {
            "max_relative_error": {name: a.relative_error for name, a in accuracy.items()},
            "cosine_similarity": {name: a.cosine for name, a in accuracy.items()},
            "non_finite": {name: non_finite_counts(values) for name, values in outputs.items()},
            "comparison": {name: a.to_dict() for name, a in accuracy.items()},
            "placements": [placement.to_dict() for placement in model.placements],
            "kernels": [kernel_entry(model, name, r) for name, r in report.kernels],
            "total": report.total.to_dict() if report.total else None,
        }
        print(json.dumps(document, indent=2))
    else:
        print_report(model, outputs, accuracy, report)
    mismatched = [name for name, figures in accuracy.items() if not figures.non_finite_match]
    for name in mismatched:
        figures = accuracy[name]
        print(
            f"sofa-run: error: output {name}: non-finite values differ from onnxruntime's"
            f" ({describe_non_finite(figures.non_finite)}; onnxruntime:"
            f" {describe_non_finite(figures.reference_non_finite)})",
            file=sys.stderr,
        )
    return MISMATCH_STATUS if mismatched else 0


def kernel_entry(model: CompiledModel, name: str, report: Report) -> dict[str, object]:
    """One kernel call's JSON figures, with the tiling its kernel ran (Bc, Tc, n, m; null if unknown)."""
    tiling = model.tilings.get(name)
    return {"kernel": name, "tiling": tiling.to_dict() if tiling else None, **report.to_dict()}


def print_report(
    model: CompiledModel, outputs: dict[str, np.ndarray], accuracy: dict[str, OutputAccuracy], report: ModelReport
) -> None:
    """The human-readable report: placements, per-output comparison, the simulator's table."""
    from rich.console import Console

    from sofa_compiler.accuracy import METRICS_LEGEND, describe_non_finite, non_finite_counts

    for placement in model.placements:
        print(placement.line())
    for kernel, tiling in model.tilings.items():
        print(f"kernel {kernel}: {tiling.describe()}")
    for name, values in outputs.items():
        if name in accuracy:
            print(accuracy[name].line(name, "onnxruntime"))
        elif any(counts := non_finite_counts(values)):
            print(f"output {name}: non-finite values: {describe_non_finite(counts)}")
    if accuracy:
        print(f"  ({METRICS_LEGEND})")
    print(f"attention kernels run on the accelerator: {len(report.kernels)}")
    if report.total is not None:
        Console(width=110).print(report.total.render_table())
    else:
        print("no attention ran on the accelerator (host fallback); see `sofa-compile --emit tiled`")


if __name__ == "__main__":
    sys.exit(main())
