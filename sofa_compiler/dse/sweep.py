"""Hardware sweeps: several target configs x benchmark workloads, one simulation per pair.

Each point compiles the workload's attention layer with the cost model's
tile at one keep ratio, simulates `heads` heads and scales to all heads
(`sofa_compiler.workloads.simulate`). Area comes from the config's
``[area]`` section; GOPS/W is the simulator's (dense-equivalent ops per
joule, DRAM and interface included).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from threadpoolctl import threadpool_limits
from xdsl.utils.exceptions import DiagnosticException

from sofa_compiler.dse.cluster import Executor
from sofa_compiler.dse.problem import DseError
from sofa_compiler.sim.config import ConfigError, HardwareConfig, load_config
from sofa_compiler.workloads import WORKLOADS, attention_model, find_workload, random_inputs, run_kernels

DEFAULT_WORKLOADS = ("bert-base-512", "bert-large-384", "gpt2-1024", "llama-7b-512")


@dataclass(frozen=True)
class SweepPoint:
    target: str
    config: str
    workload: str
    area_mm2: float
    cycles: float
    latency_ms: float
    energy_uj: float
    gops_per_watt: float
    note: str = ""


def load_targets(paths: list[str]) -> list[tuple[str, HardwareConfig]]:
    targets = []
    for path in paths:
        try:
            targets.append((path, load_config(path)))
        except ConfigError as error:
            raise DseError(str(error)) from None
        except OSError as error:
            raise DseError(f"{path}: {error.strerror or error}") from None
    return targets


def check_workloads(names: list[str]) -> None:
    known = [w.name for w in WORKLOADS]
    for name in names:
        if name not in known:
            raise DseError(f"unknown workload '{name}' (choose from {', '.join(known)})")


def sweep_point(path: str, config: HardwareConfig, workload: str, keep: float, heads: int) -> SweepPoint:
    """Simulate one (target, workload); runs on a Dask worker, BLAS pinned to one thread."""
    from sofa_compiler.driver import CompileError, compile_model
    from sofa_compiler.sim.report import combine_reports

    spec = find_workload(workload)
    area = config.total_area_mm2()
    heads = min(heads, spec.heads)
    try:
        with threadpool_limits(1):
            # As `workloads.simulate`, with the sweep's target (simulate() binds `target` to the workload).
            model = attention_model(heads, spec.seq, spec.depth, spec.causal)
            compiled = compile_model(model, config, keep=keep)
            _, runs = run_kernels(compiled, random_inputs(heads, spec.seq, spec.depth))
    except (CompileError, DiagnosticException) as error:
        nan = math.nan
        return SweepPoint(config.name, path, workload, area, nan, nan, nan, nan, str(error).splitlines()[0])
    report = combine_reports([run.report for run in runs])
    scale = spec.heads / heads
    return SweepPoint(
        config.name,
        path,
        workload,
        area,
        report.total_cycles * scale,
        report.time_us * scale / 1e3,
        report.total_energy_pj * scale / 1e6,
        report.gops_per_watt,
    )


def run_sweep(
    executor: Executor, paths: list[str], workloads: list[str], keep: float = 0.25, heads: int = 1
) -> list[SweepPoint]:
    """Every target x workload, in that order, evaluated in parallel."""
    if not 0.0 < keep <= 1.0:
        raise DseError(f"--keep must satisfy 0 < keep <= 1, got {keep}")
    check_workloads(workloads)
    targets = load_targets(paths)
    tasks = [(path, config, workload, keep, heads) for path, config in targets for workload in workloads]
    # Longest first (cost ~ S^2 d per head), so the last task to finish is a short one.
    cost = {name: find_workload(name).seq ** 2 * find_workload(name).depth for name in workloads}
    order = sorted(range(len(tasks)), key=lambda index: (-cost[tasks[index][2]], index))
    results = executor.map(sweep_point, [tasks[index] for index in order])
    points: list[SweepPoint] = [results[0]] * len(tasks)
    for position, index in enumerate(order):
        points[index] = results[position]
    return points


def _number(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def markdown_table(points: list[SweepPoint], keep: float) -> str:
    lines = [
        f"Hardware sweep (keep = {keep}, cost-model tile; area from each config's [area])",
        "",
        "| target | workload | area mm² | cycles | latency ms | energy µJ | GOPS/W | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in points:
        lines.append(
            f"| {p.target} | {p.workload} | {p.area_mm2:.3f} | {_number(p.cycles, 0)} | {_number(p.latency_ms, 3)}"
            f" | {_number(p.energy_uj)} | {_number(p.gops_per_watt)} | {p.note} |"
        )
    return "\n".join(lines) + "\n"


def csv_table(points: list[SweepPoint]) -> str:
    stream = io.StringIO()
    names = list(SweepPoint.__dataclass_fields__)
    writer = csv.DictWriter(stream, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for point in points:
        writer.writerow(asdict(point))
    return stream.getvalue()


def sweep_key(points: list[SweepPoint]) -> list[tuple]:
    """What must match between two runs of the same sweep (everything but wall time)."""
    return [tuple(asdict(p).values()) for p in points]


def output_names(directory: Path) -> dict[str, Path]:
    return {"md": directory / "sweep.md", "csv": directory / "sweep.csv", "png": directory / "sweep.png"}
