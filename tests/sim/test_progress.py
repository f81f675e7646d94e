"""Progress of a simulated run: the functional machine reports the work it has done, with a fraction for the ETA."""

import io

import numpy as np
import pytest
from rich.console import Console

from sofa_compiler import cli
from sofa_compiler.kernels import AttentionKernel, AttentionProblem, compile_attention
from sofa_compiler.sim import functional
from sofa_compiler.sim.config import load_config
from sofa_compiler.sim.functional import Machine
from sofa_compiler.tools.sofa_sim import run_program

CONFIG = load_config(None)


def kernel_and_inputs(pipeline: str) -> tuple[AttentionKernel, dict[str, np.ndarray]]:
    problem = AttentionProblem(256, 256, 32, 32, q_heads=2, kv_heads=2, causal=True)
    kernel = compile_attention(problem, CONFIG, keep=0.25, tile=32, pipeline=pipeline)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(problem.shapes[name]).astype(np.float32) for name in "qkv")
    return kernel, kernel.inputs(q, k, v)


@pytest.mark.parametrize("pipeline", ["coordinated", "separate"])
def test_functional_progress_tracks_the_instructions_executed(pipeline: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(functional, "PROGRESS_STRIDE", 16)
    kernel, inputs = kernel_and_inputs(pipeline)
    reports: list[tuple[int, float]] = []
    machine = Machine.from_target(CONFIG.as_target_dict(), dram_bytes=kernel.program.dram_bytes)
    result = machine.run(kernel.program, inputs, CONFIG.config_hash(), progress=lambda *r: reports.append(r))
    total = result.instructions_executed
    assert len(reports) > 5
    assert reports[-1] == (total, 1.0)
    executed = [done for done, _ in reports]
    fractions = [fraction for _, fraction in reports]
    assert executed == sorted(executed)
    assert fractions == sorted(fractions)
    assert all(0.0 <= f <= 1.0 for f in fractions)
    # The loop-nest estimate stays close to the true share of the work, so the ETA is worth showing.
    assert max(abs(fraction - done / total) for done, fraction in reports) < 0.2


def test_progress_bar_counts_the_simulated_instructions_with_an_eta(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(functional, "PROGRESS_STRIDE", 16)
    kernel, inputs = kernel_and_inputs("coordinated")
    stream = io.StringIO()
    with cli.simulation_progress(True, Console(file=stream, force_terminal=True, width=160)) as progress:
        simulation = run_program(kernel.program, inputs, CONFIG, progress)
    drawn = stream.getvalue()
    executed = simulation.functional.instructions_executed
    assert "functional simulation" in drawn
    assert f"{executed:,} instructions" in drawn
    assert "timing model" not in drawn  # the timing model runs alongside: no second phase
    assert "eta" in drawn
    assert "None" not in drawn
