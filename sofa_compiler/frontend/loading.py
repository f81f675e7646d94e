"""`load_graph`: an ONNX model as a checked `Graph` with static shapes and its constants folded.

It does everything that can fail before IR is built, so each kind of bad
model gets its own message: unreadable file, opset out of range, unsupported
operators (all at once), unresolvable dynamic shapes. Constant subgraphs
(shape arithmetic, masks built from constants) are folded here, so the
pattern matcher sees their values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dialects.host import HOST_OP_TYPES
from sofa_compiler.frontend.errors import FrontendError
from sofa_compiler.frontend.graph import (
    Graph,
    attributes,
    check_attention_types,
    check_operators,
    check_opset,
    check_structure,
    describe,
    element_dtype,
    fix_input_shapes,
    infer_shapes,
    initializer_array,
    read_model,
    static_infos,
)
from sofa_compiler.interpreters.host import run_kernel

FOLDED_ONLY = frozenset({"Constant", "Shape", "Size", "ConstantOfShape", "Range"})
"""Operators that only ever compute constants here (shapes are static)."""

TYPE_OPERAND = {"CastLike": 1}
"""Inputs that only give the result's element type (the host form is a Cast to it)."""

SHAPE_OPERAND = {"Reshape": 1, "Expand": 1, "Squeeze": 1, "Unsqueeze": 1, "Split": 1}
"""Inputs that only describe the result shape; the static result type replaces them."""

STEERING_INPUTS: Mapping[str, tuple[str, ...]] = {
    "Slice": ("starts", "ends", "axes", "steps"),
    "Trilu": ("k",),
    "Pad": ("pads", "constant_value", "axes"),
    "Tile": ("repeats",),
    "Clip": ("min", "max"),
    "ReduceMean": ("axes",),
    "ReduceSum": ("axes",),
    "ReduceMax": ("axes",),
}
"""Inputs (after the first) that must be constant; they become attributes."""
VECTOR_STEERING = frozenset({"starts", "ends", "axes", "steps", "pads", "repeats"})
"""Steering inputs the ONNX spec makes 1-D (the rest are scalars)."""


def load_graph(model: str | Path | onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    proto = onnx.ModelProto()
    proto.CopyFrom(read_model(model))
    opset = check_opset(proto)
    check_operators(proto)
    check_structure(proto)
    fix_input_shapes(proto, input_shapes or {})
    check_attention_types(proto)
    proto = infer_shapes(proto)
    initializers = {init.name: initializer_array(init) for init in proto.graph.initializer}
    graph = Graph(
        model=proto,
        opset=opset,
        nodes=list(proto.graph.node),
        inputs=[value.name for value in proto.graph.input if value.name not in initializers],
        outputs=[value.name for value in proto.graph.output],
        infos=static_infos(proto),
        consts=dict(initializers),
    )
    for node in graph.nodes:
        for name in node.output:
            graph.producer[name] = node
        for name in node.input:
            if name:
                graph.consumers.setdefault(name, []).append(node)
    resolve_shapes(graph)
    return graph


def constant_attribute(node: onnx.NodeProto) -> np.ndarray:
    (attribute,) = node.attribute
    value = helper.get_attribute_value(attribute)
    if isinstance(value, onnx.TensorProto):
        return initializer_array(value)
    dtypes = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64, "value_ints": np.int64}
    if attribute.name not in dtypes:
        raise FrontendError(f"{describe(node)}: attribute '{attribute.name}' is not supported")
    return np.array(value, dtype=dtypes[attribute.name])


