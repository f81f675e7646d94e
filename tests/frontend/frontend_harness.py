"""Run an imported model with xDSL's interpreter and the same model with onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
from xdsl.dialects.builtin import ModuleOp
from xdsl.dialects.func import FuncOp
from xdsl.interpreter import Interpreter
from xdsl.interpreters.func import FuncFunctions

from sofa_compiler.frontend import import_model
from sofa_compiler.interpreters.host import HostFunctions
from sofa_compiler.interpreters.sofa import SofaFunctions

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def random_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal floats, random booleans (each row keeps its first key), ones for integer masks."""
    rng = np.random.default_rng(seed)
    initializers = {init.name for init in model.graph.initializer}
    inputs: dict[str, np.ndarray] = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        shape = [dim.dim_value for dim in tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        if dtype == np.bool_:
            keep = rng.random(shape) < 0.7
            keep[..., 0] = True
            inputs[value.name] = keep
        elif np.issubdtype(dtype, np.integer):
            ones = np.ones(shape, dtype=dtype)
            ones[..., -1] = 0  # one padding position
            inputs[value.name] = ones
        else:
            inputs[value.name] = rng.standard_normal(shape).astype(dtype)
    return inputs


def run_onnxruntime(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def run_interpreter(module: ModuleOp, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    main = next(op for op in module.walk() if isinstance(op, FuncOp) and op.sym_name.data == "main")
    assert main.arg_attrs is not None
    names = [attrs.data["sofa.name"].data for attrs in main.arg_attrs.data]  # pyright: ignore
    interpreter = Interpreter(module)
    for functions in (FuncFunctions(), SofaFunctions(), HostFunctions()):
        interpreter.register_implementations(functions)
    results: tuple[Any, ...] = interpreter.call_op("main", tuple(inputs[name] for name in names))
    return [np.asarray(result) for result in results]


def max_relative_error(expected: np.ndarray, actual: np.ndarray) -> float:
    """max |a - e| / max(|e|, 1): relative for large values, absolute near zero."""
    expected64, actual64 = expected.astype(np.float64), actual.astype(np.float64)
    return float(np.max(np.abs(actual64 - expected64) / np.maximum(np.abs(expected64), 1.0), initial=0.0))


def compare(path: Path, seed: int = 0) -> list[float]:
    """Max relative error of each output, interpreter vs onnxruntime."""
    model = onnx.load(str(path))
    inputs = random_inputs(model, seed)
    expected = run_onnxruntime(model, inputs)
    actual = run_interpreter(import_model(model), inputs)
    assert len(actual) == len(expected)
    errors = []
    for e, a in zip(expected, actual, strict=True):
        assert a.shape == e.shape, (a.shape, e.shape)
        errors.append(max_relative_error(e, a))
    return errors
