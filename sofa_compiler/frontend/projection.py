"""Recognising constant K/V projections: K = X.W_k (+ b_k), V = X.W_v (+ b_v).

SOFA predicts scores from X and W_k before K exists and generates only the
K/V rows it keeps (on-demand KV), so the importer records the projections
as `sofa.kv_projection` when it can trace both K and V to the same X through
constant weights. The traced host ops become dead and are removed.

Rotary embeddings make K = RoPE(X.W_k), which depends on each key's position:
not a projection. `trace_linear` passes only MatMul, bias Add and last-axis
Split/Slice, so it stops at the rotation's Mul/Add (or RotaryEmbedding) and
such a model reads host-computed K and V (README, Status).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from xdsl.ir import SSAValue

from dialects.host import is_float_dtype
from sofa_compiler.frontend.emitter import Emitter
from sofa_compiler.frontend.graph import Graph, attributes

HEAD_SPLIT = (0, 2, 1, 3)


@dataclass(frozen=True)
class Linear:
    """``x . weight (+ bias)`` with constant ``weight`` ``[H, N]`` and ``bias`` ``[N]``."""

    x: str
    weight: np.ndarray
    bias: np.ndarray | None

    def columns(self, selected: slice | np.ndarray) -> Linear:
        bias = None if self.bias is None else self.bias[selected]
        return Linear(self.x, self.weight[:, selected], bias)


def trace_linear(graph: Graph, name: str) -> Linear | None:
    """`name` as a linear function of a 3-D activation, looking through bias adds and column splits."""
    node = graph.producer.get(name)
    if node is None:
        return None
    if node.op_type == "MatMul":
        weight = graph.consts.get(node.input[1])
        x = node.input[0]
        if weight is None or weight.ndim != 2 or x in graph.consts or len(graph.info(x).shape) != 3:
            return None
        return Linear(x, weight, None)
    if node.op_type == "Add":
        for data, other in ((0, 1), (1, 0)):
            bias = graph.consts.get(node.input[other])
            inner = None if bias is None else trace_linear(graph, node.input[data])
            if inner is None or inner.bias is not None or bias is None:
                continue
            width = inner.weight.shape[1]
            if bias.size == width and bias.shape[-1:] == (width,):
                return Linear(inner.x, inner.weight, bias.reshape(width))
        return None
    if node.op_type in ("Split", "Slice"):
        selected = _column_selection(graph, node, name)
        inner = None if selected is None else trace_linear(graph, node.input[0])
        return None if inner is None or selected is None else inner.columns(selected)
    if node.op_type == "Reshape":
        return _flattened_gemm(graph, node)
    return None


def _flattened_gemm(graph: Graph, unflatten: onnx.NodeProto) -> Linear | None:
    """Reshape([B*S, N] -> [B, S, N]) of Gemm(Reshape(x: [B, S, H] -> [B*S, H]), W (, b)), as torch's
    dynamo exporter writes transformers' Conv1D (GPT-2's c_attn)."""
    gemm = graph.producer.get(unflatten.input[0])
    if gemm is None or gemm.op_type != "Gemm" or len(graph.info(unflatten.output[0]).shape) != 3:
        return None
    flatten = graph.producer.get(gemm.input[0])
    options = attributes(gemm)
    weight = graph.consts.get(gemm.input[1])
    if flatten is None or flatten.op_type != "Reshape" or weight is None or weight.ndim != 2:
        return None
    if options.get("transA", 0) or options.get("alpha", 1.0) != 1.0 or options.get("beta", 1.0) != 1.0:
        return None
    x = flatten.input[0]
    x_shape, out_shape = graph.info(x).shape, graph.info(unflatten.output[0]).shape
    if x in graph.consts or len(x_shape) != 3 or x_shape[:2] != out_shape[:2]:
        return None
    weight = weight.T if options.get("transB", 0) else weight
    bias = graph.consts.get(gemm.input[2]) if len(gemm.input) > 2 and gemm.input[2] else None
    if len(gemm.input) > 2 and gemm.input[2] and (bias is None or bias.size != weight.shape[1]):
        return None  # a bias computed at run time, or one that is not per column
    return Linear(x, weight, None if bias is None else bias.reshape(weight.shape[1]))


def _column_selection(graph: Graph, node, name: str) -> slice | None:
    """The columns of the last axis that a Split output or Slice keeps, or None if it cuts another axis."""
    source = graph.info(node.input[0]).shape
    last = len(source) - 1
    if node.op_type == "Split":
        if attributes(node).get("axis", 0) % len(source) != last:
            return None
        offset = 0
        for output in node.output:
            width = graph.info(output).shape[last]
            if output == name:
                return slice(offset, offset + width)
            offset += width
        return None
    starts, ends, *rest = (graph.consts.get(operand) for operand in node.input[1:])
    axes = rest[0] if rest and rest[0] is not None else np.arange(len(starts or []))
    steps = rest[1] if len(rest) > 1 and rest[1] is not None else np.ones_like(axes)
    if starts is None or ends is None or len(axes) != 1 or int(axes[0]) % len(source) != last or int(steps[0]) != 1:
        return None
    start, stop, _ = slice(int(starts[0]), int(ends[0])).indices(source[last])
    return slice(start, stop)


def head_split_source(graph: Graph, name: str, perm: tuple[int, ...]) -> tuple[str, int] | None:
    """For ``transpose(name, perm)`` written as Reshape [B,S,H*d] -> [B,S,H,d] + Transpose(0,2,1,3):
    the 3-D ``[B, S, H*d]`` value and H."""
    node = graph.producer.get(name)
    if perm == (0, 1, 2, 3) and node is not None and node.op_type == "Transpose":
        perm = tuple(attributes(node)["perm"])
        node = graph.producer.get(node.input[0])
    if perm != HEAD_SPLIT or node is None or node.op_type != "Reshape":
        return None
    source, split = graph.info(node.input[0]).shape, graph.info(node.output[0]).shape
    if len(source) != 3 or len(split) != 4 or split[:2] != source[:2] or split[2] * split[3] != source[2]:
        return None
    return node.input[0], split[2]


def emit_kv_projection(
    graph: Graph,
    emitter: Emitter,
    k_source: tuple[str, int] | None,
    v_source: tuple[str, int] | None,
) -> tuple[SSAValue, SSAValue] | None:
    """`sofa.kv_projection` for K and V given as 3-D values with their head counts, if both trace to one X."""
    if k_source is None or v_source is None or k_source[1] != v_source[1]:
        return None
    k_linear, v_linear = trace_linear(graph, k_source[0]), trace_linear(graph, v_source[0])
    if k_linear is None or v_linear is None or k_linear.x != v_linear.x:
        return None
    x = emitter.value(k_linear.x)
    if not all(is_float_dtype(a.dtype) for a in (k_linear.weight, v_linear.weight)):
        return None
    dtype = graph.info(k_linear.x).dtype
    weights = (k_linear.weight.astype(dtype), v_linear.weight.astype(dtype))
    biases = tuple(None if b is None else b.astype(dtype) for b in (k_linear.bias, v_linear.bias))
    return emitter.kv_projection(x, weights, (biases[0], biases[1]), k_source[1])
