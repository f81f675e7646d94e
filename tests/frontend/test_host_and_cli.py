"""The host dialect (verifier, printing, kernels) and the sofa-import command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from frontend_harness import FIXTURES
from xdsl.context import Context
from xdsl.dialects import builtin, func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32, i64
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from dialects.host import HOST_OP_TYPES, ConstantOp, Host, OnnxOp, PartitionOp
from dialects.sofa import AttentionOp, KvProjectionOp, Sofa
from sofa_compiler.frontend import import_model
from sofa_compiler.interpreters.host import HOST_KERNELS, run_kernel
from sofa_compiler.tools.sofa_import import main


def test_every_host_op_type_has_a_kernel():
    assert set(HOST_KERNELS) == set(HOST_OP_TYPES)


def test_verifier_rejects_op_types_without_a_kernel():
    x = ConstantOp.from_array(np.ones((2, 2), np.float32))
    with pytest.raises(VerifyException, match="cannot run ONNX operator 'TopK'"):
        OnnxOp("TopK", [x.result], [TensorType(f32, [2, 2])]).verify()
    with pytest.raises(VerifyException, match="'Transpose' needs attribute"):
        OnnxOp("Transpose", [x.result], [TensorType(f32, [2, 2])]).verify()
    with pytest.raises(VerifyException, match="takes 2 operands, got 1"):
        OnnxOp("MatMul", [x.result], [TensorType(f32, [2, 2])]).verify()
    n = ConstantOp.from_array(np.ones((2,), np.int64))
    with pytest.raises(VerifyException, match="needs a float operand"):
        OnnxOp("Softmax", [n.result], [TensorType(i64, [2])], {"axis": -1}).verify()


def test_constants_keep_dtype_shape_and_bits():
    for array in (np.array(2.5, np.float32), np.array([[True, False]]), np.arange(6, dtype=np.int64).reshape(3, 2)):
        restored = ConstantOp.from_array(array).to_array()
        assert restored.dtype == array.dtype
        assert restored.shape == array.shape
        assert np.array_equal(restored, array)


def test_kernel_results_are_cast_and_checked():
    (result,) = run_kernel("Add", [np.ones(2, np.float32), np.ones(2, np.float32)], {}, [((2,), np.dtype(np.float64))])
    assert result.dtype == np.float64
    with pytest.raises(ValueError, match="shape"):
        run_kernel("Add", [np.ones(2), np.ones(2)], {}, [((3,), np.dtype(np.float64))])


@pytest.mark.parametrize("name", ["torch_bert", "torch_gpt2", "attn23_past_3d_mask"])
def test_printed_ir_parses_back(name: str):
    module = import_model(FIXTURES / f"{name}.onnx")
    context = Context()
    for dialect in (builtin.Builtin, func.Func, Sofa, Host):
        context.load_dialect(dialect)
    parsed = Parser(context, str(module)).parse_module()
    parsed.verify()
    assert parsed.is_structurally_equivalent(module)


def ops_of(module: ModuleOp, kind: type) -> list:
    return [op for op in module.walk() if isinstance(op, kind)]


def host_op_types(module: ModuleOp) -> list[str]:
    """The ONNX operator types the host runs: host.onnx glue and every node of every partition."""
    types = [op.op_type.data for op in module.walk() if isinstance(op, OnnxOp)]
    for op in ops_of(module, PartitionOp):
        types += [node.op_type for node in onnx.ModelProto.FromString(op.model.data).graph.node]
    return types


@pytest.mark.parametrize(
    ("name", "projected", "matmuls_removed"),
    # GPT-2's fused c_attn MatMul also computes Q, so it stays on the host.
    [("torch_bert", True, 2), ("torch_gpt2", True, 0), ("attn24_projection", True, 2), ("torch_sdpa", False, 0)],
)
def test_kv_projection_feeds_attention(name: str, projected: bool, matmuls_removed: int):
    module = import_model(FIXTURES / f"{name}.onnx")
    (attention,) = ops_of(module, AttentionOp)
    projections = ops_of(module, KvProjectionOp)
    assert bool(projections) == projected
    if projected:
        assert attention.k.owner is projections[0]
        assert attention.v.owner is projections[0]
        # The host MatMuls that computed K and V are gone; without the option they stay.
        plain = import_model(FIXTURES / f"{name}.onnx", kv_projection=False)
        assert not ops_of(plain, KvProjectionOp)
        matmuls, plain_matmuls = (host_op_types(m).count("MatMul") for m in (module, plain))
        assert plain_matmuls == matmuls + matmuls_removed


def test_cli_prints_ir(capsys: pytest.CaptureFixture[str]):
    assert main([str(FIXTURES / "torch_sdpa_causal.onnx")]) == 0
    assert "sofa.attention %q, %k, %v scale" in capsys.readouterr().out


def test_cli_writes_file(tmp_path):
    out = tmp_path / "out.mlir"
    assert main([str(FIXTURES / "attn23_mha_4d.onnx"), "-o", str(out)]) == 0
    assert "sofa.attention" in out.read_text()


def test_cli_error_has_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "sofa_compiler.tools.sofa_import", str(FIXTURES / "bad_unsupported_ops.onnx")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("sofa-import: error: the model uses 1 unsupported operator type")
    assert "Traceback" not in result.stderr


def test_cli_rejects_bad_shape_argument(capsys: pytest.CaptureFixture[str]):
    assert main([str(FIXTURES / "bad_dynamic.onnx"), "--input-shape", "q=2,x"]) == 1
    assert capsys.readouterr().err == "sofa-import: error: --input-shape 'q=2,x': dimension 'x' is not an integer\n"
