"""Interpreter implementations of the `host` dialect.

`host.partition` runs its ONNX subgraph on onnxruntime, one
`InferenceSession` per partition, made once per module (`PartitionSessions`)
and kept by whoever runs the module many times (`CompiledModel`). A partition
that holds bfloat16 values runs on onnx's reference evaluator instead:
onnxruntime's CPU provider has no bf16 arithmetic (Add, Mul, Softmax, ...) and
its Python API takes no bf16 arrays, while the reference evaluator computes each
operator in bf16 through ml_dtypes, as the ONNX spec says.

`host.onnx` (the front end's own glue around attention, and hand-written IR)
runs on numpy, one kernel per ONNX operator. `HOST_KERNELS` is shared by the
interpreter and the front end, which folds constant subgraphs with the same
kernels (numpy is kept there: folding runs per node at import time, where an
onnxruntime session per node would cost more than the arithmetic). A kernel takes the operands, the
normalised attributes (see `dialects/host.py`) and the static result shapes,
and returns its results; `run_kernel` casts them to the result dtypes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import onnx
from xdsl.dialects.builtin import TensorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.interpreters.shaped_array import ShapedArray
from xdsl.ir import Operation
from xdsl.utils.exceptions import InterpretationError

from dialects.host import BFLOAT16, HOST_OP_TYPES, AttrValue, ConstantOp, OnnxOp, PartitionOp, numpy_dtype

if TYPE_CHECKING:
    from sofa_compiler.sim.trace import Timeline

Shapes = Sequence[tuple[int, ...] | None]
Kernel = Callable[[list[np.ndarray], Mapping[str, Any], Shapes], np.ndarray | list[np.ndarray]]


def _erf(values: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(values).astype(values.dtype)


def _softmax(values: np.ndarray, axis: int) -> np.ndarray:
    # A row of -inf gives NaN, as ONNX Softmax does; that is the model's business, not a warning's.
    with np.errstate(invalid="ignore"):
        shifted = np.exp(values - np.max(values, axis=axis, keepdims=True))
        return shifted / np.sum(shifted, axis=axis, keepdims=True)


def _gelu(values: np.ndarray, approximate: str) -> np.ndarray:
    x = values.astype(np.float64)
    if approximate == "tanh":
        result = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    else:
        result = 0.5 * x * (1 + _erf(x / math.sqrt(2)))
    return result.astype(values.dtype)


def _layer_norm(inputs: list[np.ndarray], attrs: Mapping[str, Any], shapes: Shapes) -> list[np.ndarray]:
    x, scale, *rest = inputs
    axis = attrs["axis"] % x.ndim
    axes = tuple(range(axis, x.ndim))
    wide = x.astype(np.float64)
    mean = wide.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(((wide - mean) ** 2).mean(axis=axes, keepdims=True) + attrs["epsilon"])
    y = (wide - mean) * inv_std * scale + (rest[0] if rest else 0.0)
    return [y, mean, inv_std]


def _gemm(inputs: list[np.ndarray], attrs: Mapping[str, Any], shapes: Shapes) -> np.ndarray:
    a, b, *c = inputs
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    result = attrs.get("alpha", 1.0) * (a @ b)
    return result + attrs.get("beta", 1.0) * c[0] if c else result


def _split(inputs: list[np.ndarray], attrs: Mapping[str, Any], shapes: Shapes) -> list[np.ndarray]:
    (x,) = inputs
    axis = attrs["axis"] % x.ndim
    ends = np.cumsum([shape[axis] for shape in shapes])[:-1]
    return list(np.split(x, ends, axis=axis))


def _slice(inputs: list[np.ndarray], attrs: Mapping[str, Any], shapes: Shapes) -> np.ndarray:
    (x,) = inputs
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"], strict=True):
        # ONNX clamps out-of-range bounds (INT64_MAX/MIN mean "to the end"); so does `slice`.
        index[axis % x.ndim] = slice(start, end, step)
    return x[tuple(index)]


def _pad(inputs: list[np.ndarray], attrs: Mapping[str, Any], shapes: Shapes) -> np.ndarray:
    (x,) = inputs
    pads = attrs["pads"]
    widths = list(zip(pads[: x.ndim], pads[x.ndim :], strict=True))
    if attrs["mode"] != "constant":
        return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[attrs["mode"]])
    return np.pad(x, widths, constant_values=attrs["constant_value"])


def _reduce(function: Callable[..., np.ndarray]) -> Kernel:
    def kernel(inputs: list[np.ndarray], attrs: Mapping[str, Any], shapes: Shapes) -> np.ndarray:
        (x,) = inputs
        axes = tuple(attrs["axes"]) or None
        return function(x, axis=axes, keepdims=bool(attrs["keepdims"]))

    return kernel


def _clip(inputs: list[np.ndarray], attrs: Mapping[str, Any], shapes: Shapes) -> np.ndarray:
    (x,) = inputs
    low, high = attrs.get("min"), attrs.get("max")
    return np.clip(x, -np.inf if low is None else low, np.inf if high is None else high)


def _elementwise(function: Callable[..., np.ndarray]) -> Kernel:
    return lambda inputs, attrs, shapes: function(*inputs)


def _variadic(function: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Kernel:
    def kernel(inputs: list[np.ndarray], attrs: Mapping[str, Any], shapes: Shapes) -> np.ndarray:
        result = inputs[0]
        for operand in inputs[1:]:
            result = function(result, operand)
        return result

    return kernel


def _reshape(inputs: list[np.ndarray], attrs: Mapping[str, Any], shapes: Shapes) -> np.ndarray:
    return inputs[0].reshape(shapes[0])


def _integer_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # ONNX integer division truncates toward zero, unlike numpy's floor division.
    if np.issubdtype(np.result_type(a, b), np.integer):
        return (np.trunc(a / b)).astype(np.result_type(a, b))
    return a / b


HOST_KERNELS: Mapping[str, Kernel] = {
    "Add": _elementwise(np.add),
    "Sub": _elementwise(np.subtract),
    "Mul": _elementwise(np.multiply),
    "Div": _elementwise(_integer_div),
    "Mod": lambda inputs, attrs, shapes: (np.fmod if attrs.get("fmod", 0) else np.mod)(*inputs),
    "Pow": _elementwise(lambda a, b: np.power(a, b).astype(a.dtype)),
    "Equal": _elementwise(np.equal),
    "Less": _elementwise(np.less),
    "Greater": _elementwise(np.greater),
    "GreaterOrEqual": _elementwise(np.greater_equal),
    "LessOrEqual": _elementwise(np.less_equal),
    "And": _elementwise(np.logical_and),
    "Or": _elementwise(np.logical_or),
    "Min": _variadic(np.minimum),
    "Max": _variadic(np.maximum),
    "Sum": _variadic(np.add),
    "Sqrt": _elementwise(np.sqrt),
    "Neg": _elementwise(np.negative),
    "Abs": _elementwise(np.abs),
    "Exp": _elementwise(np.exp),
    "Log": _elementwise(np.log),
    "Reciprocal": _elementwise(np.reciprocal),
    "Erf": _elementwise(_erf),
    "Relu": _elementwise(lambda x: np.maximum(x, 0).astype(x.dtype)),
    "Tanh": _elementwise(np.tanh),
    "Sigmoid": _elementwise(lambda x: 1 / (1 + np.exp(-x))),
    "Not": _elementwise(np.logical_not),
    # The result dtype is the target type; `run_kernel` casts.
    "Identity": _elementwise(lambda x: x),
    "Cast": _elementwise(lambda x: x),
    "Gelu": lambda inputs, attrs, shapes: _gelu(inputs[0], str(attrs.get("approximate", "none"))),
    "MatMul": _elementwise(np.matmul),
    "Gemm": _gemm,
    "Clip": _clip,
    "Where": _elementwise(np.where),
    "Reshape": _reshape,
    "Squeeze": _reshape,
    "Unsqueeze": _reshape,
    "Flatten": _reshape,
    "Expand": lambda inputs, attrs, shapes: np.broadcast_to(inputs[0], shapes[0]),
    "Transpose": lambda inputs, attrs, shapes: np.transpose(inputs[0], attrs["perm"]),
    "Concat": lambda inputs, attrs, shapes: np.concatenate(inputs, axis=attrs["axis"]),
    "Split": _split,
    "Slice": _slice,
    "Gather": lambda inputs, attrs, shapes: np.take(
        inputs[0], np.where(inputs[1] < 0, inputs[1] + inputs[0].shape[attrs["axis"]], inputs[1]), attrs["axis"]
    ),
    "Tile": lambda inputs, attrs, shapes: np.tile(inputs[0], attrs["repeats"]),
    "Pad": _pad,
    "Trilu": lambda inputs, attrs, shapes: (np.triu if attrs["upper"] else np.tril)(inputs[0], attrs["k"]),
    "Softmax": lambda inputs, attrs, shapes: _softmax(inputs[0], attrs["axis"]),
    "LayerNormalization": _layer_norm,
    "ReduceMean": _reduce(np.mean),
    "ReduceSum": _reduce(np.sum),
    "ReduceMax": _reduce(np.max),
}
"""The numpy implementation of every operator type in `dialects.host.HOST_OP_TYPES`."""

assert set(HOST_KERNELS) == set(HOST_OP_TYPES), "every host op type needs a kernel, and only those"


def run_kernel(
    op_type: str,
    inputs: Sequence[np.ndarray],
    attrs: Mapping[str, AttrValue],
    result_types: Sequence[tuple[tuple[int, ...] | None, np.dtype[Any]]],
) -> list[np.ndarray]:
    """Run one host operator and return results of exactly the given shapes (None: any) and dtypes."""
    shapes = [shape for shape, _ in result_types]
    produced = HOST_KERNELS[op_type]([np.asarray(x) for x in inputs], attrs, shapes)  # pyright: ignore
    results = produced if isinstance(produced, list) else [produced]
    checked: list[np.ndarray] = []
    for index, (value, (shape, dtype)) in enumerate(zip(results, result_types, strict=False)):
        value = np.asarray(value)
        if shape is not None and value.shape != shape:
            raise ValueError(f"{op_type} result {index} has shape {list(value.shape)}, expected {list(shape)}")
        checked.append(np.asarray(value.astype(dtype, copy=False), order="C"))
    return checked


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, ShapedArray):
        return np.array(value.data).reshape(value.shape)
    return np.asarray(value)


class PartitionSession(NamedTuple):
    """A partition's onnxruntime session, its input and output names, and the dtypes its operands declare."""

    session: Any
    inputs: list[str]
    outputs: list[str]
    dtypes: list[np.dtype[Any]]


