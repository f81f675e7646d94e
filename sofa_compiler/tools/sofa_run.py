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

import numpy as np
from rich.console import Console
from xdsl.utils.exceptions import DiagnosticException

from sofa_compiler.cli import MISMATCH_STATUS, exit_statuses, timing_progress, user_warnings
from sofa_compiler.compile_options import add_compile_options, compile_from_options
from sofa_compiler.driver import CompiledModel, CompileError, ModelReport
from sofa_compiler.files import atomic_write
from sofa_compiler.frontend.errors import FrontendError
from sofa_compiler.sim.config import ConfigError
from sofa_compiler.sim.inputs import SimError, load_inputs, random_model_inputs


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


NON_FINITE_KINDS = {"nan": np.isnan, "+inf": np.isposinf, "-inf": np.isneginf}


def non_finite_counts(values: np.ndarray) -> dict[str, int]:
    """How many NaN, +inf and -inf entries ``values`` holds (integers hold none)."""
    if values.dtype.kind not in "fc":
        return dict.fromkeys(NON_FINITE_KINDS, 0)
    return {kind: int(np.count_nonzero(test(values))) for kind, test in NON_FINITE_KINDS.items()}


def same_non_finite(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Whether NaN, +inf and -inf sit at the same positions in both (shapes equal)."""
    if actual.shape != expected.shape:
        return False
    if actual.dtype.kind not in "fc" or expected.dtype.kind not in "fc":
        return not any(non_finite_counts(actual).values()) and not any(non_finite_counts(expected).values())
    return all(np.array_equal(test(actual), test(expected)) for test in NON_FINITE_KINDS.values())


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected| over the positions where both are finite."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    finite = np.isfinite(actual) & np.isfinite(expected)
    actual, expected = actual[finite], expected[finite]
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    difference = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    return difference / scale if scale else difference


def describe_non_finite(counts: dict[str, int]) -> str:
    """``3 NaN, 1 +inf`` (or ``none``)."""
    parts = [f"{count} {'NaN' if kind == 'nan' else kind}" for kind, count in counts.items() if count]
    return ", ".join(parts) or "none"


def compare(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per output: its relative error over finite positions, its non-finite counts and whether they match."""
    comparison = {}
    for name, actual in outputs.items():
        if name not in reference:
            continue
        expected = np.asarray(reference[name])
        comparison[name] = {
            "max_relative_error": relative_error(actual, expected) if actual.shape == expected.shape else None,
            "non_finite": non_finite_counts(actual),
            "reference_non_finite": non_finite_counts(expected),
            "non_finite_match": same_non_finite(actual, expected),
        }
    return comparison


@exit_statuses("sofa-run", CompileError, FrontendError, ConfigError, SimError, DiagnosticException)
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
    args = parser.parse_args(argv)
    given = load_inputs(args.inputs) if args.inputs else None
    with user_warnings("sofa-run"):
        model = compile_from_options(args, inputs=given)
    inputs = given if given is not None else random_model_inputs(model, args.seed)
    with timing_progress(sys.stderr.isatty()) as progress:
        outputs, report = model.run(inputs, progress)
    comparison: dict[str, dict] = {}
    if not args.no_reference:
        comparison = compare(outputs, onnxruntime_outputs(args.model, inputs) or {})
    if args.output:
        atomic_write(args.output, lambda stream: np.savez(stream, **outputs))
    mismatched = [name for name, entry in comparison.items() if not entry["non_finite_match"]]
    if args.json:
        document = {
            "max_relative_error": {name: entry["max_relative_error"] for name, entry in comparison.items()},
            "non_finite": {name: non_finite_counts(values) for name, values in outputs.items()},
            "comparison": comparison,
            "placements": [placement.to_dict() for placement in model.placements],
            "kernels": [{"kernel": name, **r.to_dict()} for name, r in report.kernels],
            "total": report.total.to_dict() if report.total else None,
        }
        print(json.dumps(document, indent=2))
    else:
        print_report(model, outputs, comparison, report)
    for name in mismatched:
        entry = comparison[name]
        print(
            f"sofa-run: error: output {name}: non-finite values differ from onnxruntime's"
            f" ({describe_non_finite(entry['non_finite'])}; onnxruntime:"
            f" {describe_non_finite(entry['reference_non_finite'])})",
            file=sys.stderr,
        )
    return MISMATCH_STATUS if mismatched else 0


def print_report(
    model: CompiledModel, outputs: dict[str, np.ndarray], comparison: dict[str, dict], report: ModelReport
) -> None:
    """The human-readable report: placements, per-output comparison, the simulator's table."""
    for placement in model.placements:
        print(placement.line())
    for name, values in outputs.items():
        entry = comparison.get(name)
        counts = non_finite_counts(values)
        if entry is None:
            if any(counts.values()):
                print(f"output {name}: non-finite values: {describe_non_finite(counts)}")
            continue
        error = entry["max_relative_error"]
        line = f"output {name}: max relative error vs onnxruntime {error:.3e}" if error is not None else ""
        line = line or f"output {name}: shape differs from onnxruntime's"
        if any(counts.values()) or any(entry["reference_non_finite"].values()):
            line += f" (finite positions); non-finite values: {describe_non_finite(counts)}"
            if not entry["non_finite_match"]:
                line += f", onnxruntime: {describe_non_finite(entry['reference_non_finite'])}"
        print(line)
    print(f"attention kernels run on the accelerator: {len(report.kernels)}")
    if report.total is not None:
        Console(width=110).print(report.total.render_table())
    else:
        print("no attention ran on the accelerator (host fallback); see `sofa-compile --emit tiled`")


if __name__ == "__main__":
    sys.exit(main())
