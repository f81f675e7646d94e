"""Building the IR: a value table from ONNX names to SSA values, and op helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from xdsl.dialects.builtin import IntegerAttr, TensorType, i64
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.utils.exceptions import VerifyException

from dialects.host import ConstantOp, OnnxOp, element_type
from dialects.sofa import AttentionOp, KvProjectionOp
from sofa_compiler.frontend.errors import FrontendError
from sofa_compiler.frontend.graph import Graph, TensorInfo


def tensor_type(info: TensorInfo) -> TensorType[Attribute]:
    try:
        return TensorType(element_type(info.dtype), info.shape)
    except VerifyException:
        supported = "bf16, f16, f32, f64, ints or bool"
        raise FrontendError(f"element type {info.dtype} is not supported (use {supported})") from None


def shape_of(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return tuple(value.type.get_shape())


def element_of(value: SSAValue) -> Attribute:
    assert isinstance(value.type, TensorType)
    return value.type.get_element_type()


class Emitter:
    """Appends ops to the function body and maps ONNX value names to SSA values."""

    def __init__(self, graph: Graph, block: Block):
        self.graph = graph
        self.block = block
        self.values: dict[str, SSAValue] = {}

    def add(self, op: Operation) -> Operation:
        self.block.add_op(op)
        return op

    def value(self, name: str) -> SSAValue:
        """The SSA value of an ONNX value; constants are materialised on first use."""
        if name not in self.values:
            self.values[name] = self.constant(self.graph.consts[name])
        return self.values[name]

    def constant(self, array: np.ndarray) -> SSAValue:
        return self.add(ConstantOp.from_array(array)).results[0]

    def host(
        self,
        op_type: str,
        inputs: Sequence[SSAValue],
        result_shape: Sequence[int],
        attrs: dict[str, Any] | None = None,
        element: Attribute | None = None,
    ) -> SSAValue:
        """One host op with one result of the operand's element type (unless given)."""
        result = TensorType(element or element_of(inputs[0]), result_shape)
        return self.add(OnnxOp(op_type, inputs, [result], attrs)).results[0]

    def reshape(self, value: SSAValue, shape: Sequence[int]) -> SSAValue:
        return value if shape_of(value) == tuple(shape) else self.host("Reshape", [value], shape)

    def transpose(self, value: SSAValue, perm: Sequence[int]) -> SSAValue:
        if tuple(perm) == tuple(range(len(perm))):
            return value
        shape = shape_of(value)
        return self.host("Transpose", [value], [shape[p] for p in perm], {"perm": tuple(perm)})

    def split_heads(self, value: SSAValue, heads: int) -> SSAValue:
        """``[B, S, H * d]`` -> ``[B, H, S, d]``, as the exporters' Reshape + Transpose."""
        batch, length, hidden = shape_of(value)
        return self.transpose(self.reshape(value, [batch, length, heads, hidden // heads]), [0, 2, 1, 3])

    def merge_heads(self, value: SSAValue) -> SSAValue:
        """``[B, H, S, d]`` -> ``[B, S, H * d]``."""
        batch, heads, length, depth = shape_of(value)
        return self.reshape(self.transpose(value, [0, 2, 1, 3]), [batch, length, heads * depth])

    def attention(
        self,
        q: SSAValue,
        k: SSAValue,
        v: SSAValue,
        *,
        scale: float,
        causal: bool,
        mask: SSAValue | None,
        softcap: float = 0.0,
    ) -> SSAValue:
        batch, q_heads, q_length, _ = shape_of(q)
        kv_heads = shape_of(k)[1]
        result = TensorType(element_of(q), [batch, q_heads, q_length, shape_of(v)[3]])
        op = AttentionOp(
            q, k, v, result, scale=scale, q_heads=q_heads, kv_heads=kv_heads, causal=causal, mask=mask, softcap=softcap
        )
        return self.add(op).results[0]

    def kv_projection(
        self,
        x: SSAValue,
        weights: tuple[np.ndarray, np.ndarray],
        biases: tuple[np.ndarray | None, np.ndarray | None],
        kv_heads: int,
    ) -> tuple[SSAValue, SSAValue]:
        batch, length, _ = shape_of(x)
        w_k, w_v = (self.constant(w) for w in weights)
        b_k, b_v = (None if b is None else self.constant(b) for b in biases)
        result_types = [TensorType(element_of(x), [batch, kv_heads, length, w.shape[1] // kv_heads]) for w in weights]
        op = KvProjectionOp(
            operands=[x, w_k, w_v, b_k, b_v],
            result_types=result_types,
            properties={"kv_heads": IntegerAttr(kv_heads, i64)},
        )
        self.add(op)
        return op.results[0], op.results[1]
