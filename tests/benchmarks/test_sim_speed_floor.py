"""The kernel floor in `benchmarks/sim_speed.py` is the simulator's computation, bit for bit.

The benchmark's floor/numpy ratio only bounds what a simulator can reach if
the floor computes exactly what the simulator does; this checks it on small
shapes, for both SU-FA storage types and for a predictor input (K-hat) that
is not fp16(K).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.sim_speed import kernel_floor
from sofa_compiler.isa.builder import AttentionShape, attention_inputs, attention_program
from sofa_compiler.sim.functional import Machine


@pytest.mark.parametrize(
    ("seq", "depth", "tile", "dtype", "own_khat"),
    [(256, 64, 64, "f16", False), (256, 32, 128, "f32", False), (384, 64, 32, "f16", True)],
)
def test_floor_equals_simulator(seq: int, depth: int, tile: int, dtype: str, own_khat: bool) -> None:
    shape = AttentionShape(sq=seq, skv=seq, depth=depth, vdepth=depth, tile=tile, keep=1.0, dtype=dtype)
    program = attention_program(shape)
    rng = np.random.default_rng(seq + depth)
    q, k, v = (rng.standard_normal((seq, depth)) for _ in range(3))
    khat = (k + 0.1 * rng.standard_normal(k.shape)).astype(np.float16) if own_khat else None
    inputs = attention_inputs(shape, q, k, v, khat)
    simulated = Machine(dram_bytes=program.dram_bytes).run(program, inputs).outputs["o"]
    floor = kernel_floor(inputs["q"], inputs["k"], inputs["v"], inputs["khat"], 1.0 / np.sqrt(depth), tile, 128)
    assert np.array_equal(floor, simulated)
