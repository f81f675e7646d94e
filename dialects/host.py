"""The `host` dialect: the non-attention parts of an imported model.

Everything the front end does not map to the accelerator runs on the host.
It stays in the IR as

* `host.constant`  a dense tensor (weights, masks, folded shape arithmetic);
* `host.partition` a maximal run of the model's own ONNX nodes, kept as an
                   ONNX subgraph (serialized `ModelProto` bytes) that
                   onnxruntime runs: where every partition starts and ends
                   is visible in the IR;
* `host.onnx`      one ONNX operator, named by its `op_type`, with the
                   operator's attributes in `onnx_attrs`. The front end
                   emits it only for the glue it writes itself around
                   attention (head splits, mask conversion, host attention
                   fallback); hand-written IR tests use it too.

`host.onnx` is generic, like torch-mlir's `torch.operator "onnx.X"`, but it
admits only the operator types listed in `HOST_OP_TYPES`, each of which has a
numpy implementation (`sofa_compiler/interpreters/host.py`). The front end
normalises operators before emitting them: inputs that only carry shapes
(Reshape's `shape`, Unsqueeze's `axes`, Split's `split`, ...) are dropped, as
the static result types say everything they did, and constant inputs that
steer the computation (Slice's `starts`, Clip's `min`, ...) become
attributes. So every operand is data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np
from xdsl.dialects.builtin import (
    BFloat16Type,
    BytesAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DenseResourceAttr,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    Signedness,
    StringAttr,
    TensorType,
    bf16,
    f16,
    f32,
    f64,
    i1,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import ConstantLike, Pure
from xdsl.utils.exceptions import VerifyException

from dialects.printing import ELIDED_HANDLE, ElidingPrinter, elided, elided_error, elides, print_elided

# ---------------------------------------------------------------------------
# Element types
# ---------------------------------------------------------------------------

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
"""ONNX's bfloat16 as numpy holds it (ml_dtypes; numpy itself has no bf16)."""

_NUMPY_OF: tuple[tuple[Attribute, np.dtype[Any]], ...] = (
    (f32, np.dtype(np.float32)),
    (f64, np.dtype(np.float64)),
    (f16, np.dtype(np.float16)),
    (bf16, BFLOAT16),
    (i64, np.dtype(np.int64)),
    (i32, np.dtype(np.int32)),
    (i16, np.dtype(np.int16)),
    (i8, np.dtype(np.int8)),
    (i1, np.dtype(np.bool_)),
    (IntegerType(8, Signedness.UNSIGNED), np.dtype(np.uint8)),
)


def numpy_dtype(element_type: Attribute) -> np.dtype[Any]:
    """The numpy dtype holding values of a host element type."""
    for candidate, dtype in _NUMPY_OF:
        if candidate == element_type:
            return dtype
    raise VerifyException(f"element type {element_type} has no host (numpy) representation")


def is_float_dtype(dtype: np.dtype[Any]) -> bool:
    """Whether `dtype` holds floats: numpy's own, or bfloat16 (ml_dtypes, which numpy does not count as floating)."""
    return bool(np.issubdtype(dtype, np.floating)) or dtype == BFLOAT16


def element_type(dtype: np.dtype[Any]) -> Attribute:
    """The element type of a numpy dtype the host can hold."""
    for candidate, known in _NUMPY_OF:
        if known == dtype:
            return candidate
    raise VerifyException(f"numpy dtype {dtype} has no host element type")


def dense_from_array(array: np.ndarray) -> DenseIntOrFPElementsAttr:
    """A dense elements attribute holding `array` bit-exactly."""
    array = np.asarray(array, order="C")  # not ascontiguousarray: it turns 0-d into 1-d
    tensor_type = TensorType(element_type(array.dtype), array.shape)
    # xDSL stores i1 `true` as all ones (the signless value -1).
    data = array.astype(np.int8) * -1 if array.dtype == np.bool_ else array
    return DenseIntOrFPElementsAttr(tensor_type, BytesAttr(data.astype(data.dtype.newbyteorder("<")).tobytes()))