def _fold_shape_op(node: onnx.NodeProto, graph: Graph) -> np.ndarray | None:
    """Constant, Shape, Size, ConstantOfShape and Range: constants once shapes are static."""
    attrs = attributes(node)
    if node.op_type == "Constant":
        return constant_attribute(node)
    if node.op_type in ("Shape", "Size"):
        shape = graph.info(node.input[0]).shape
        if node.op_type == "Size":
            return np.array(int(np.prod(shape)), dtype=np.int64)
        return np.array(shape[attrs.get("start", 0) : attrs.get("end", len(shape))], dtype=np.int64)
    inputs = [graph.consts.get(name) for name in node.input]
    if any(value is None for value in inputs):
        return None
    if node.op_type == "ConstantOfShape":
        fill = attrs.get("value")
        fill_array = numpy_helper.to_array(fill) if fill is not None else np.zeros(1, np.float32)
        return np.full(tuple(int(d) for d in inputs[0]), fill_array.reshape(-1)[0], dtype=fill_array.dtype)
    start, limit, delta = (np.asarray(value).reshape(()) for value in inputs)
    return np.arange(start, limit, delta, dtype=np.result_type(start, limit, delta))


def host_form(node: onnx.NodeProto, graph: Graph) -> tuple[str, list[str], dict[str, Any]]:
    """The `host.onnx` form of a node: op type, data operands, normalised attributes."""
    op_type = "Identity" if node.op_type == "Dropout" else node.op_type
    attrs = attributes(node)
    inputs = list(node.input)
    if op_type == "Identity":
        attrs, inputs = {}, inputs[:1]
    if op_type == "CastLike":
        target = helper.np_dtype_to_tensor_dtype(_element_type(graph, inputs[TYPE_OPERAND[op_type]]))
        op_type, attrs, inputs = "Cast", {"to": target, **attrs}, inputs[:1]
    if op_type in SHAPE_OPERAND:
        inputs = inputs[: SHAPE_OPERAND[op_type]]
        attrs.pop("axes", None)
        attrs.pop("split", None)
        attrs.pop("num_outputs", None)
    for position, name in enumerate(STEERING_INPUTS.get(op_type, ()), start=1):
        if position >= len(inputs) or not inputs[position]:
            continue
        value = graph.consts.get(inputs[position])
        if value is None:
            raise FrontendError(f"{describe(node)}: input '{name}' must be a constant (it is computed at run time)")
        if name in VECTOR_STEERING and value.ndim != 1:
            raise FrontendError(f"{describe(node)}: input '{name}' must be 1-D, got shape {list(value.shape)}")
        attrs[name] = value.tolist() if value.ndim else value.item()
        if isinstance(attrs[name], list):
            attrs[name] = tuple(attrs[name])
    inputs = [name for name in inputs[: 1 if op_type in STEERING_INPUTS else None] if name]
    if op_type == "Pad" and "axes" in attrs:
        attrs["pads"] = _pads_for_all_axes(attrs.pop("axes"), attrs["pads"], graph.info(inputs[0]).shape)
    return op_type, inputs, _with_defaults(op_type, attrs, node, graph)


def _pads_for_all_axes(axes: Sequence[int], pads: Sequence[int], shape: tuple[int, ...]) -> tuple[int, ...]:
    """Pad's (begins, ends) over the listed axes, spread over every axis (the host kernel takes those)."""
    rank = len(shape)
    full = [0] * (2 * rank)
    for position, axis in enumerate(axes):
        full[axis % rank] = pads[position]
        full[rank + axis % rank] = pads[len(axes) + position]
    return tuple(full)


def _element_type(graph: Graph, name: str) -> np.dtype[Any]:
    """A value's element type, known from ONNX's type inference even while its shape is still dynamic."""
    if name in graph.consts or name in graph.infos:
        return graph.info(name).dtype
    model = graph.model.graph
    for value in (*model.input, *model.value_info, *model.output):
        if value.name == name and value.type.tensor_type.elem_type:
            return element_dtype(value.type.tensor_type.elem_type, name)
    return graph.info(name).dtype  # raises: no type known


