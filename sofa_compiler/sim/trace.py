"""Chrome/Perfetto traces of simulated runs: a single program, or a whole compiled model.

Open the file at https://ui.perfetto.dev or chrome://tracing. Times are in
µs (the trace format's unit) at the configured clock, rounded to whole
nanoseconds, Perfetto's resolution. A slice spans an instruction's start to
its results being ready; `args.issue_end_cycle` shows where its unit was free
for the next instruction.

A unit issues its next instruction before the previous one's results are
ready, so one unit's slices overlap. Perfetto drops a slice that partly
overlaps another on its track, so each unit gets as many tracks ("lanes") as
it has instructions in flight at once: ``dma_load``, ``dma_load #2``, ... Every
slice goes to the first lane that is free at its start.

A model trace (`model_trace`) lays the run out in the order it happened: a
``model`` process with a track of host partitions (onnxruntime, measured wall
time on this machine) and a track of kernel calls (simulated time), then one
process per kernel call with its units' lanes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sofa_compiler.files import atomic_write_text
from sofa_compiler.sim.events import Unit, Work
from sofa_compiler.sim.timing import UNITS, TimingResult, gc_paused

MODEL_PID = 1
HOST_TRACK = "host partitions (onnxruntime, measured)"
KERNEL_TRACK = "kernel calls (simulated)"


@dataclass(frozen=True)
class HostSpan:
    """A host partition's run: its name and the wall time onnxruntime took."""

    name: str
    seconds: float


@dataclass(frozen=True)
class KernelSpan:
    """A kernel call: the kernel's name and its simulated schedule."""

    name: str
    timing: TimingResult


@dataclass
class Timeline:
    """What a model run did, in order; `model_trace` draws it."""

    steps: list[HostSpan | KernelSpan] = field(default_factory=list)

    def host(self, name: str, seconds: float) -> None:
        self.steps.append(HostSpan(name, seconds))

    def kernel(self, name: str, timing: TimingResult) -> None:
        self.steps.append(KernelSpan(name, timing))


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


def _us(ns: int) -> float:
    return ns / 1000


def _metadata(pid: int, tid: int, name: str, value: str | int) -> dict[str, Any]:
    key = "sort_index" if name.endswith("sort_index") else "name"
    return {"ph": "M", "pid": pid, "tid": tid, "name": name, "args": {key: value}}


def _slice(pid: int, tid: int, name: str, start_ns: int, end_ns: int, **extra: Any) -> dict[str, Any]:
    return {
        "ph": "X",
        "pid": pid,
        "tid": tid,
        "name": name,
        "ts": _us(start_ns),
        "dur": _us(end_ns - start_ns),
        **extra,
    }


