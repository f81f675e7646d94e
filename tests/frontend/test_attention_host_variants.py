"""`Attention` with the qk_matmul_output output: `sofa.attention` computes Y (softcap included) and host ops
compute that output beside it. Both outputs equal onnxruntime.

Every qk_matmul_output_mode (0 raw scaled scores, 1 after softcap, 2 with the
mask bias, 3 softmax) with and without softcap, boolean and additive masks,
causal masking, GQA, 3-D inputs and a KV cache.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
from frontend_harness import run_interpreter
from onnx import TensorProto, helper

from sofa_compiler.frontend import import_model

TOLERANCE = 1e-5
BATCH, Q_LEN, KV_LEN, DEPTH = 2, 5, 7, 8


def attention_model(mode: int, softcap: float, mask: str, causal: bool, q_heads: int, rank: int, past: bool):
    kv_heads = 2
    shapes = {
        "Q": [BATCH, q_heads, Q_LEN, DEPTH],
        "K": [BATCH, kv_heads, KV_LEN, DEPTH],
        "V": [BATCH, kv_heads, KV_LEN, DEPTH],
    }
    if rank == 3:
        shapes = {name: [b, s, h * d] for name, (b, h, s, d) in shapes.items()}
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in shapes.items()]
    names = ["Q", "K", "V", "", "", ""]
    total_kv = KV_LEN + (3 if past else 0)
    if mask != "none":
        element = TensorProto.BOOL if mask == "bool" else TensorProto.FLOAT
        inputs.append(helper.make_tensor_value_info("M", element, [Q_LEN, total_kv]))
        names[3] = "M"
    if past:
        for name in ("PK", "PV"):
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, kv_heads, 3, DEPTH]))
        names[4:6] = ["PK", "PV"]
    while names and not names[-1]:
        names.pop()
    attrs: dict = {"qk_matmul_output_mode": mode, "is_causal": int(causal)}
    if softcap:
        attrs["softcap"] = softcap
    if rank == 3:
        attrs.update(q_num_heads=q_heads, kv_num_heads=kv_heads)
    outputs = ["Y", "", "", "QK"] if not past else ["Y", "present_k", "present_v", "QK"]
    node = helper.make_node("Attention", names, outputs, **attrs)
    graph_outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs if name]
    model = helper.make_model(
        helper.make_graph([node], "attention", inputs, graph_outputs), opset_imports=[helper.make_opsetid("", 24)]
    )
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def model_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        shape = [dim.dim_value for dim in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == TensorProto.BOOL:
            allowed = rng.random(shape) < 0.6
            allowed[2] = False  # one fully masked query row
            feeds[value.name] = allowed
        elif value.name == "M":
            feeds[value.name] = np.where(rng.random(shape) < 0.6, rng.standard_normal(shape), -np.inf).astype(
                np.float32
            )
        else:
            feeds[value.name] = (rng.standard_normal(shape) * (3 if value.name == "Q" else 1)).astype(np.float32)
    return feeds


def close(actual: np.ndarray, expected: np.ndarray) -> bool:
    # onnxruntime writes masked qk_matmul_output entries (mode 2) as the lowest float; the spec and we, -inf.
    expected = np.where(expected <= np.finfo(np.float32).min, -np.inf, expected)
    finite = np.isfinite(expected)
    if not np.array_equal(finite, np.isfinite(actual)) or not np.array_equal(expected[~finite], actual[~finite]):
        return False
    scale = max(1.0, float(np.abs(expected[finite]).max(initial=0.0)))
    return float(np.abs(actual[finite] - expected[finite]).max(initial=0.0)) <= TOLERANCE * scale


CASES = [
    (mode, softcap, mask, causal, q_heads, rank, past)
    for mode in (0, 1, 2, 3)
    for softcap in (0.0, 2.5)
    for mask, causal, q_heads, rank, past in [
        ("none", False, 2, 4, False),
        ("bool", False, 4, 4, False),
        ("float", True, 4, 3, False),
        ("none", True, 2, 4, True),
        ("bool", True, 2, 3, True),
    ]
]


@pytest.mark.parametrize(("mode", "softcap", "mask", "causal", "q_heads", "rank", "past"), CASES)
def test_host_attention_matches_onnxruntime(mode, softcap, mask, causal, q_heads, rank, past) -> None:
    model = attention_model(mode, softcap, mask, causal, q_heads, rank, past)
    feeds = model_inputs(model)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = import_model(model)
    messages = [str(w.message) for w in caught]
    assert any("qk_matmul_output output" in message and "computed by host ops" in message for message in messages)
    # The accelerator computes Y (softcap included); the host computes the scores beside it.
    assert not any("runs on the host" in message for message in messages)
    assert "sofa.attention" in str(module)
    actual = run_interpreter(module, feeds)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        assert close(np.asarray(got), want)


def test_comparison_sees_a_wrong_mode() -> None:
    """The check above is not vacuous: mode 0 and mode 1 differ when softcap is set."""
    raw = attention_model(0, 2.5, "none", False, 2, 4, False)
    capped = attention_model(1, 2.5, "none", False, 2, 4, False)
    feeds = model_inputs(raw)
    want = onnxruntime.InferenceSession(raw.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = run_interpreter(import_model(capped), feeds)
    assert close(got[0], want[0])
    assert not close(got[1], want[1])


def test_value_of_another_float_type_than_the_query() -> None:
    """ONNX types Q and K as T1 and V as T2; the host path computes in Q's type, as Y has it.

    onnxruntime cannot run such a model (its MatMul binds T to both), so onnx's reference
    evaluator is the oracle here (mode 3, where it agrees with the spec).
    """
    from onnx.reference import ReferenceEvaluator

    model = attention_model(3, 0.0, "bool", False, 4, 4, False)
    for value in model.graph.input:
        if value.name == "V":
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    del model.graph.value_info[:]
    feeds = model_inputs(model)
    feeds["V"] = feeds["V"].astype(np.float64)
    expected = ReferenceEvaluator(model).run(None, feeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actual = run_interpreter(import_model(model), feeds)
    for got, want in zip(actual, expected, strict=True):
        assert got.dtype == np.float32
        assert close(got, want.astype(np.float32))
