"""Chrome/Perfetto trace of a timing run: one track per unit, one slice per instruction.

Open the file at https://ui.perfetto.dev or chrome://tracing. Times are in
µs at the configured clock (the trace format's unit). A slice spans the
instruction's start to its results being ready; `args.issue_end_cycle`
shows where its unit was free for the next instruction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sofa_compiler.files import atomic_write_text
from sofa_compiler.sim.events import Work
from sofa_compiler.sim.timing import UNITS, TimingResult, gc_paused

PID = 1


def _work_args(work: Work) -> dict[str, Any]:
    # Only the non-zero counts, with buffer names as plain strings. (vars, not
    # asdict: asdict deep-copies and dominates the time of a large trace.)
    out: dict[str, Any] = {}
    for key, value in vars(work).items():
        if isinstance(value, dict):
            value = {str(buffer): count for buffer, count in value.items() if count}
        if value:
            out[key] = value
    return out


def _mask_bits(mask: int) -> list[int]:
    return [bit for bit in range(mask.bit_length()) if mask >> bit & 1]


def chrome_trace(result: TimingResult) -> dict[str, Any]:
    """The trace as a JSON-ready dict (`{"traceEvents": [...], ...}`)."""
    with gc_paused():
        return _chrome_trace(result)


def _chrome_trace(result: TimingResult) -> dict[str, Any]:
    config = result.config
    cycles_per_us = float(config.target["clock_mhz"])
    tids = {unit: tid for tid, unit in enumerate(UNITS, start=1)}
    trace: list[dict[str, Any]] = [
        {"ph": "M", "pid": PID, "tid": 0, "name": "process_name", "args": {"name": f"SOFA {config.name}"}}
    ]
    for unit, tid in tids.items():
        trace.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name", "args": {"name": str(unit)}})
        trace.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}})
    for index, event in enumerate(result.events):
        start, end = result.start[index], result.end[index]
        trace.append(
            {
                "ph": "X",
                "pid": PID,
                "tid": tids[event.unit],
                "name": event.opcode,
                "cat": str(event.unit),
                "ts": start / cycles_per_us,
                "dur": (end - start) / cycles_per_us,
                "args": {
                    "pc": event.pc,
                    "text": event.text,
                    "start_cycle": start,
                    "issue_end_cycle": result.issue_end[index],
                    "end_cycle": end,
                    "wait": _mask_bits(event.wait_mask),
                    "signal": _mask_bits(event.signal_mask),
                    "work": _work_args(event.work),
                },
            }
        )
    return {
        "traceEvents": trace,
        "displayTimeUnit": "ns",
        "otherData": {
            "config": config.name,
            "config_hash": config.config_hash(),
            "clock_mhz": cycles_per_us,
            "total_cycles": result.total_cycles,
        },
    }


def write_trace(path: str | Path, result: TimingResult) -> None:
    """Write `chrome_trace(result)` to `path`."""
    atomic_write_text(path, json.dumps(chrome_trace(result), separators=(",", ":")))