def assign_lanes(starts: Sequence[int], ends: Sequence[int]) -> list[int]:
    """A lane per interval, so that intervals on one lane never overlap: the first lane free at each start.

    Intervals are taken in order of start (ties keep their order).
    """
    lane_ends: list[int] = []
    lanes = [0] * len(starts)
    for index in sorted(range(len(starts)), key=starts.__getitem__):
        start = starts[index]
        lane = next((number for number, end in enumerate(lane_ends) if end <= start), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(ends[index])
        else:
            lane_ends[lane] = ends[index]
        lanes[index] = lane
    return lanes


def _kernel_events(result: TimingResult, pid: int, process: str, offset_ns: int) -> list[dict[str, Any]]:
    """One process of unit lanes for one run, its time shifted by `offset_ns`."""
    ns_per_cycle = 1000 / float(result.config.target["clock_mhz"])

    def ns(cycle: int) -> int:
        return offset_ns + round(cycle * ns_per_cycle)

    records = [_metadata(pid, 0, "process_name", process), _metadata(pid, 0, "process_sort_index", pid)]
    tids: dict[tuple[int, int], int] = {}
    by_unit: dict[Unit, list[int]] = {unit: [] for unit in UNITS}
    for index, event in enumerate(result.events):
        by_unit[event.unit].append(index)
    for number, (unit, indices) in enumerate(by_unit.items()):
        lanes = assign_lanes([result.start[i] for i in indices], [result.end[i] for i in indices])
        for lane in range(max(lanes, default=0) + 1):
            tid = tids[number, lane] = len(tids) + 1
            name = str(unit) if lane == 0 else f"{unit} #{lane + 1}"
            records += [_metadata(pid, tid, "thread_name", name), _metadata(pid, tid, "thread_sort_index", tid)]
        for index, lane in zip(indices, lanes, strict=True):
            event, start, end = result.events[index], result.start[index], result.end[index]
            args = {
                "pc": event.pc,
                "text": event.text,
                "start_cycle": start,
                "issue_end_cycle": result.issue_end[index],
                "end_cycle": end,
                "wait": _mask_bits(event.wait_mask),
                "signal": _mask_bits(event.signal_mask),
                "work": _work_args(event.work),
            }
            records.append(_slice(pid, tids[number, lane], event.opcode, ns(start), ns(end), cat=str(unit), args=args))
    return records


def _in_time_order(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    # Metadata first, then events by timestamp (stable: a track's order is kept).
    records = list(records)
    metadata = [r for r in records if r["ph"] == "M"]
    return metadata + sorted((r for r in records if r["ph"] != "M"), key=lambda r: r["ts"])


def chrome_trace(result: TimingResult) -> dict[str, Any]:
    """The trace of one program's run as a JSON-ready dict (`{"traceEvents": [...], ...}`)."""
    config = result.config
    with gc_paused():
        records = _in_time_order(_kernel_events(result, 1, f"SOFA {config.name}", 0))
    return {
        "traceEvents": records,
        "displayTimeUnit": "ns",
        "otherData": {
            "config": config.name,
            "config_hash": config.config_hash(),
            "clock_mhz": float(config.target["clock_mhz"]),
            "total_cycles": result.total_cycles,
        },
    }


def model_trace(timeline: Timeline) -> dict[str, Any]:
    """The trace of a whole model run, laid out in the order it ran (see the module docstring)."""
    records = [
        _metadata(MODEL_PID, 0, "process_name", "model"),
        _metadata(MODEL_PID, 0, "process_sort_index", MODEL_PID),
        _metadata(MODEL_PID, 1, "thread_name", HOST_TRACK),
        _metadata(MODEL_PID, 2, "thread_name", KERNEL_TRACK),
    ]
    now_ns = 0
    calls: list[dict[str, Any]] = []
    with gc_paused():
        for step in timeline.steps:
            if isinstance(step, HostSpan):
                end_ns = now_ns + round(step.seconds * 1e9)
                records.append(_slice(MODEL_PID, 1, step.name, now_ns, end_ns, cat="host"))
            else:
                pid = MODEL_PID + 1 + len(calls)
                label = f"kernel call {len(calls) + 1}: {step.name}"
                records += _kernel_events(step.timing, pid, label, now_ns)
                end_ns = now_ns + round(step.timing.total_cycles * 1000 / float(step.timing.config.target["clock_mhz"]))
                args = {"pid": pid, "total_cycles": step.timing.total_cycles}
                records.append(_slice(MODEL_PID, 2, step.name, now_ns, end_ns, cat="kernel", args=args))
                calls.append({"pid": pid, "kernel": step.name, "total_cycles": step.timing.total_cycles})
            now_ns = end_ns
    return {
        "traceEvents": _in_time_order(records),
        "displayTimeUnit": "ns",
        "otherData": {
            "kernel_calls": calls,
            "host_partitions": sum(isinstance(step, HostSpan) for step in timeline.steps),
            "note": "host partitions show measured wall time, kernel calls simulated time, one after the other",
        },
    }


def write_json(path: str | Path, trace: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(trace, separators=(",", ":")))


def write_trace(path: str | Path, result: TimingResult) -> None:
    """Write `chrome_trace(result)` to `path`."""
    write_json(path, chrome_trace(result))


def write_model_trace(path: str | Path, timeline: Timeline) -> None:
    """Write `model_trace(timeline)` to `path`."""
    write_json(path, model_trace(timeline))