def _with_defaults(op_type: str, attrs: dict[str, Any], node: onnx.NodeProto, graph: Graph) -> dict[str, Any]:
    """Fill in ONNX defaults so the host op carries every attribute its kernel reads."""
    rank = len(graph.info(node.input[0]).shape) if node.input and node.input[0] else 0
    if op_type == "Transpose":
        attrs.setdefault("perm", tuple(reversed(range(rank))))
    elif op_type in ("Split", "Gather"):
        attrs.setdefault("axis", 0)
    elif op_type == "Softmax":
        attrs.setdefault("axis", -1)
    elif op_type == "LayerNormalization":
        attrs.setdefault("axis", -1)
        attrs.setdefault("epsilon", 1e-5)
        attrs.pop("stash_type", None)
    elif op_type == "Slice":
        attrs.setdefault("axes", tuple(range(len(attrs["starts"]))))
        attrs.setdefault("steps", (1,) * len(attrs["starts"]))
    elif op_type == "Trilu":
        attrs.setdefault("upper", 1)
        attrs.setdefault("k", 0)
    elif op_type == "Pad":
        attrs.setdefault("mode", "constant")
        attrs.setdefault("constant_value", 0)
    elif op_type.startswith("Reduce"):
        if attrs.get("noop_with_empty_axes", 0) and not attrs.get("axes"):
            raise FrontendError(f"{describe(node)}: noop_with_empty_axes is not supported")
        attrs.pop("noop_with_empty_axes", None)
        attrs.setdefault("axes", ())
        attrs.setdefault("keepdims", 1)
        if isinstance(attrs["axes"], int):
            attrs["axes"] = (attrs["axes"],)
    elif op_type == "Cast":
        attrs.pop("saturate", None)
    return attrs


def _folded_result_shapes(node: onnx.NodeProto, graph: Graph, inputs: list[np.ndarray]) -> list[tuple[int, ...] | None]:
    """Result shapes of a node with constant inputs, for the shape-only operands the host form drops."""
    op_type = node.op_type
    data = inputs[0] if inputs else None
    if op_type in ("Reshape", "Expand", "Squeeze", "Unsqueeze", "Split") and node.output[0] in graph.infos:
        return [graph.infos[name].shape for name in node.output if name]
    assert data is not None or op_type not in SHAPE_OPERAND
    if op_type == "Reshape":
        target = [int(d) for d in graph.consts[node.input[1]]]
        target = [
            data.shape[i] if d == 0 and not attributes(node).get("allowzero", 0) else d for i, d in enumerate(target)
        ]
        return [np.empty(data.shape).reshape(target).shape]
    if op_type == "Expand":
        return [np.broadcast_shapes(data.shape, tuple(int(d) for d in graph.consts[node.input[1]]))]
    if op_type in ("Squeeze", "Unsqueeze"):
        axes_name = node.input[1] if len(node.input) > 1 and node.input[1] else None
        axes = [int(a) for a in graph.consts[axes_name]] if axes_name else None
        if op_type == "Squeeze":
            return [np.squeeze(data, axis=tuple(axes) if axes is not None else None).shape]
        return [np.expand_dims(data, axis=tuple(axes or ())).shape]
    if op_type == "Split":
        axis = attributes(node).get("axis", 0) % data.ndim
        count = len(node.output)
        if len(node.input) > 1 and node.input[1]:
            sizes = [int(s) for s in graph.consts[node.input[1]]]
        else:
            size = -(-data.shape[axis] // count)
            sizes = [min(size, data.shape[axis] - i * size) for i in range(count)]
        return [tuple(s if i == axis else d for i, d in enumerate(data.shape)) for s in sizes]
    return [graph.infos[name].shape if name in graph.infos else None for name in node.output if name]


def resolve_shapes(graph: Graph, rounds: int = 4) -> None:
    """Fold constants, then re-infer shapes with the folded values as initializers, until nothing changes.

    ONNX shape inference cannot follow every shape computation exporters
    write (Mod, Div on shapes, ...); constant folding can, and re-inference
    then gives static types to what those shapes feed (Reshape, Expand).
    """
    for _ in range(rounds):
        fold_constants(graph, final=False)
        live = [node for node in graph.nodes if not all(name in graph.consts for name in node.output if name)]
        missing = [name for node in live for name in node.output if name and name not in graph.infos]
        if not missing:
            break
        used = {name for node in live for name in node.input if name in graph.consts}
        model = onnx.ModelProto()
        model.CopyFrom(graph.model)
        model.graph.ClearField("node")
        model.graph.node.extend(live)
        model.graph.ClearField("initializer")
        model.graph.initializer.extend(numpy_helper.from_array(graph.consts[name], name) for name in sorted(used))
        # Inference keeps a dynamic dim it wrote before ('unk__0'): give it only the static types found so far.
        model.graph.ClearField("value_info")
        model.graph.value_info.extend(
            helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(info.dtype), info.shape)
            for node in live
            for name in node.output
            if (info := graph.infos.get(name)) is not None and name not in graph.outputs
        )
        before = len(graph.infos)
        graph.infos.update(static_infos(infer_shapes(model)))
        if len(graph.infos) == before:
            break
    fold_constants(graph, final=True)


