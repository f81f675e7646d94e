"""The structure-aware fuzzers of `structured.py` in CI: short runs of each entry, plus their oracles' own checks.

`STRUCTURED_EXAMPLES` examples per entry (signals: a tenth of them, each a real
process); the long campaign is `benchmarks/fuzz_campaign.py --entry mlir-struct ...`.
"""

from __future__ import annotations

import json
import os
import random

import pytest
import structured
from fuzzlib import ERROR, OK, Targets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

STRUCTURED_EXAMPLES = int(os.environ.get("STRUCTURED_EXAMPLES", "30"))
TARGETS = Targets(timeout=30.0)


def examples(entry: str) -> int:
    return max(2, STRUCTURED_EXAMPLES // 10) if entry == "signals" else STRUCTURED_EXAMPLES


def check(entry: str, seed: int, variant: int) -> None:
    data = structured.generate(TARGETS, entry, random.Random(seed))
    outcome = structured.run(TARGETS, entry, data, variant)
    assert outcome.kind in (OK, ERROR), outcome.summary() + f"\ninput: {data[:400]!r}"


@pytest.mark.parametrize("entry", structured.ENTRIES)
def test_structured_inputs_fail_cleanly_and_never_succeed_wrongly(entry: str) -> None:
    @settings(
        max_examples=examples(entry),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(seed=st.integers(0, 2**32 - 1), variant=st.integers(0, 7))
    def run(seed: int, variant: int) -> None:
        check(entry, seed, variant)

    run()


def test_nested_function_oracle_catches_an_accepted_nesting(monkeypatch):
    """The oracle itself: were the nesting accepted (the parser check removed), the run is a wrong success."""
    from sofa_compiler import parser

    seed = next(s for s in TARGETS.mlir if structured.nested_function(s) is not None)
    data = b"// must-fail\n" + structured.nested_function(seed).encode()
    assert structured.run(TARGETS, "mlir-struct", data).kind in (OK, ERROR)
    monkeypatch.setattr(parser.SofaParser, "parse_module", parser.Parser.parse_module)
    outcome = structured.run(TARGETS, "mlir-struct", data)
    assert outcome.kind == structured.WRONG, outcome.summary()


@pytest.mark.parametrize("kind", structured.FILE_KINDS)
@pytest.mark.parametrize("tool", structured.FILE_TOOLS)
def test_every_output_target_kind_for_every_writing_tool(kind: str, tool: str) -> None:
    if kind == "full-device" and os.geteuid() != 0:
        pytest.skip("a device node of our own needs root (never the system's /dev/full)")
    outcome = structured.run(TARGETS, "files", json.dumps({"kind": kind, "tool": tool}).encode())
    assert outcome.kind in (OK, ERROR), outcome.summary()
    assert (outcome.kind == ERROR) == (kind in structured.MUST_FAIL) or kind == "fifo-leaves", outcome.summary()


def test_deep_nesting_is_a_clean_error():
    data = structured.deep_nesting(1000).encode()
    assert structured.run(TARGETS, "mlir-struct", data).kind in (OK, ERROR)