def array_from_dense(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    """The numpy array a dense elements attribute holds (splats expanded)."""
    dtype = numpy_dtype(attr.get_element_type())
    shape = tuple(attr.get_shape())
    storage = np.dtype(np.uint8) if dtype == np.bool_ else dtype.newbyteorder("<")
    values = np.frombuffer(attr.data.data, dtype=storage).astype(dtype)
    if values.size == 1:
        return np.full(shape, values[0], dtype=dtype)
    return values.reshape(shape)


# ---------------------------------------------------------------------------
# Attributes: python values <-> xDSL attributes
# ---------------------------------------------------------------------------

AttrValue = int | float | str | tuple[int, ...] | tuple[float, ...]


def to_attribute(value: AttrValue) -> Attribute:
    """The xDSL attribute for an (already normalised) ONNX attribute value."""
    if isinstance(value, bool | int | np.integer):
        return IntegerAttr(int(value), i64)
    if isinstance(value, float | np.floating):
        return FloatAttr(float(value), f32)
    if isinstance(value, str):
        return StringAttr(value)
    if all(isinstance(item, int | np.integer) for item in value):
        return DenseArrayBase.from_list(i64, [int(item) for item in value])
    return DenseArrayBase.from_list(f32, [float(item) for item in value])


def from_attribute(attr: Attribute) -> AttrValue:
    """The python value of an attribute written by `to_attribute`."""
    if isinstance(attr, IntegerAttr):
        return attr.value.data
    if isinstance(attr, FloatAttr):
        return attr.value.data
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, DenseArrayBase):
        return tuple(attr.get_values())
    raise VerifyException(f"unsupported host attribute {attr}")


# ---------------------------------------------------------------------------
# The operator types the host runs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HostOpSignature:
    """What `host.onnx` admits for one ONNX operator type."""

    inputs: tuple[int, int]
    """The least and most operands."""
    outputs: tuple[int, int] = (1, 1)
    required: tuple[str, ...] = ()
    """Attributes that must be present after normalisation."""


_UNARY = HostOpSignature((1, 1))
_BINARY = HostOpSignature((2, 2))

