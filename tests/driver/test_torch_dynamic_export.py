"""A torch attention module exported by the default (dynamo) exporter with a dynamic sequence axis.

The exporter leaves the sequence length symbolic; `input_shapes=` fixes it at
compile time and the compiled model matches onnxruntime. Needs the `eval`
extra's torch and onnxscript (the dynamo exporter's dependency); skipped otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

import sofa_compiler
from sofa_compiler.frontend import FrontendError
from tests.fp16_tolerance import assert_close_to_fp32_reference

torch = pytest.importorskip("torch", reason="torch (the eval extra) is not installed")
pytest.importorskip(
    "onnxscript", reason="onnxscript (the eval extra; torch's dynamo exporter needs it) is not installed"
)

HIDDEN, HEADS = 16, 2


class SelfAttention(torch.nn.Module):
    """One multi-head self-attention block, written out so that it exports as MatMul-Softmax-MatMul."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = HIDDEN // HEADS
        self.q, self.k, self.v = (torch.nn.Linear(HIDDEN, HIDDEN) for _ in range(3))

    def heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(t.shape[0], t.shape[1], HEADS, self.depth).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(self.q(x)), self.heads(self.k(x)), self.heads(self.v(x))
        scores = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.depth), dim=-1)
        return (scores @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], HIDDEN)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dynamo") / "attention.onnx"
    sequence = torch.export.Dim("sequence", min=2, max=128)
    program = torch.onnx.export(
        SelfAttention().eval(),
        (torch.randn(1, 6, HIDDEN),),
        dynamo=True,
        dynamic_shapes={"x": {1: sequence}},
        input_names=["x"],
        output_names=["y"],
    )
    program.save(str(path))
    return path


def test_the_export_leaves_the_sequence_dynamic(exported: Path) -> None:
    (x,) = onnx.load(str(exported)).graph.input
    dims = x.type.tensor_type.shape.dim
    assert [dim.dim_value for dim in dims] == [1, 0, HIDDEN]
    assert dims[1].dim_param  # symbolic
    with pytest.raises(FrontendError, match=r"--input-shape NAME=D0,D1,\.\.\."):
        sofa_compiler.compile(exported)


@pytest.mark.parametrize("length", [6, 11])
def test_compiled_with_input_shapes_matches_onnxruntime(exported: Path, length: int) -> None:
    model = sofa_compiler.compile(exported, input_shapes={"x": [1, length, HIDDEN]})
    x = np.random.default_rng(length).standard_normal((1, length, HIDDEN)).astype(np.float32)
    outputs, report = model.run({"x": x})
    assert len(report.kernels) == 1  # the attention ran on the accelerator
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (expected,) = session.run(["y"], {"x": x})
    assert_close_to_fp32_reference(outputs["y"], expected)
