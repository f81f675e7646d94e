"""Tool speed: simulator against numpy and onnxruntime on the same ONNX model, and compile time against length."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from benchmarks.compile_time import attention_model as compile_time_model
from benchmarks.compile_time import compile_once
from benchmarks.sim_speed import best_time, dense_attention
from sofa_compiler.driver import compile_model
from sofa_compiler.workloads import Workload, attention_model, random_inputs, run_kernels


@dataclass(frozen=True)
class SpeedRow:
    name: str
    heads: int
    seq: int
    depth: int
    sim_s: float
    numpy_s: float
    ort_s: float
    max_rel_diff: float  # simulator output vs onnxruntime


def numpy_layer(inputs: dict[str, np.ndarray], scale: float) -> np.ndarray:
    q, k, v = inputs["q"][0], inputs["k"][0], inputs["v"][0]
    return np.stack([dense_attention(q[h], k[h], v[h], scale) for h in range(q.shape[0])])[None]


def simulator_speed(target: Workload, heads: int, seq: int, repeat: int) -> SpeedRow:
    """Wall time of one keep-1.0 run (non-causal, so numpy's dense attention does the same work)."""
    heads = min(heads, target.heads)
    model = attention_model(heads, seq, target.depth, causal=False)
    inputs = random_inputs(heads, seq, target.depth)
    compiled = compile_model(model, keep=1.0)
    sim_s, (outputs, _) = best_time(lambda: run_kernels(compiled, inputs), repeat)
    numpy_s, _ = best_time(lambda: numpy_layer(inputs, 1.0 / np.sqrt(target.depth)), repeat)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_s, (expected,) = best_time(lambda: session.run(None, inputs), repeat)
    got = next(iter(outputs.values()))
    diff = float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))
    return SpeedRow(f"{target.name} shape, non-causal", heads, seq, target.depth, sim_s, numpy_s, ort_s, diff)


@dataclass(frozen=True)
class CompileRow:
    tokens: int
    seconds: float
    instructions: int


def compile_times(lengths: tuple[int, ...], repeat: int) -> list[CompileRow]:
    """Best of ``repeat`` compiles per length, after a warm-up, round-robin over the lengths
    (as `benchmarks/compile_time.py` does, so that machine noise hits every length alike)."""
    models = {length: compile_time_model(length) for length in lengths}
    compile_once(models[lengths[0]])  # warm-up: first-call imports and caches
    best = dict.fromkeys(lengths, float("inf"))
    instructions: dict[int, int] = {}
    for _ in range(repeat):
        for length, model in models.items():
            seconds, instructions[length] = compile_once(model)
            best[length] = min(best[length], seconds)
    return [CompileRow(length, best[length], instructions[length]) for length in lengths]