HOST_OP_TYPES: Mapping[str, HostOpSignature] = {
    # Arithmetic (numpy broadcasting, as ONNX's multidirectional broadcasting).
    **{
        name: _BINARY
        for name in (
            "Add",
            "Sub",
            "Mul",
            "Div",
            "Mod",
            "Pow",
            "Equal",
            "Less",
            "Greater",
            "LessOrEqual",
            "GreaterOrEqual",
            "And",
            "Or",
        )
    },
    **{name: HostOpSignature((1, 8)) for name in ("Min", "Max", "Sum")},
    **{
        name: _UNARY
        for name in (
            "Sqrt",
            "Neg",
            "Abs",
            "Exp",
            "Log",
            "Reciprocal",
            "Erf",
            "Relu",
            "Tanh",
            "Sigmoid",
            "Not",
            "Identity",
            "Cast",
            "Gelu",
        )
    },
    "MatMul": _BINARY,
    "Gemm": HostOpSignature((2, 3)),
    "Clip": _UNARY,
    "Where": HostOpSignature((3, 3)),
    # Layout. The result type fixes the shape, so no shape operand remains.
    **{name: _UNARY for name in ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Expand")},
    "Transpose": HostOpSignature((1, 1), required=("perm",)),
    "Concat": HostOpSignature((1, 64), required=("axis",)),
    "Split": HostOpSignature((1, 1), outputs=(1, 64), required=("axis",)),
    "Slice": HostOpSignature((1, 1), required=("starts", "ends", "axes", "steps")),
    "Gather": HostOpSignature((2, 2), required=("axis",)),
    "Tile": HostOpSignature((1, 1), required=("repeats",)),
    "Pad": HostOpSignature((1, 1), required=("pads", "constant_value", "mode")),
    "Trilu": HostOpSignature((1, 1), required=("upper", "k")),
    # Normalisation and reductions.
    "Softmax": HostOpSignature((1, 1), required=("axis",)),
    "LayerNormalization": HostOpSignature((2, 3), outputs=(1, 3), required=("axis", "epsilon")),
    **{
        name: HostOpSignature((1, 1), required=("axes", "keepdims"))
        for name in ("ReduceMean", "ReduceSum", "ReduceMax")
    },
}
"""Every ONNX operator type `host.onnx` runs; each has a numpy implementation."""


def _is_float(element: Attribute) -> bool:
    return isinstance(element, Float16Type | Float32Type | Float64Type | BFloat16Type)


# ---------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------


def _parse_optional_elided(parser: Parser) -> DenseResourceAttr | None:
    """``dense_resource<__elided__> : TYPE``, read without declaring a resource blob (there is none)."""
    if parser.parse_optional_keyword("dense_resource") is None:
        return None
    parser.parse_punctuation("<")
    parser.parse_keyword(ELIDED_HANDLE, " (host.constant holds no other resource)")
    parser.parse_punctuation(">")
    parser.parse_punctuation(":")
    start = parser.pos
    value_type = parser.parse_type()
    if not isinstance(value_type, TensorType):
        parser.raise_error(f"expected a tensor type, got {value_type}", at_position=start, end_position=parser.pos)
    return elided(value_type)


def _prints_as_hex(value: DenseIntOrFPElementsAttr) -> bool:
    """Whether xDSL prints `value` as a hex string: more than 100 elements, not all equal."""
    data, count = value.data.data, len(value)
    if count <= 100:
        return False
    size = len(data) // count
    return data != data[:size] * count


@irdl_op_definition
class ConstantOp(IRDLOperation):
    """A constant tensor: ``%w = host.constant dense<...> : tensor<4x4xf32>``.

    Printed with large constants elided (`dialects.printing`), the value reads
    ``dense_resource<__elided__> : tensor<...>``: it parses back with its type,
    and only `to_array` fails.
    """

    name = "host.constant"

    value = prop_def(DenseIntOrFPElementsAttr | DenseResourceAttr)
    result = result_def(TensorType)

    traits = traits_def(Pure(), ConstantLike())

    def __init__(self, value: DenseIntOrFPElementsAttr | DenseResourceAttr):
        super().__init__(properties={"value": value}, result_types=[value.type])

    @staticmethod
    def from_array(array: np.ndarray) -> ConstantOp:
        return ConstantOp(dense_from_array(array))

    def to_array(self) -> np.ndarray:
        if isinstance(self.value, DenseResourceAttr):
            raise elided_error(f"the value of host.constant {self.value.type}")
        return array_from_dense(self.value)

    @classmethod
    def parse(cls, parser: Parser) -> ConstantOp:
        start = parser.pos
        value = _parse_optional_elided(parser) or parser.parse_attribute()
        if not isinstance(value, DenseIntOrFPElementsAttr | DenseResourceAttr):
            message = f"host.constant expects a dense elements attribute, got {value}"
            parser.raise_error(message, at_position=start, end_position=parser.pos)
        attributes = parser.parse_optional_attr_dict()
        op = cls(value)
        op.attributes.update(attributes)
        return op

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        if isinstance(self.value, DenseResourceAttr) or elides(printer, len(self.value)):
            print_elided(printer, self.value.type)
        elif _prints_as_hex(self.value):
            # xDSL's own form for large constants, without unpacking every element into Python
            # floats first (that took 15 s of a 20 s compile of a 90 MB model).
            printer.print_string(f'dense<"0x{self.value.data.data.hex().upper()}"> : ')
            printer.print_attribute(self.value.get_type())
        else:
            printer.print_attribute(self.value)
        printer.print_op_attributes(self.attributes)

    def verify_(self) -> None:
        if isinstance(self.value, DenseResourceAttr) and self.value.resource_handle.data != ELIDED_HANDLE:
            raise VerifyException(f"host.constant holds dense_resource<{self.value.resource_handle.data}>: unsupported")
        if self.result.type != self.value.type:
            raise VerifyException(f"result type {self.result.type} differs from the value's type {self.value.type}")
        numpy_dtype(self.result.type.get_element_type())


_SAME_ELEMENT = frozenset(
    {"Add", "Sub", "Mul", "Div", "Mod", "MatMul", "Gemm", "Min", "Max", "Sum", "Clip", "Identity", "Softmax",
     "LayerNormalization", "Sqrt", "Neg", "Abs", "Exp", "Log", "Reciprocal", "Erf", "Relu", "Tanh", "Sigmoid",
     "Gelu", "Concat"}
)  # fmt: skip
"""Operators whose operands and results all have one element type (ONNX's ``T``)."""
_COMPARISONS = frozenset({"Equal", "Less", "Greater", "GreaterOrEqual", "LessOrEqual"})
_LOGIC = frozenset({"And", "Or", "Not"})
_FIRST_OPERAND = frozenset(
    {"Pow", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Expand", "Transpose", "Split", "Slice", "Gather",
     "Tile", "Pad", "Trilu", "ReduceMean", "ReduceSum", "ReduceMax"}
)  # fmt: skip
"""Operators whose results have the element type of their first operand (data, not indices)."""


def _verify_element_types(op_type: str, op: OnnxOp) -> None:
    """ONNX's type constraints, so that a wrong element type is a diagnostic, not a numpy cast."""
    operands = [value.type.get_element_type() for value in op.inputs]  # pyright: ignore[reportAttributeAccessIssue]
    results = [value.type.get_element_type() for value in op.outputs]  # pyright: ignore[reportAttributeAccessIssue]

    def expect(condition: bool, what: str) -> None:
        if not condition:
            types = ", ".join(map(str, operands)) + " -> " + ", ".join(map(str, results))
            raise VerifyException(f"host.onnx '{op_type}' needs {what}, got {types}")

    if op_type in _SAME_ELEMENT:
        expect(len(set(operands + results)) == 1, "one element type for every operand and result")
    elif op_type in _COMPARISONS:
        expect(len(set(operands)) == 1 and results == [i1], "operands of one element type and an i1 result")
    elif op_type in _LOGIC:
        expect(set(operands + results) == {i1}, "i1 operands and results")
    elif op_type == "Where":
        expect(operands[0] == i1 and operands[1] == operands[2] == results[0], "an i1 condition and one data type")
    elif op_type in _FIRST_OPERAND:
        expect(all(result == operands[0] for result in results), "results of the first operand's element type")


@irdl_op_definition
class OnnxOp(IRDLOperation):
    """One ONNX operator run on the host by its numpy implementation.

    Syntax: ``%y = host.onnx "Transpose"(%x) {perm = array<i64: 0, 2, 1, 3>} : (...) -> ...``.
    The braces hold the operator's (normalised) attributes.
    """

    name = "host.onnx"

    op_type = prop_def(StringAttr)
    onnx_attrs = opt_prop_def(DictionaryAttr)
    inputs = var_operand_def(TensorType)
    outputs = var_result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$op_type `(` $inputs `)` ($onnx_attrs^)? attr-dict `:` functional-type($inputs, $outputs)"

    def __init__(
        self,
        op_type: str,
        inputs: Sequence[SSAValue],
        result_types: Sequence[Attribute],
        attrs: Mapping[str, AttrValue] | None = None,
    ):
        properties: dict[str, Attribute] = {"op_type": StringAttr(op_type)}
        if attrs:
            properties["onnx_attrs"] = DictionaryAttr({key: to_attribute(value) for key, value in attrs.items()})
        super().__init__(operands=[inputs], result_types=[result_types], properties=properties)

    def attribute_values(self) -> dict[str, AttrValue]:
        """The ONNX attributes as python values."""
        if self.onnx_attrs is None:
            return {}
        return {key: from_attribute(value) for key, value in self.onnx_attrs.data.items()}

    def verify_(self) -> None:
        op_type = self.op_type.data
        signature = HOST_OP_TYPES.get(op_type)
        if signature is None:
            raise VerifyException(f"the host cannot run ONNX operator '{op_type}' (no numpy implementation)")
        for what, count, (least, most) in (
            ("operands", len(self.inputs), signature.inputs),
            ("results", len(self.outputs), signature.outputs),
        ):
            if not least <= count <= most:
                expected = str(least) if least == most else f"{least} to {most}"
                raise VerifyException(f"host.onnx '{op_type}' takes {expected} {what}, got {count}")
        attrs = self.attribute_values()
        missing = [name for name in signature.required if name not in attrs]
        if missing:
            raise VerifyException(f"host.onnx '{op_type}' needs attribute(s) {', '.join(missing)}")
        for value in (*self.inputs, *self.outputs):
            assert isinstance(value.type, TensorType)
            if any(dim < 0 for dim in value.type.get_shape()):
                raise VerifyException(f"host.onnx '{op_type}' needs static shapes, got {value.type}")
            numpy_dtype(value.type.get_element_type())
        _verify_element_types(op_type, self)
        if op_type in ("Softmax", "LayerNormalization", "Erf", "Gelu", "Sqrt", "Tanh", "Sigmoid", "Exp", "Log"):
            element = self.inputs[0].type
            assert isinstance(element, TensorType)
            if not _is_float(element.get_element_type()):
                raise VerifyException(f"host.onnx '{op_type}' needs a float operand, got {element}")


def _partition_graph(model: bytes) -> Any:
    """The `onnx.GraphProto` of a partition's serialized model."""
    import onnx  # the dialect needs onnx only to read partitions

    try:
        return onnx.ModelProto.FromString(model).graph
    except Exception as error:  # protobuf's DecodeError and friends
        raise VerifyException(f"host.partition holds no valid ONNX model: {error}") from None


def elide_initializers(model: bytes, limit: int) -> bytes:
    """`model` with every initializer of more than `limit` elements moved to external data named ``__elided__``.

    The graph, and so the partition's summary, stays; the result is a valid
    ONNX model that only fails to load its weights.
    """
    import onnx

    proto = onnx.ModelProto.FromString(model)
    for tensor in proto.graph.initializer:
        if int(np.prod(tensor.dims, dtype=np.int64)) <= limit or tensor.data_location == onnx.TensorProto.EXTERNAL:
            continue
        for field_name in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
            tensor.ClearField(field_name)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value=ELIDED_HANDLE)
    return proto.SerializeToString()