def fold_constants(graph: Graph, final: bool = True) -> None:
    """Compute every value whose inputs are all constant, with the host kernels."""
    for node in graph.nodes:
        if all(name in graph.consts for name in node.output if name):
            continue
        if node.op_type in FOLDED_ONLY:
            try:
                value = _fold_shape_op(node, graph)
            except FrontendError:
                if final:
                    raise
                continue
            if value is None:
                if not final:
                    continue
                raise FrontendError(f"{describe(node)}: its inputs are computed at run time, so its result is dynamic")
            graph.consts[node.output[0]] = value
            continue
        operands = [name for i, name in enumerate(node.input) if name and i != TYPE_OPERAND.get(node.op_type)]
        if node.op_type == "Attention" or not all(name in graph.consts for name in operands):
            continue
        if node.op_type not in HOST_OP_TYPES and node.op_type not in ("Dropout", *TYPE_OPERAND):
            _fold_with_reference(node, graph)
            continue
        op_type, inputs, attrs = host_form(node, graph)
        arrays = [graph.consts[name] for name in inputs]
        try:
            # Shapes too: a bad shape operand (a negative Expand dim, say) is the model's error.
            shapes = _folded_result_shapes(node, graph, [graph.consts[name] for name in operands])
            types = [(shape, _dtype(node, graph, i, arrays)) for i, shape in enumerate(shapes)]
            results = run_kernel(op_type, arrays, attrs, types)
        except (ValueError, IndexError, KeyError, TypeError) as error:
            raise FrontendError(f"{describe(node)}: cannot fold its constant inputs: {error}") from None
        for name, value in zip((name for name in node.output if name), results, strict=False):
            graph.consts[name] = value


def _fold_with_reference(node: onnx.NodeProto, graph: Graph) -> None:
    """Fold a node the numpy table lacks with onnx's reference evaluator (it covers every standard op)."""
    from onnx.reference import ReferenceEvaluator

    from sofa_compiler.frontend.reference_fixes import REFERENCE_FIXES

    inputs = [name for name in node.input if name]
    outputs = [name for name in node.output if name]
    body = helper.make_graph(
        [node],
        "fold",
        [],
        [helper.make_empty_tensor_value_info(name) for name in outputs],
        [numpy_helper.from_array(graph.consts[name], name) for name in dict.fromkeys(inputs)],
    )
    model = helper.make_model(body, opset_imports=list(graph.model.opset_import))
    try:
        results = ReferenceEvaluator(model, new_ops=REFERENCE_FIXES).run(None, {})
    except Exception as error:  # the evaluator raises whatever its op implementation does
        raise FrontendError(f"{describe(node)}: cannot fold its constant inputs: {error}") from None
    for name, value in zip(outputs, results, strict=True):
        graph.consts[name] = np.asarray(value)


def _dtype(node: onnx.NodeProto, graph: Graph, index: int, inputs: list[np.ndarray]) -> np.dtype[Any]:
    name = node.output[index]
    if name in graph.infos:
        return graph.infos[name].dtype
    if node.op_type == "Cast":
        return np.dtype(helper.tensor_dtype_to_np_dtype(attributes(node)["to"]))
    if node.op_type in TYPE_OPERAND:
        return _element_type(graph, node.input[TYPE_OPERAND[node.op_type]])
    if node.op_type in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Not"):
        return np.dtype(np.bool_)
    if node.op_type == "Where":
        return inputs[1].dtype
    return inputs[0].dtype