class PartitionSessions:
    """One onnxruntime session per `host.partition` of a module, made when the module is loaded."""

    def __init__(self, module: Operation | None = None):
        self._sessions: dict[int, PartitionSession] = {}
        self._ops: list[PartitionOp] = []  # keeps the ops alive, so their ids stay theirs
        self.seconds = 0.0
        """Wall time spent in onnxruntime so far (all partitions, all runs)."""
        if module is not None:
            for op in module.walk():
                if isinstance(op, PartitionOp):
                    self.session(op)

    def session(self, op: PartitionOp) -> PartitionSession:
        """A partition's session; made on first use."""
        entry = self._sessions.get(id(op))
        if entry is None:
            entry = self._sessions[id(op)] = _make_session(op)
            self._ops.append(op)
        return entry

    def run(self, op: PartitionOp, args: Sequence[Any]) -> list[np.ndarray]:
        entry = self.session(op)
        # onnxruntime takes any C-contiguous array of the declared type as is; only a strided view, or a
        # value another op delivered in a wider type (a kernel's fp32 output of an f16 tensor), is copied.
        feed = {
            name: np.ascontiguousarray(_as_array(value), dtype=dtype)
            for name, value, dtype in zip(entry.inputs, args, entry.dtypes, strict=True)
        }
        start = time.perf_counter()
        try:
            return entry.session.run(entry.outputs, feed)
        except Exception as error:  # onnxruntime's own error types
            raise InterpretationError(f"host.partition '{op.sym_name.data}': {error}") from error
        finally:
            self.seconds += time.perf_counter() - start

    def __len__(self) -> int:
        return len(self._sessions)


