"""Target parameters the functional machine reads move the simulated figures too."""

from functools import cache

import numpy as np
import pytest

from sofa_compiler.kernels import AttentionKernel, AttentionProblem, compile_attention
from sofa_compiler.sim.config import load_config
from sofa_compiler.sim.functional import Machine
from sofa_compiler.sim.timing import simulate
from sofa_compiler.sim.traps import Trap


@cache
def kernel() -> AttentionKernel:
    """The compiler's kernel for one 128-query head on the default (128-lane) target."""
    return compile_attention(AttentionProblem(sq=128, skv=128, depth=16, v_depth=16), keep=0.5, tile=64)


def run(overrides: dict[str, int]) -> tuple[int, int]:
    config = load_config(None).with_values({f"target.{key}": value for key, value in overrides.items()})
    program = kernel().program
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((128, 16)).astype(np.float32) for _ in range(3))
    machine = Machine.from_target(config.as_target_dict(), dram_bytes=program.dram_bytes)
    result = machine.run(program, kernel().inputs(q, k, v))
    sort_rounds = sum(event.work.sort_rounds for event in result.events)
    return sort_rounds, simulate(result.events, config).total_cycles


@pytest.mark.parametrize(("key", "value"), [("sads_inputs_per_round", 6), ("sads_outputs_per_round", 2)])
def test_sads_core_shape_moves_sort_rounds_and_cycles(key, value):
    base_rounds, base_cycles = run({})
    rounds, cycles = run({key: value})
    assert rounds > base_rounds
    assert cycles > base_cycles


def test_lanes_bound_the_program():
    # A 128-lane program cannot run on a 64-lane machine: it traps, naming the limit.
    with pytest.raises(Trap, match="exceeds the target's 64 lanes"):
        run({"lanes": 64})
