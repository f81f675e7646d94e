"""The trace-event rules Perfetto applies when it imports a Chrome JSON trace.

Perfetto keeps the slices of one track (a ``pid``/``tid`` pair) as a stack:
a slice that starts inside another must also end inside it, or Perfetto drops
it; an ``E`` event closes the most recent open ``B`` of its track; and events
are read in timestamp order. It stores times as whole nanoseconds, so the
checks here compare ``ts`` and ``dur`` (µs) after rounding them to ns, as
Perfetto does. `violations` lists every breach; an empty list means Perfetto
keeps every slice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

Track = tuple[Any, Any]
DURATION_PHASES = frozenset("XBE")


def _ns(micros: float) -> int:
    return round(micros * 1000)


def _track(record: Mapping[str, Any]) -> Track:
    return record.get("pid"), record.get("tid")


def _ordering(records: Sequence[Mapping[str, Any]]) -> list[str]:
    problems = []
    last = None
    for position, record in enumerate(records):
        if record["ph"] == "M":
            continue
        ts = _ns(record["ts"])
        if last is not None and ts < last:
            problems.append(f"event {position} ({record.get('name')}) at {ts} ns comes after one at {last} ns")
        last = ts
    return problems


def _slices(records: Sequence[Mapping[str, Any]]) -> tuple[dict[Track, list[tuple[int, int, str]]], list[str]]:
    """Complete slices (start, end, name) per track, from X events and matched B/E pairs."""
    slices: dict[Track, list[tuple[int, int, str]]] = defaultdict(list)
    open_slices: dict[Track, list[tuple[int, str]]] = defaultdict(list)
    problems = []
    for record in records:
        phase = record["ph"]
        if phase not in DURATION_PHASES:
            continue
        track, ts, name = _track(record), _ns(record["ts"]), str(record.get("name", ""))
        if phase == "X":
            dur = _ns(record.get("dur", 0))
            if dur < 0:
                problems.append(f"slice '{name}' on track {track} has a negative duration")
            slices[track].append((ts, ts + dur, name))
        elif phase == "B":
            open_slices[track].append((ts, name))
        elif not open_slices[track]:
            problems.append(f"E event '{name}' at {ts} ns on track {track} closes no B event")
        else:
            start, opened = open_slices[track].pop()
            if name and opened and name != opened:
                problems.append(f"E event '{name}' on track {track} closes B event '{opened}'")
            slices[track].append((start, ts, opened))
    for track, stack in open_slices.items():
        problems += [f"B event '{name}' at {start} ns on track {track} is never closed" for start, name in stack]
    return slices, problems


def _partial_overlaps(track: Track, slices: list[tuple[int, int, str]]) -> list[str]:
    problems = []
    stack: list[tuple[int, int, str]] = []
    # Outer slices first: by start, then the longest.
    for start, end, name in sorted(slices, key=lambda s: (s[0], -s[1])):
        while stack and stack[-1][1] <= start:
            stack.pop()
        if stack and end > stack[-1][1]:
            outer = stack[-1]
            problems.append(
                f"slice '{name}' [{start}, {end}] ns partly overlaps '{outer[2]}' [{outer[0]}, {outer[1]}] ns"
                f" on track {track}"
            )
            continue
        stack.append((start, end, name))
    return problems


def violations(trace: Mapping[str, Any]) -> list[str]:
    """Every breach of Perfetto's rules in a JSON trace (`{"traceEvents": [...]}`): order, B/E nesting, overlap."""
    records = trace["traceEvents"]
    problems = _ordering(records)
    slices, nesting = _slices(records)
    problems += nesting
    for track, track_slices in slices.items():
        problems += _partial_overlaps(track, track_slices)
    return problems
