"""Masks that repeat along an axis, narrowed to one slice of it.

transformers builds a padding mask as ``[B, 1, S_q, S_kv]``, e.g. ``And(ones[1, 1, S_q, 1],
pad[B, 1, 1, S_kv])``, although it depends only on (batch, key). The accelerator folds a key
padding mask (``[B|1, 1, 1, S_kv]``, see `passes.coordinated_tiling`) but leaves a general
mask on the host. `narrow_mask` finds, from the ops that build the mask, the axes along which
it cannot vary and takes one slice of each, which changes no value of the broadcast mask.
"""

from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from sofa_compiler.frontend.emitter import Emitter, shape_of
from sofa_compiler.frontend.graph import Graph

ELEMENTWISE = frozenset(
    {
        "Abs", "Add", "And", "Cast", "CastLike", "Div", "Equal", "Greater", "GreaterOrEqual", "IsInf", "IsNaN",
        "Less", "LessOrEqual", "Max", "Min", "Mul", "Neg", "Not", "Or", "Sub", "Where", "Xor",
    }
)  # fmt: skip
"""Operators whose result at an index reads only their (broadcast) operands at that index."""


def repeated_axes(graph: Graph, name: str) -> frozenset[int]:
    """Axes of `name`, counted from the end (-1 is the last), along which its value cannot vary."""
    return _repeated(graph, name, {})


def _repeated(graph: Graph, name: str, seen: dict[str, frozenset[int]]) -> frozenset[int]:
    if name in seen:
        return seen[name]
    shape = graph.info(name).shape
    ones = frozenset(axis - len(shape) for axis, size in enumerate(shape) if size == 1)
    seen[name] = ones  # a cycle cannot occur in a valid graph; this bounds the walk anyway
    if (value := graph.consts.get(name)) is not None:
        result = ones | _constant_axes(value)
    elif (node := graph.producer.get(name)) is None:
        result = ones
    elif node.op_type in ELEMENTWISE:
        operands = [operand for operand in node.input if operand]
        if node.op_type == "CastLike":
            operands = operands[:1]
        result = ones
        for axis in range(-len(shape), 0):
            if all(_operand_repeats(graph, operand, axis, seen) for operand in operands):
                result |= {axis}
    elif node.op_type == "Expand":
        source = graph.info(node.input[0]).shape
        inner = _repeated(graph, node.input[0], seen)
        result = ones | {axis for axis in range(-len(shape), 0) if -axis > len(source) or axis in inner}
    else:
        result = ones
    seen[name] = result
    return result


def _operand_repeats(graph: Graph, operand: str, axis: int, seen: dict[str, frozenset[int]]) -> bool:
    """Whether a broadcast operand is constant along `axis` of the result (it lacks the axis, or repeats on it)."""
    return -axis > len(graph.info(operand).shape) or axis in _repeated(graph, operand, seen)


def _constant_axes(value: np.ndarray) -> frozenset[int]:
    return frozenset(
        axis - value.ndim
        for axis in range(value.ndim)
        if value.shape[axis] <= 1 or bool(np.all(value == np.take(value, [0], axis=axis)))
    )


def narrow_mask(graph: Graph, emitter: Emitter, name: str) -> SSAValue:
    """The mask `name` with each axis but the key axis on which it repeats cut to its first slice."""
    value = emitter.value(name)
    shape = list(shape_of(value))
    axes = sorted(axis for axis in repeated_axes(graph, name) if axis != -1 and shape[axis] > 1)
    if not axes:
        return value
    for axis in axes:
        shape[axis] = 1
    bounds = {"starts": [0] * len(axes), "ends": [1] * len(axes), "axes": axes, "steps": [1] * len(axes)}
    return emitter.host("Slice", [value], shape, bounds)
