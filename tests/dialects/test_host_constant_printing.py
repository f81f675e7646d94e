"""host.constant prints large constants on a fast path; the text must be exactly xDSL's."""

from __future__ import annotations

import io

import ml_dtypes
import numpy as np
import pytest
from xdsl.printer import Printer

from dialects.host import ConstantOp
from sofa_compiler.context import sofa_context
from sofa_compiler.parser import SofaParser


def xdsl_text(op: ConstantOp) -> str:
    stream = io.StringIO()
    printer = Printer(stream=stream)
    printer.print_string("%0 = host.constant ")
    printer.print_attribute(op.value)
    return stream.getvalue()


@pytest.mark.parametrize(
    "array",
    [
        np.arange(300, dtype=np.float32).reshape(10, 30),  # hex string
        np.ones((20, 20), np.float32),  # a large splat stays a splat
        np.arange(50, dtype=np.int64),  # small: a list
        np.arange(200) % 3 == 0,  # i1
        np.full(200, -np.inf, np.float32),
        np.arange(150, dtype=np.float16),
        np.arange(150).astype(ml_dtypes.bfloat16),
        np.zeros(101, np.int8),
    ],
    ids=["f32-hex", "f32-splat", "i64-list", "i1-hex", "inf-splat", "f16-hex", "bf16-hex", "i8-splat"],
)
def test_fast_path_prints_what_xdsl_prints(array: np.ndarray) -> None:
    op = ConstantOp.from_array(array)
    stream = io.StringIO()
    Printer(stream=stream).print_op(op)
    assert stream.getvalue() == xdsl_text(op)


@pytest.mark.parametrize("size", [4, 150], ids=["list", "hex"])
def test_bfloat16_constant_round_trips(size: int) -> None:
    """bf16 constants (ONNX's bfloat16, held as ml_dtypes arrays) print and parse back bit-exactly."""
    array = (np.linspace(-3, 3, size) ** 3).astype(ml_dtypes.bfloat16)
    array[:2] = -np.inf, np.inf  # printed as hex bit patterns
    stream = io.StringIO()
    Printer(stream=stream).print_op(ConstantOp.from_array(array))
    parsed = SofaParser(sofa_context(), stream.getvalue()).parse_op()
    assert isinstance(parsed, ConstantOp)
    back = parsed.to_array()
    assert back.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(back.view(np.uint16), array.view(np.uint16))
