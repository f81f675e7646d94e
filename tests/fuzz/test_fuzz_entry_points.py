"""Fuzz every entry point in-process with mutated inputs: success or a clean error, never a traceback or hang.

Short runs for CI (`FUZZ_EXAMPLES` examples per entry point); the long
campaign is `benchmarks/fuzz_campaign.py`.
"""

from __future__ import annotations

import os
import random

import pytest
from fuzzlib import ENTRIES, Targets, check
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))

TARGETS = Targets(timeout=20.0)


@pytest.mark.parametrize("entry", ENTRIES)
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,  # the alarm in `Targets.run` bounds each run; the first call also pays imports
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
)
@given(seed=st.integers(0, 2**32 - 1), variant=st.integers(0, 7))
def test_mutated_inputs_fail_cleanly(entry: str, seed: int, variant: int) -> None:
    data = TARGETS.generate(entry, random.Random(seed))
    check(TARGETS.run(entry, data, variant), data)


@pytest.mark.parametrize("entry", ENTRIES)
def test_seeds_succeed(entry: str) -> None:
    """The unmutated seeds run (so the fuzzers start from inputs that reach deep)."""
    from fuzzlib import npz_bytes, run_ir_inputs

    match entry:
        case "mlir":
            samples = [TARGETS.mlir[0].encode()]
        case "onnx":
            samples = [blob for name, blob in TARGETS.onnx if name.startswith("attn24_mqa")]
        case "sofa":
            samples = TARGETS.programs[-2:]
        case "bundle":
            samples = TARGETS.bundles
        case "asm":
            samples = [TARGETS.asm[0].encode()]
        case "toml":
            samples = [text.encode() for text in TARGETS.configs]
        case _:
            samples = [npz_bytes(TARGETS.sim_case[1]), npz_bytes(run_ir_inputs())]
    for variant, data in enumerate(samples):
        outcome = TARGETS.run(entry, data, 2 if entry == "sofa" else variant)
        assert outcome.kind == "ok", outcome.summary()