def onnxruntime_session(model: bytes | str) -> Any:
    """An onnxruntime CPU session whose C++ log stays quiet: its failures still raise, as exceptions."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: onnxruntime's warnings are about its graph rewrites, not the user's
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _make_session(op: PartitionOp) -> PartitionSession:
    dtypes = [numpy_dtype(operand.type.element_type) for operand in op.operands]  # pyright: ignore
    if any(numpy_dtype(value.type.element_type) == BFLOAT16 for value in (*op.operands, *op.results)):  # pyright: ignore
        return _reference_session(op, dtypes)
    try:
        session = onnxruntime_session(op.model.data)
    except Exception as error:  # onnxruntime raises its own types (Fail, NotImplemented, ...)
        if _holds_bfloat16(onnx.load_from_string(op.model.data)):
            return _reference_session(op, dtypes)  # bf16 inside only (a Cast to bf16 and back, say)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InterpretationError(f"host.partition '{op.sym_name.data}': onnxruntime cannot run it: {reason}") from None
    inputs = [value.name for value in session.get_inputs()]
    outputs = [value.name for value in session.get_outputs()]
    return PartitionSession(session, inputs, outputs, dtypes)


def _reference_session(op: PartitionOp, dtypes: list[np.dtype[Any]]) -> PartitionSession:
    """A partition on onnx's reference evaluator, which runs bf16 as the spec says (see the module docstring)."""
    from onnx.reference import ReferenceEvaluator

    try:
        evaluator = ReferenceEvaluator(onnx.load_from_string(op.model.data))
    except Exception as error:  # the evaluator raises whatever its op implementations do
        raise InterpretationError(f"host.partition '{op.sym_name.data}': cannot evaluate it: {error}") from None
    return PartitionSession(evaluator, list(evaluator.input_names), list(evaluator.output_names), dtypes)