def partition_summary(model: bytes) -> tuple[int, str]:
    """(node count, comma-separated op types in first-use order) of a serialized ONNX model."""
    graph = _partition_graph(model)
    return len(graph.node), ",".join(dict.fromkeys(node.op_type for node in graph.node))


@irdl_op_definition
class PartitionOp(IRDLOperation):
    """A host partition: an ONNX subgraph of the model, run by onnxruntime as one session.

    Syntax: ``%y, %z = host.partition "p0"(%a, %b) {nodes = 12, ops = "MatMul,Add"}
    model = "0x0A..." : (...) -> (...)``. The operands feed the subgraph's inputs
    and the results are its outputs, in order; weights used only inside the
    partition are initializers of the subgraph. ``nodes`` and ``ops`` summarise
    the subgraph for the reader; they are derived from ``model`` and checked on parsing.
    """

    name = "host.partition"

    sym_name = prop_def(StringAttr)
    model = prop_def(BytesAttr)
    inputs = var_operand_def(TensorType)
    outputs = var_result_def(TensorType)

    def __init__(self, name: str, model: bytes, inputs: Sequence[SSAValue], result_types: Sequence[Attribute]):
        properties: dict[str, Attribute] = {"sym_name": StringAttr(name), "model": BytesAttr(model)}
        super().__init__(operands=[inputs], result_types=[result_types], properties=properties)

    def summary(self) -> tuple[int, str]:
        return partition_summary(self.model.data)

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_string_literal(self.sym_name.data)
        printer.print_string("(")
        printer.print_list(self.inputs, printer.print_operand)
        nodes, ops = self.summary()
        printer.print_string(f") {{nodes = {nodes}, ops = ")
        printer.print_string_literal(ops)
        model = self.model.data
        if isinstance(printer, ElidingPrinter) and printer.elide_larger_than is not None:
            model = elide_initializers(model, printer.elide_larger_than)
        printer.print_string(f'}} model = "0x{model.hex().upper()}"')
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_function_type(self.inputs.types, self.outputs.types)

    @classmethod
    def parse(cls, parser: Parser) -> PartitionOp:
        name = parser.parse_str_literal("partition name")
        operands = parser.parse_comma_separated_list(parser.Delimiter.PAREN, parser.parse_unresolved_operand)
        start = parser.pos
        summary = parser.parse_optional_attr_dict()
        summary_end = parser.pos
        parser.parse_keyword("model")
        parser.parse_punctuation("=")
        blob_start = parser.pos
        text = parser.parse_str_literal("the partition's ONNX model as hex")
        if not text.startswith("0x"):
            parser.raise_error('expected a hex string "0x..."', at_position=blob_start, end_position=parser.pos)
        try:
            model = bytes.fromhex(text[2:])
        except ValueError:
            parser.raise_error("invalid hex digits", at_position=blob_start, end_position=parser.pos)
        attributes = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        types_start = parser.pos
        function_type = parser.parse_function_type()
        inputs = parser.resolve_operands(operands, function_type.inputs.data, types_start)
        op = cls(name, model, inputs, function_type.outputs.data)
        op.attributes.update(attributes)
        try:
            expected = op.summary()
        except VerifyException as error:
            parser.raise_error(str(error), at_position=blob_start, end_position=blob_start + len(text))
        found = (summary.get("nodes"), summary.get("ops"))
        if found != (IntegerAttr(expected[0], i64), StringAttr(expected[1])):
            message = f'the summary does not match the model: expected {{nodes = {expected[0]}, ops = "{expected[1]}"}}'
            parser.raise_error(message, at_position=start, end_position=summary_end)
        return op

    def verify_(self) -> None:
        name = self.sym_name.data
        for value in (*self.inputs, *self.outputs):
            assert isinstance(value.type, TensorType)
            if any(dim < 0 for dim in value.type.get_shape()):
                raise VerifyException(f"host.partition '{name}' needs static shapes, got {value.type}")
        graph = _partition_graph(self.model.data)
        for what, values, infos in (("operands", self.inputs, graph.input), ("results", self.outputs, graph.output)):
            if len(values) != len(infos):
                raise VerifyException(f"host.partition '{name}' has {len(values)} {what}; its model has {len(infos)}")
            for value, info in zip(values, infos, strict=True):
                assert isinstance(value.type, TensorType)
                dims = [dim.dim_value for dim in info.type.tensor_type.shape.dim]
                if dims != list(value.type.get_shape()):
                    raise VerifyException(
                        f"host.partition '{name}': {value.type} does not fit the model's '{info.name}' of shape {dims}"
                    )


Host = Dialect("host", [ConstantOp, OnnxOp, PartitionOp], [])

__all__ = [
    "HOST_OP_TYPES",
    "ConstantOp",
    "Host",
    "HostOpSignature",
    "OnnxOp",
    "PartitionOp",
    "array_from_dense",
    "dense_from_array",
    "element_type",
    "from_attribute",
    "numpy_dtype",
    "partition_summary",
    "to_attribute",
]
