"""The paper's attention layers as generated ONNX models, and how one is simulated.

The evaluation report (`python -m benchmarks`) and `sofa-dse` both measure
these layers, so they live in the library: an installed package has them.

Heads are independent and run one after another on the accelerator, so a
layer's cycles, DRAM bytes, energy and operation counts are those of one head
times the number of heads: the report simulates `heads` of them and scales
by ``H / heads``. Where a mode also shortens the sequence (``--quick``), the
per-head figures are scaled by ``(S / s)^2`` as well; that is an
approximation (Q/O traffic grows linearly), and the report marks it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import onnx
from xdsl.interpreter import Interpreter

from sofa_compiler import kernels
from sofa_compiler.driver import CompiledModel, compile_model
from sofa_compiler.interpreters import register_all
from sofa_compiler.kernel_tiling import KernelTiling
from sofa_compiler.kernels import AttentionProblem
from sofa_compiler.runtime import KernelFunctions, KernelRun, KernelRunner
from sofa_compiler.sim.events import Work
from sofa_compiler.sim.report import Report, combine_reports

NOT_OPS = frozenset({"dram_read_bytes", "dram_write_bytes", "dram_requests", "dense_ops"})
OP_FIELDS = tuple(f.name for f in fields(Work) if f.type in ("int", int) and f.name not in NOT_OPS)
"""The `Work` operation counts (shift-adds, MACs, sort rounds, ...) the report sums over a run's events."""

PREDICTION_OPS = ("shift_adds", "lz_encodes", "mul4_macs")
SELECTION_OPS = ("sort_rounds", "compares")
ATTENTION_OPS = ("macs", "exps", "divs")
SORT_ROUND_COMPARES = 12
"""A 16->4 sort-core round counts as 12 comparisons: one per new input (a convention, stated in the report)."""


@dataclass(frozen=True)
class Workload:
    """One attention layer: its name matches the GPU baseline's ``shape`` key."""

    name: str
    model: str
    heads: int
    depth: int
    seq: int
    causal: bool

    def dense_ops(self) -> float:
        """Dense attention ops of the layer (QK^T and PV, 2 ops per MAC); causal counts half, as the GPU file does."""
        ops = 4.0 * self.seq * self.seq * self.depth * self.heads
        return ops / 2 if self.causal else ops


WORKLOADS = (
    Workload("bert-base-512", "BERT-base", 12, 64, 512, False),
    Workload("bert-large-384", "BERT-large", 16, 64, 384, False),
    Workload("gpt2-1024", "GPT-2", 12, 64, 1024, True),
    Workload("bloom-1.7b-2048", "Bloom-1.7B", 16, 128, 2048, True),
    Workload("pvt-3192", "PVT", 2, 64, 3192, False),
    Workload("llama-7b-512", "Llama-7B", 32, 128, 512, True),
    Workload("llama-7b-4096", "Llama-7B", 32, 128, 4096, True),
    Workload("llama-13b-4096", "Llama-13B", 40, 128, 4096, True),
    Workload("llama-7b-16384", "Llama-7B (16K)", 32, 128, 16384, True),
    Workload("llama-7b-32768", "Llama-7B (32K)", 32, 128, 32768, True),
)


def find_workload(name: str) -> Workload:
    """The workload called `name`; a `KeyError` that lists the known names otherwise."""
    for known in WORKLOADS:
        if known.name == name:
            return known
    raise KeyError(f"unknown workload '{name}'; known: {', '.join(w.name for w in WORKLOADS)}")


def attention_model(heads: int, seq: int, depth: int, causal: bool) -> onnx.ModelProto:
    """An opset-23 `Attention` layer on Q, K, V ``[1, heads, seq, depth]``, batch 1 (causal or not)."""
    problem = AttentionProblem(seq, seq, depth, depth, q_heads=heads, kv_heads=heads, causal=causal)
    return kernels.attention_model(problem)


def random_inputs(heads: int, seq: int, depth: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (1, heads, seq, depth)
    return {name: rng.standard_normal(shape).astype(np.float32) for name in ("q", "k", "v")}


def run_kernels(
    compiled: CompiledModel, inputs: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], list[KernelRun]]:
    """`CompiledModel.run`, keeping every kernel run (its events carry the operation counts)."""
    runner = KernelRunner(compiled.programs, compiled.config)
    interpreter = Interpreter(compiled.host)
    register_all(interpreter)
    interpreter.register_implementations(KernelFunctions(runner))
    args = tuple(np.asarray(inputs[name]).astype(dtype, copy=False) for name, _, dtype in compiled.input_specs())
    results = interpreter.call_op("main", args)
    outputs = {name: np.asarray(value) for name, value in zip(compiled.output_names(), results, strict=True)}
    return outputs, runner.runs


def op_counts(runs: list[KernelRun]) -> dict[str, int]:
    counts = dict.fromkeys(OP_FIELDS, 0)
    for run in runs:
        for name in OP_FIELDS:
            counts[name] += getattr(run.timing.work, name)
    return counts


@dataclass(frozen=True)
class Measurement:
    """One simulated layer. Figures are per layer (scaled); `report` is the unscaled simulated part."""

    workload: Workload
    options: dict[str, Any]
    simulated_heads: int
    simulated_seq: int
    scale: float
    report: Report
    ops: dict[str, float]
    wall_s: float
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    """The simulated heads' outputs (on `random_inputs`), for accuracy beside the cost."""
    tiling: KernelTiling | None = None
    """The tiling the layer's kernel ran (Bc, Tc, n, m) at the simulated length."""

    @property
    def cycles(self) -> float:
        return self.report.total_cycles * self.scale

    @property
    def latency_ms(self) -> float:
        return self.report.time_us * self.scale / 1e3

    @property
    def dram_bytes(self) -> float:
        return (self.report.dram_read_bytes + self.report.dram_write_bytes) * self.scale

    @property
    def energy_uj(self) -> float:
        return self.report.total_energy_pj * self.scale / 1e6

    @property
    def simulated_dense_ops(self) -> float:
        """The simulator's dense-equivalent op count (causal layers count every key), scaled."""
        return self.report.dense_ops * self.scale

    def group_ops(self, names: tuple[str, ...]) -> float:
        """Executed element operations of some `Work` counts (sort rounds weighted as comparisons)."""
        weight = {"sort_rounds": SORT_ROUND_COMPARES}
        return float(sum(self.ops.get(name, 0.0) * weight.get(name, 1) for name in names))

    def total_ops(self) -> float:
        return self.group_ops(PREDICTION_OPS + SELECTION_OPS + ATTENTION_OPS)

    @property
    def length_scaled(self) -> bool:
        return self.simulated_seq != self.workload.seq


def simulate(target: Workload, keep: float, heads: int, seq: int | None = None, **options: Any) -> Measurement:
    """Compile `heads` heads of the layer (at `seq` tokens) with `options` and run them on the simulator."""
    seq = seq or target.seq
    heads = min(heads, target.heads)
    model = attention_model(heads, seq, target.depth, target.causal)
    inputs = random_inputs(heads, seq, target.depth)
    start = time.perf_counter()
    compiled = compile_model(model, keep=keep, **options)
    outputs, runs = run_kernels(compiled, inputs)
    wall = time.perf_counter() - start
    report = combine_reports([run.report for run in runs])
    scale = target.heads / heads * (target.seq / seq) ** 2
    counts = {name: float(value) * scale for name, value in op_counts(runs).items()}
    tiling = next(iter(compiled.tilings.values()), None)
    return Measurement(target, dict(options), heads, seq, scale, report, counts, wall, outputs, tiling)
