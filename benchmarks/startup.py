"""Start-up time of every tool: the best of N runs of ``python -m sofa_compiler.tools.X --help``.

A tool's ``--help`` does nothing but import the tool and parse its options, so
its time is the cost of importing it; it must stay well under 0.5 s, with
heavy packages (onnx, onnxruntime, numpy, xDSL's dialects, rich) imported by
the commands that use them. Both the wall time and the CPU time (user + system)
of the process are shown: on a busy machine the wall time mostly measures the
wait for a core, the CPU time what the tool itself costs. ``--imports N`` also lists the N slowest imports
of each tool (cumulative, from ``python -X importtime``).

    python benchmarks/startup.py [--repeat 5] [--imports 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

TOOLS = (
    "sofa_opt",
    "sofa_run_ir",
    "sofa_import",
    "sofa_as",
    "sofa_objdump",
    "sofa_sim",
    "sofa_compile",
    "sofa_run",
    "sofa_dse",
)
LIMIT_SECONDS = 0.5
ROOT = Path(__file__).resolve().parent.parent


def _command(tool: str, *python_flags: str) -> list[str]:
    return [sys.executable, *python_flags, "-m", f"sofa_compiler.tools.{tool}", "--help"]


def _environment() -> dict[str, str]:
    # The checkout's code, not an installed copy.
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def startup_seconds(tool: str, repeat: int) -> tuple[float, float]:
    """The best wall and CPU time of `repeat` runs of the tool's ``--help`` (the least disturbed by other load)."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), _child_cpu_seconds()
        subprocess.run(_command(tool), env=_environment(), check=True, stdout=subprocess.DEVNULL)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, _child_cpu_seconds() - start_cpu)
    return wall, cpu


def slowest_imports(tool: str, count: int) -> list[tuple[float, str]]:
    """The `count` imports with the largest cumulative time (s), directly under the tool's own module."""
    run = subprocess.run(
        _command(tool, "-X", "importtime"), env=_environment(), check=True, capture_output=True, text=True
    )
    rows = []
    for line in run.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        name = fields[2]
        if len(name) - len(name.lstrip()) == 1:  # top level: imported by the tool or the interpreter
            rows.append((int(fields[1]) / 1e6, name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per tool; the best counts (default 5)")
    parser.add_argument("--imports", type=int, default=0, metavar="N", help="also list the N slowest imports")
    args = parser.parse_args()
    print(f"{'tool':<14} {'wall (s)':>9} {'cpu (s)':>8}")
    slow = []
    for tool in TOOLS:
        wall, cpu = startup_seconds(tool, args.repeat)
        slow += [tool] if wall >= LIMIT_SECONDS else []
        print(f"{tool.replace('_', '-'):<14} {wall:>9.3f} {cpu:>8.3f}")
        for cost, module in slowest_imports(tool, args.imports) if args.imports else []:
            print(f"{'':<15}{cost:>8.3f}  {module}")
    if slow:
        print(f"over {LIMIT_SECONDS} s: {', '.join(slow)}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