def _holds_bfloat16(model: onnx.ModelProto) -> bool:
    """Whether a partition's values, constants or casts are bfloat16."""
    graph = model.graph
    values = (*graph.input, *graph.output, *graph.value_info)
    if any(value.type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16 for value in values):
        return True
    if any(tensor.data_type == onnx.TensorProto.BFLOAT16 for tensor in graph.initializer):
        return True
    casts = (node for node in graph.node if node.op_type == "Cast")
    return any(attr.name == "to" and attr.i == onnx.TensorProto.BFLOAT16 for node in casts for attr in node.attribute)


@register_impls
class HostFunctions(InterpreterFunctions):
    def __init__(self, sessions: PartitionSessions | None = None, timeline: Timeline | None = None):
        super().__init__()
        self.sessions = sessions if sessions is not None else PartitionSessions()
        self.timeline = timeline
        """Where given, each partition run is appended to it with its wall time, for a model trace."""

    @impl(PartitionOp)
    def run_partition(self, interpreter: Interpreter, op: PartitionOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        start = time.perf_counter()
        results = tuple(self.sessions.run(op, args))
        if self.timeline is not None:
            self.timeline.host(op.sym_name.data, time.perf_counter() - start)
        return results

    @impl(ConstantOp)
    def run_constant(self, interpreter: Interpreter, op: ConstantOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (op.to_array(),)

    @impl(OnnxOp)
    def run_onnx(self, interpreter: Interpreter, op: OnnxOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        result_types: list[tuple[tuple[int, ...], np.dtype[Any]]] = []
        for result in op.outputs:
            assert isinstance(result.type, TensorType)
            result_types.append((tuple(result.type.get_shape()), numpy_dtype(result.type.get_element_type())))
        try:
            results = run_kernel(op.op_type.data, [_as_array(a) for a in args], op.attribute_values(), result_types)
        except (ValueError, IndexError) as error:
            raise InterpretationError(f"host.onnx '{op.op_type.data}': {error}") from error
        return tuple(results)
