"""The compiler's attention kernel for one attention shape, ready for the simulator.

Tests and benchmarks that run one attention kernel on the functional machine
use this, so that they exercise the kernel the compiler emits: the shape
becomes one ONNX `Attention` layer (`attention_model`), which
`driver.compile_model` compiles exactly as ``sofa-compile`` would (front end,
coordinated tiling, ISA lowering). `AttentionKernel.inputs` stages Q, K and V
into the kernel's DRAM symbols as the host runtime does
(`runtime.stage_attention_inputs`): heads flattened, sequences padded to whole
tiles, Q, K and V rounded to the datapath's fp16 (`numerics.DATAPATH`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from dialects.sofa import SufaOp, TilingAttr
from sofa_compiler.driver import CompiledModel, CompileError, compile_model
from sofa_compiler.isa.container import Program
from sofa_compiler.runtime import stage_attention_inputs, unstage_attention_output
from sofa_compiler.sim.config import HardwareConfig

ATTENTION_OPSET = 23
"""The first ONNX opset with the `Attention` operator."""


@dataclass(frozen=True)
class AttentionProblem:
    """One attention layer: Q ``[batch, q_heads, sq, depth]``, K/V ``[batch, kv_heads, skv, depth|v_depth]``."""

    sq: int
    skv: int
    depth: int
    v_depth: int
    batch: int = 1
    q_heads: int = 1
    kv_heads: int = 1
    causal: bool = False
    scale: float | None = None
    """None: ONNX's default 1/sqrt(depth); a given scale is stored as an ONNX float (binary32)."""

    @property
    def shapes(self) -> dict[str, tuple[int, int, int, int]]:
        """The layer's inputs ``q``, ``k``, ``v`` and its output ``o``: name -> shape."""
        return {
            "q": (self.batch, self.q_heads, self.sq, self.depth),
            "k": (self.batch, self.kv_heads, self.skv, self.depth),
            "v": (self.batch, self.kv_heads, self.skv, self.v_depth),
            "o": (self.batch, self.q_heads, self.sq, self.v_depth),
        }

    @property
    def logit_scale(self) -> float:
        """The scale the compiled layer applies: the given one rounded to binary32, or 1/sqrt(depth)."""
        if self.scale is None:
            return 1.0 / math.sqrt(self.depth)
        return float(np.float32(self.scale))


def attention_model(problem: AttentionProblem) -> onnx.ModelProto:
    """One opset-23 `Attention` node on 4-D fp32 ``q``, ``k``, ``v`` with output ``o``."""
    values = {
        name: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in problem.shapes.items()
    }
    attrs: dict[str, Any] = {"is_causal": int(problem.causal)}
    if problem.scale is not None:
        attrs["scale"] = problem.scale
    node = helper.make_node("Attention", ["q", "k", "v"], ["o"], **attrs)
    graph = helper.make_graph([node], "attention", [values["q"], values["k"], values["v"]], [values["o"]])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ATTENTION_OPSET)])
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)
    return model


@dataclass(frozen=True)
class AttentionKernel:
    """The compiled layer of an `AttentionProblem`: its one accelerator kernel, its tiling and how to feed it."""

    problem: AttentionProblem
    program: Program
    tiling: TilingAttr
    """The `#sofa.tiling` (lanes, KV tile Bc, padded lengths) the tiling pass chose."""
    compiled: CompiledModel

    def inputs(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
        """The kernel's input symbols for Q, K, V (4-D, or 2-D ``[S, d]`` for one head), staged as the runtime does."""
        shapes = self.problem.shapes
        return stage_attention_inputs(self.program, *(np.reshape(x, shapes[n]) for n, x in zip("qkv", (q, k, v))))

    def output(self, o: np.ndarray) -> np.ndarray:
        """The layer's output ``[batch, q_heads, sq, v_depth]`` from the kernel's ``o`` symbol."""
        return unstage_attention_output(self.program, o, self.problem.shapes["q"])


def compile_attention(
    problem: AttentionProblem, target: HardwareConfig | str | None = None, **options: Any
) -> AttentionKernel:
    """Compile `problem` for `target` (default: the paper's design) with `compile_model`'s options.

    ``options`` are `driver.compile_model`'s: ``keep``, ``tile``, ``radius``
    (in logits), ``pipeline`` and the feature knobs. A `CompileError` if the
    layer does not become exactly one accelerator kernel.
    """
    compiled = compile_model(attention_model(problem), target, **options)
    if len(compiled.programs) != 1:
        raise CompileError(f"the attention layer compiled to {len(compiled.programs)} kernels, expected one")
    (program,) = compiled.programs.values()
    tiled = next(stage.snapshot for stage in reversed(compiled.stages) if stage.name == "tiled")
    tiling = next(op.tiling for op in tiled.walk() if isinstance(op, SufaOp) and op.tiling is not None)
    return AttentionKernel(problem, program, tiling, compiled)
