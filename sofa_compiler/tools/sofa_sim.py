"""`sofa-sim`: run a `.sofa` program on the simulated SOFA accelerator.

The functional machine computes the outputs (numpy, one instruction per
128-lane tile) and records what each instruction did; the timing and energy
model turns that record into cycles, stalls, DRAM traffic and energy for the
hardware described by a TOML config.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sofa_compiler.cli import add_budget_option, exit_statuses, file_name, positive_int, simulation_progress
from sofa_compiler.files import atomic_write, check_output_path
from sofa_compiler.sim.limits import DEFAULT_MAX_INSTRUCTIONS

# The simulator (numpy, xDSL's dialect tables) is imported by the functions that
# use it, so that --help and usage errors start at once.
if TYPE_CHECKING:
    import numpy as np

    from sofa_compiler.isa.container import Program
    from sofa_compiler.isa.formats import SofaFormat
    from sofa_compiler.sim.config import HardwareConfig
    from sofa_compiler.sim.functional import FunctionalResult
    from sofa_compiler.sim.progress import RunProgress
    from sofa_compiler.sim.report import Report
    from sofa_compiler.sim.timing import TimingResult

# Progress bars appear only on runs with at least this many events, so short
# runs and test logs stay clean.
PROGRESS_THRESHOLD = 20_000


@dataclass
class Simulation:
    """Everything one simulated run produced."""

    functional: FunctionalResult
    timing: TimingResult
    report: Report


def load_program(path: str | Path) -> Program:
    from sofa_compiler.isa.container import ContainerError, Program
    from sofa_compiler.sim.inputs import SimError

    try:
        return Program.from_bytes(Path(path).read_bytes())
    except OSError as error:
        raise SimError(f"cannot read program '{path}': {error.strerror}") from error
    except ContainerError as error:
        raise SimError(f"{path}: not a valid .sofa program: {error}") from error


def run_program(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    config: HardwareConfig,
    progress: RunProgress | None = None,
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS,
    dram_bytes: int | None = None,
    keep_events: bool = False,
) -> Simulation:
    """Run `program` functionally, its events streaming into the timing and energy model.

    Memory stays bounded however many instructions run, unless `keep_events`
    (for a trace) keeps every event and its schedule.

    Raises `Trap` for invalid programs (including a config-hash mismatch,
    token deadlocks and running past `max_instructions`) and `InputError` for
    inputs that do not fit the symbols. `dram_bytes` is the machine's DRAM
    (default: what the program's header asks for); a program that needs more traps.
    """
    from sofa_compiler.sim.functional import Machine, run_with_timing
    from sofa_compiler.sim.limits import check_dram_bytes
    from sofa_compiler.sim.report import build_report

    dram = check_dram_bytes(dram_bytes or program.dram_bytes, "the program" if dram_bytes is None else "--dram-bytes")
    machine = Machine.from_target(config.as_target_dict(), dram_bytes=dram)
    functional_progress = progress.functional if progress is not None else None
    functional, timing = run_with_timing(
        machine, program, inputs, config, max_instructions, functional_progress, keep_events
    )
    return Simulation(functional, timing, build_report(timing, functional.sram_peak))


def write_outputs(path: str | Path, outputs: Mapping[str, np.ndarray]) -> None:
    """Save outputs as .npz through a temporary file, so no half-written file is left."""
    import numpy as np

    atomic_write(path, lambda stream: np.savez(stream, **outputs))


def print_outputs(outputs: Mapping[str, np.ndarray], full: bool) -> None:
    import numpy as np

    for name, value in outputs.items():
        print(f"output {name}: {value.dtype} {list(value.shape)}")
        if full:
            print(np.array2string(value, precision=6, threshold=10**6))


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sofa-sim", description=__doc__.split("\n")[0])
    parser.add_argument("program", help="a .sofa program (sofa-as) or model bundle (sofa-compile)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--inputs", metavar="FILE.npz", help="one array per input symbol")
    source.add_argument("--random-inputs", metavar="SEED", type=int, help="deterministic N(0,1) inputs")
    parser.add_argument("--config", metavar="FILE.toml", help="hardware config (default: the paper's sofa-28nm)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.add_argument(
        "--trace",
        metavar="FILE.json",
        type=file_name,
        help="write a Chrome/Perfetto trace: one track per unit (and per kernel call, for a bundle)",
    )
    parser.add_argument("--output", metavar="FILE.npz", type=file_name, help="save the outputs")
    parser.add_argument("--print", action="store_true", help="print the output arrays in full")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    add_budget_option(parser)
    parser.add_argument(
        "--dram-bytes",
        metavar="N",
        type=positive_int,
        help="the machine's DRAM size (default: the program's); a program that needs more traps",
    )
    return parser.parse_args(argv)


def run_bundle(args: argparse.Namespace) -> int:
    """A whole compiled model from `sofa-compile -o model.sofa`: host ops on numpy, kernels simulated."""
    # Imported here: a plain program run should not pay for loading the compiler.
    from rich.console import Console

    from sofa_compiler.bundle import BundleError, load_bundle
    from sofa_compiler.driver import CompileError
    from sofa_compiler.sim.config import load_config
    from sofa_compiler.sim.inputs import SimError, load_inputs, random_model_inputs
    from sofa_compiler.sim.trace import write_model_trace

    try:
        model = load_bundle(Path(args.program).read_bytes(), args.program)
        if args.config is not None and load_config(args.config).config_hash() != model.config.config_hash():
            raise SimError(f"{args.program} was compiled for another target than {args.config}: recompile it")
        inputs = load_inputs(args.inputs) if args.inputs else random_model_inputs(model, args.random_inputs or 0)
        show_progress = not args.no_progress and sys.stderr.isatty()
        with simulation_progress(show_progress) as progress:
            outputs, report = model.run(inputs, progress, args.max_instructions, trace=bool(args.trace))
    except (BundleError, CompileError) as error:
        raise SimError(error) from error
    if args.output:
        write_outputs(args.output, outputs)
    if args.trace:
        write_model_trace(args.trace, report.timeline)
    if args.json:
        tilings = model.tilings
        kernels = [
            {"kernel": name, "tiling": tilings[name].to_dict() if name in tilings else None, **kernel.to_dict()}
            for name, kernel in report.kernels
        ]
        total = report.total.to_dict() if report.total else None
        print(json.dumps({"kernels": kernels, "total": total}, indent=2))
        return 0
    print_outputs(outputs, args.print)
    for kernel, tiling in model.tilings.items():
        print(f"kernel {kernel}: {tiling.describe()}")
    print(f"attention kernels run: {len(report.kernels)}")
    if report.total is not None:
        Console(width=110).print(report.total.render_table())
    return 0


def program_format(path: str) -> SofaFormat:
    from sofa_compiler.isa.formats import file_format
    from sofa_compiler.sim.inputs import SimError

    try:
        return file_format(path)
    except OSError as error:
        raise SimError(f"cannot read program '{path}': {error.strerror}") from error


def user_errors() -> tuple[type[Exception], ...]:
    from sofa_compiler.isa.formats import FormatError
    from sofa_compiler.sim.config import ConfigError
    from sofa_compiler.sim.inputs import SimError
    from sofa_compiler.sim.limits import LimitError
    from sofa_compiler.sim.report import ReportError
    from sofa_compiler.sim.state import InputError

    return SimError, ConfigError, InputError, FormatError, LimitError, ReportError


@exit_statuses("sofa-sim", deferred_errors=user_errors)
def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    for path in (args.output, args.trace):
        check_output_path(path)
    from rich.console import Console

    from sofa_compiler.isa.formats import SofaFormat
    from sofa_compiler.sim.config import load_config
    from sofa_compiler.sim.inputs import load_inputs, random_inputs
    from sofa_compiler.sim.trace import write_trace

    if program_format(args.program) is SofaFormat.BUNDLE:
        return run_bundle(args)
    config = load_config(args.config)
    program = load_program(args.program)
    inputs = load_inputs(args.inputs) if args.inputs else random_inputs(program, args.random_inputs or 0)
    show_progress = not args.no_progress and sys.stderr.isatty()
    with simulation_progress(show_progress) as progress:
        simulation = run_program(
            program, inputs, config, progress, args.max_instructions, args.dram_bytes, keep_events=bool(args.trace)
        )
    if args.output:
        write_outputs(args.output, simulation.functional.outputs)
    if args.trace:
        write_trace(args.trace, simulation.timing)
    if args.json:
        print(simulation.report.to_json())
        return 0
    print_outputs(simulation.functional.outputs, args.print)
    Console(width=110).print(simulation.report.render_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
