"""An ONNX graph as the front end sees it (`Graph`), and the checks a model passes before it is one.

`sofa_compiler/frontend/loading.py` (`load_graph`) runs the checks, infers
shapes and folds constants, so that everything that can fail before IR is
built fails there, each kind of bad model with its own message.
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

from dialects.host import is_float_dtype
from sofa_compiler.frontend.errors import FrontendError

MAX_ELEMENTS = 1 << 32
"""Largest tensor the front end accepts; larger static shapes are corrupt (numpy would try to allocate them)."""

MIN_OPSET = 13
"""Opset 13 moved Squeeze/Unsqueeze/Split axes to inputs and fixed Softmax's axis semantics."""
MAX_OPSET = 25
"""The newest `Attention` the front end implements (opset 25 adds window attributes; it is still the newest)."""


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

    def known(self, name: str) -> TensorInfo | None:
        """The static shape and type of `name`, or None where the model leaves them open (no error)."""
        if name in self.consts:
            return TensorInfo(self.consts[name].shape, self.consts[name].dtype)
        return self.infos.get(name)

    def uses(self, name: str) -> list[onnx.NodeProto]:
        """The nodes `name` feeds that run (a folded node, such as CastLike's type operand use, does not)."""
        return [node for node in self.consumers.get(name, []) if not all(out in self.consts for out in node.output)]

    def single_use(self, name: str) -> bool:
        """Whether `name` feeds exactly one running node and is not a graph output."""
        return len(self.uses(name)) == 1 and name not in self.outputs

    def scalar(self, name: str) -> float | None:
        """The value of a one-element float constant, or None."""
        value = self.consts.get(name)
        if value is None or value.size != 1 or not is_float_dtype(value.dtype):
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
    except onnx.checker.ValidationError as error:  # external data onnx refuses (an absolute or escaping path)
        raise FrontendError(f"cannot read '{path}': its external data is refused: {error}") from None
    except (DecodeError, ValueError, RuntimeError) as error:
        raise FrontendError(f"cannot read '{path}': not a valid ONNX file (truncated or corrupt?): {error}") from None
    except OSError as error:  # the model file, or an external data file it names
        source = f" ('{error.filename}')" if error.filename and str(error.filename) != str(path) else ""
        raise FrontendError(f"cannot read '{path}'{source}: {error.strerror or error}") from None
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
            if elem and not is_float_dtype(element_dtype(elem, name)):
                kind = helper.tensor_dtype_to_string(elem).removeprefix("TensorProto.").lower()
                raise FrontendError(
                    f"{describe(node)}: {what} ('{name}') is {kind}; "
                    "attention inputs must be float (bf16, f16, f32 or f64)"
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
