"""An ONNX graph after loading: checked, shape-inferred, constants folded.

`load_graph` does everything that can fail before IR is built, so each kind
of bad model gets its own message: unreadable file, opset out of range,
unsupported operators (all at once), unresolvable dynamic shapes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper, shape_inference

from dialects.host import HOST_OP_TYPES
from sofa_compiler.frontend.errors import FrontendError
from sofa_compiler.interpreters.host import run_kernel

MAX_ELEMENTS = 1 << 32
"""Largest tensor the front end accepts; larger static shapes are corrupt (numpy would try to allocate them)."""

MIN_OPSET = 13
"""Opset 13 moved Squeeze/Unsqueeze/Split axes to inputs and fixed Softmax's axis semantics."""
MAX_OPSET = 24
"""The newest `Attention` the front end implements (opset 25 adds window attributes)."""

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


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: np.dtype[Any]


@dataclass
class Graph:
    """The main graph with the facts the importer needs about every value."""

    model: onnx.ModelProto
    opset: int
    nodes: list[onnx.NodeProto]
    inputs: list[str]
    outputs: list[str]
    infos: dict[str, TensorInfo]
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)

    def info(self, name: str) -> TensorInfo:
        if name in self.consts:
            return TensorInfo(self.consts[name].shape, self.consts[name].dtype)
        if name not in self.infos:
            producer = self.producer.get(name)
            where = f" produced by {describe(producer)}" if producer is not None else ""
            raise FrontendError(
                f"the shape of '{name}'{where} cannot be resolved to static dimensions; "
                f"give static input shapes: {STATIC_SHAPE_HINT}"
            )
        return self.infos[name]

    def uses(self, name: str) -> list[onnx.NodeProto]:
        """The nodes `name` feeds that run (a folded node, such as CastLike's type operand use, does not)."""
        return [node for node in self.consumers.get(name, []) if not all(out in self.consts for out in node.output)]

    def single_use(self, name: str) -> bool:
        """Whether `name` feeds exactly one running node and is not a graph output."""
        return len(self.uses(name)) == 1 and name not in self.outputs

    def scalar(self, name: str) -> float | None:
        """The value of a one-element float constant, or None."""
        value = self.consts.get(name)
        if value is None or value.size != 1 or not np.issubdtype(value.dtype, np.floating):
            return None
        return float(value.reshape(()))


