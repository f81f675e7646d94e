"""Perfetto's trace-event rules (`sofa_compiler.sim.trace_rules`) and the lanes that keep traces within them."""

import itertools
import random

import pytest

from sofa_compiler.sim.trace import assign_lanes
from sofa_compiler.sim.trace_rules import violations


def x(name: str, ts: float, dur: float, tid: int = 1) -> dict:
    return {"ph": "X", "pid": 1, "tid": tid, "name": name, "ts": ts, "dur": dur}


def be(phase: str, name: str, ts: float, tid: int = 1) -> dict:
    return {"ph": phase, "pid": 1, "tid": tid, "name": name, "ts": ts}


def check(*records: dict) -> list[str]:
    return violations({"traceEvents": [{"ph": "M", "pid": 1, "tid": 1, "name": "thread_name"}, *records]})


def test_nested_and_adjacent_slices_are_kept():
    assert check(x("outer", 0, 10), x("inner", 2, 3), x("inner2", 5, 5), x("next", 10, 1)) == []
    assert check(be("B", "a", 0), be("B", "b", 1), be("E", "b", 2), be("E", "a", 3)) == []


def test_partial_overlap_on_one_track_is_a_violation():
    (problem,) = check(x("load", 0, 10), x("load", 5, 10))
    assert "partly overlaps" in problem
    # The same slices on two tracks are fine.
    assert check(x("load", 0, 10), x("load", 5, 10, tid=2)) == []


def test_overlap_is_judged_in_whole_nanoseconds():
    # 0.0004 µs is below Perfetto's resolution: the slices touch, they do not overlap.
    assert check(x("a", 0, 1.0004), x("b", 1, 1)) == []
    assert check(x("a", 0, 1.001), x("b", 1, 1)) != []


def test_b_e_pairs_must_nest():
    assert any("partly overlaps" in p for p in check(be("B", "a", 0), x("b", 1, 10), be("E", "a", 5)))
    assert any("closes no B" in p for p in check(be("E", "a", 1)))
    assert any("never closed" in p for p in check(be("B", "a", 1)))
    assert any("closes B event 'a'" in p for p in check(be("B", "a", 0), be("E", "b", 1)))


def test_timestamps_must_not_go_back():
    (problem,) = check(x("a", 5, 1), x("b", 1, 1, tid=2))
    assert "comes after" in problem


def test_negative_duration_is_a_violation():
    assert any("negative" in p for p in check(x("a", 5, -1)))


@pytest.mark.parametrize("seed", range(5))
def test_lanes_never_overlap_and_are_as_few_as_needed(seed: int):
    rng = random.Random(seed)
    starts = sorted(rng.randrange(1000) for _ in range(200))
    ends = [start + rng.randrange(1, 60) for start in starts]
    lanes = assign_lanes(starts, ends)
    for lane in set(lanes):
        spans = sorted((s, e) for s, e, n in zip(starts, ends, lanes, strict=True) if n == lane)
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    # First fit over intervals sorted by start uses as many lanes as are ever in flight at once.
    most = max(sum(s <= t < e for s, e in zip(starts, ends, strict=True)) for t in starts)
    assert max(lanes) + 1 == most
