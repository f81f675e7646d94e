"""Each kind of model the front end cannot import gets its own clear FrontendError."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from frontend_harness import FIXTURES, compare, random_inputs, run_interpreter, run_onnxruntime

from sofa_compiler.frontend import FrontendError, import_model


def error_of(model: str | Path | onnx.ModelProto, **kwargs) -> str:
    with pytest.raises(FrontendError) as caught:
        import_model(model, **kwargs)
    return caught.value.message


def test_unsupported_ops_are_all_listed_at_once():
    # Standard operators (TopK, NonZero, Relu) run in onnxruntime host partitions; unknown ones and
    # other domains' do not.
    model = onnx.load(FIXTURES / "bad_unsupported_ops.onnx")
    for node in model.graph.node:
        if node.op_type == "TopK":
            node.op_type = "TopKay"
    message = error_of(model)
    assert message.startswith("the model uses 2 unsupported operator types:")
    assert "TopKay x2 (nodes 'topk_0', 'topk_1')" in message
    assert "com.microsoft.FusedMatMul x1 (nodes 'fused')" in message
    assert "NonZero" not in message
    assert "Relu" not in message


@pytest.mark.parametrize("keep", [0, 1, 10, 300, 0.5, 0.9])
def test_truncated_file(tmp_path: Path, keep: float):
    data = (FIXTURES / "torch_bert.onnx").read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: int(keep * len(data)) if isinstance(keep, float) else keep])
    message = error_of(path)
    assert message.startswith(f"cannot read '{path}'")


def test_garbage_and_missing_files(tmp_path: Path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\xfe not protobuf at all \x00" * 8)
    assert "not a valid ONNX file" in error_of(garbage)
    assert "no such file" in error_of(tmp_path / "missing.onnx")


def test_opset_out_of_range():
    assert "opset 12; sofa-import supports opsets 13 to 25" in error_of(FIXTURES / "bad_opset12.onnx")
    model = onnx.load(str(FIXTURES / "attn24_mqa_3d_scale.onnx"))
    model.opset_import[0].version = 26
    assert "opset 26" in error_of(model)


def test_dynamic_input_shape_needs_a_static_shape():
    message = error_of(FIXTURES / "bad_dynamic.onnx")
    assert "'q' ['batch', 2, 4, 8]" in message
    assert "--input-shape" in message


def test_dynamic_input_shape_given_statically_runs():
    model = onnx.load(str(FIXTURES / "bad_dynamic.onnx"))
    module = import_model(model, {"q": [3, 2, 4, 8]})
    fixed = onnx.load(str(FIXTURES / "bad_dynamic.onnx"))
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 3
    inputs = random_inputs(fixed)
    (expected,), (actual,) = run_onnxruntime(fixed, inputs), run_interpreter(module, inputs)
    assert abs(expected - actual).max() < 1e-5


def test_unknown_input_shape_name():
    assert "unknown input(s) ['nope']" in error_of(FIXTURES / "bad_dynamic.onnx", input_shapes={"nope": [1]})


def test_non_float_attention_inputs():
    message = error_of(FIXTURES / "bad_int_attention.onnx")
    assert message == (
        "Attention node 'int_attention': Q ('q') is int32; attention inputs must be float (bf16, f16, f32 or f64)"
    )


def test_negative_softcap_is_refused():
    model = onnx.load(str(FIXTURES / "attn24_softcap.onnx"))
    model.graph.node[0].attribute[0].f = -1.0
    assert "softcap must be >= 0, got -1.0" in error_of(model)


def test_unknown_qk_matmul_output_mode_is_refused():
    model = onnx.load(str(FIXTURES / "attn24_qk_output.onnx"))
    model.graph.node[0].attribute.append(onnx.helper.make_attribute("qk_matmul_output_mode", 7))
    assert "qk_matmul_output_mode must be one of 0, 1, 2, 3, got 7" in error_of(model)


def test_nonpad_kv_seqlen_must_be_one_int64_length_per_batch():
    model = onnx.load(str(FIXTURES / "attn24_qk_mode_unused.onnx"))
    model.graph.node[0].input.extend(["", "", "", "lengths"])
    model.graph.input.append(onnx.helper.make_tensor_value_info("lengths", onnx.TensorProto.INT64, [3]))
    assert "must be an int64 tensor of shape [1] (one length per batch), got int64 [3]" in error_of(model)


def test_parity_holds_for_a_good_fixture():
    # The error tests above are not vacuous: the same machinery imports good models.
    assert max(compare(FIXTURES / "attn24_mqa_3d_scale.onnx")) < 1e-4