def describe(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node '{node.name or (node.output[0] if node.output else '?')}'"


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as python values (strings decoded, lists as tuples)."""
    values: dict[str, Any] = {}
    for attribute in node.attribute:
        if not isinstance(attribute.name, str):  # protobuf hands back bytes for names that are not UTF-8
            raise FrontendError(f"{describe(node)}: attribute name {attribute.name!r} is not valid UTF-8")
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError:
                raise FrontendError(f"{describe(node)}: attribute '{attribute.name}' is not valid UTF-8") from None
        elif isinstance(value, list):
            value = tuple(item.decode() if isinstance(item, bytes) else item for item in value)
        values[attribute.name] = value
    return values


# ---------------------------------------------------------------------------
# Loading and checks
# ---------------------------------------------------------------------------


def read_model(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise FrontendError(f"cannot read '{path}': no such file")
    try:
        loaded = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError) as error:
        raise FrontendError(f"cannot read '{path}': not a valid ONNX file (truncated or corrupt?): {error}") from None
    if not loaded.graph.node and not loaded.graph.output:
        raise FrontendError(f"cannot read '{path}': the file holds no ONNX graph (empty, truncated or corrupt?)")
    return loaded


def check_opset(model: onnx.ModelProto) -> int:
    versions = {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}
    opset = versions.get("ai.onnx")
    if opset is None:
        raise FrontendError("the model imports no ai.onnx opset")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise FrontendError(
            f"the model uses ai.onnx opset {opset}; sofa-import supports opsets {MIN_OPSET} to {MAX_OPSET} "
            "(re-export the model with a supported opset_version)"
        )
    return opset


def check_operators(model: onnx.ModelProto) -> None:
    """Raise one error that lists every unsupported operator type, with counts and node names."""
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for index, node in enumerate(model.graph.node):
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        # Host partitions run on onnxruntime: every standard operator is welcome.
        if not domain and isinstance(node.op_type, str) and onnx.defs.has(node.op_type):
            continue
        # Names that are not UTF-8 come back from protobuf as bytes.
        op_type, domain = (text if isinstance(text, str) else repr(text) for text in (node.op_type, domain))
        kind = f"{domain}.{op_type}" if domain else op_type
        counts[kind] += 1
        examples.setdefault(kind, []).append(node.name or f"#{index}")
    if not counts:
        return
    lines = []
    for kind, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        names = examples[kind]
        shown = ", ".join(f"'{name}'" for name in names[:3]) + (", ..." if len(names) > 3 else "")
        lines.append(f"  {kind} x{count} (nodes {shown})")
    total = len(counts)
    raise FrontendError(
        f"the model uses {total} unsupported operator type{'s' if total > 1 else ''}:\n" + "\n".join(lines)
    )


def check_structure(model: onnx.ModelProto) -> None:
    """Reject models the ONNX checker rejects (undefined inputs, bad types, unsorted nodes, ...).

    Without this, a dangling edge or an unknown data type surfaces later as a
    KeyError deep in the importer instead of a message about the model.
    """
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FrontendError(f"the model is not valid ONNX: {detail}") from None


def element_dtype(elem_type: int, name: str) -> np.dtype[Any]:
    """The numpy dtype of an ONNX element type; an unknown code is a `FrontendError`."""
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        raise FrontendError(f"'{name}' has an unknown ONNX element type {elem_type}") from None


def initializer_array(tensor: onnx.TensorProto) -> np.ndarray:
    """An initializer as numpy; corrupt data (size not matching dims, bad type) is a `FrontendError`."""
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError) as error:
        raise FrontendError(f"initializer '{tensor.name}' is corrupt: {error}") from None


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    shape = value.type.tensor_type.shape
    if not value.type.tensor_type.HasField("shape"):
        return ["?"]
    return [dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?") for dim in shape.dim]


STATIC_SHAPE_HINT = "--input-shape NAME=D0,D1,... (input_shapes= in Python)"
"""How to give static input shapes: every tool that imports ONNX has the flag (`sofa_compiler.cli`)."""


def shape_problem(given: Sequence[int], declared: list[int | str]) -> str | None:
    """Why `given` cannot be the shape of an input the model declares `declared`, or None."""
    if any(not isinstance(dim, int | np.integer) or dim < 1 for dim in given):
        return "its dimensions must be positive integers"
    if declared == ["?"]:
        return None
    if len(given) != len(declared):
        return f"it has {len(given)} dimensions, the model's input has {len(declared)}: {declared}"
    for index, (dim, fixed) in enumerate(zip(given, declared, strict=True)):
        if isinstance(fixed, int) and fixed > 0 and dim != fixed:
            return f"dimension {index} is {dim}, the model fixes it to {fixed}: {declared}"
    return None


def fix_input_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> None:
    """Apply user-given input shapes and reject inputs that stay dynamic."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = {value.name: value for value in model.graph.input if value.name not in initializers}
    unknown = sorted(set(input_shapes) - set(inputs))
    if unknown:
        raise FrontendError(f"--input-shape names unknown input(s) {unknown}; the inputs are {sorted(inputs)}")
    dynamic = []
    for name, value in inputs.items():
        if not value.type.HasField("tensor_type"):
            raise FrontendError(f"input '{name}' is not a tensor; only tensor inputs are supported")
        if name in input_shapes:
            if problem := shape_problem(input_shapes[name], _dims(value)):
                raise FrontendError(
                    f"the shape given for input '{name}', {list(input_shapes[name])}, is wrong: {problem}"
                )
            shape = value.type.tensor_type.shape
            shape.ClearField("dim")
            for dim in input_shapes[name]:
                shape.dim.add().dim_value = int(dim)
            continue
        dims = _dims(value)
        if any(not isinstance(dim, int) or dim <= 0 for dim in dims):
            dynamic.append(f"'{name}' {dims}")
    if dynamic:
        raise FrontendError(
            f"input(s) with dynamic shapes: {', '.join(dynamic)}; the accelerator needs static shapes: "
            f"give them with {STATIC_SHAPE_HINT}"
        )
    if input_shapes:
        # Exporters' value_info may hold the old symbolic shapes; infer afresh.
        model.graph.ClearField("value_info")


def check_attention_types(model: onnx.ModelProto) -> None:
    """Non-float Q/K/V of an `Attention` node get their own message (strict inference would only say 'type error')."""
    try:
        loose = shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError, RuntimeError) as error:
        raise FrontendError(f"ONNX shape inference failed (is the model valid?): {error}") from None
    types = {value.name: value.type.tensor_type.elem_type for value in (*loose.graph.input, *loose.graph.value_info)}
    types.update({init.name: init.data_type for init in loose.graph.initializer})
    for node in loose.graph.node:
        if node.op_type != "Attention":
            continue
        for name, what in zip(node.input[:3], ("Q", "K", "V"), strict=False):
            elem = types.get(name, 0)
            if elem and not np.issubdtype(element_dtype(elem, name), np.floating):
                kind = helper.tensor_dtype_to_string(elem).removeprefix("TensorProto.").lower()
                raise FrontendError(
                    f"{describe(node)}: {what} ('{name}') is {kind}; attention inputs must be float (f16, f32 or f64)"
                )


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError, RuntimeError) as error:
        raise FrontendError(f"ONNX shape inference failed (is the model valid?): {error}") from None


def static_infos(model: onnx.ModelProto) -> dict[str, TensorInfo]:
    infos: dict[str, TensorInfo] = {}
    graph = model.graph
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor_type = value.type.tensor_type
        if not value.type.HasField("tensor_type") or tensor_type.elem_type == 0:
            continue
        dims = _dims(value)
        if all(isinstance(dim, int) for dim in dims) and dims != ["?"]:
            if math.prod(dims) > MAX_ELEMENTS:
                raise FrontendError(f"'{value.name}' has shape {dims}: more than {MAX_ELEMENTS} elements")
            dtype = element_dtype(tensor_type.elem_type, value.name)
            infos[value.name] = TensorInfo(tuple(int(dim) for dim in dims), dtype)
    return infos


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


# ---------------------------------------------------------------------------
# Constant folding and operator normalisation
# ---------------------------------------------------------------------------


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
        results = ReferenceEvaluator(model).run(None, {})
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
