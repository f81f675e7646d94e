"""Numerical edge cases, each with a value check: fully masked rows, huge logits, zero vectors, length 1."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from dialects import numerics
from sofa_compiler.kernels import AttentionProblem, compile_attention
from sofa_compiler.sim.functional import Machine
from tests.fp16_tolerance import assert_close_to_fp32_reference, assert_fp16_close, fp16

RNG = np.random.default_rng(1234)


def sofa(q, k, v, bias, scale, keep=1.0, tile=4):
    return numerics.sofa_attention(q, k, v, bias, scale, keep, tile, math.inf)


def machine(q2, k2, v2, tile=4, keep=1.0, scale=None, causal=False):
    """One head through the compiler's kernel on the functional machine."""
    problem = AttentionProblem(len(q2), len(k2), q2.shape[1], v2.shape[1], causal=causal, scale=scale)
    kernel = compile_attention(problem, keep=keep, tile=tile)
    result = Machine().run(kernel.program, kernel.inputs(q2, k2, v2))
    return kernel.output(result.outputs["o"])[0, 0]


def onnx_attention(q, k, v, mask):
    """ONNX `Attention` (opset 23) through the reference evaluator and onnxruntime."""
    dtype = TensorProto.BOOL if mask.dtype == np.bool_ else TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, list(x.shape)) for name, x in zip("qkv", (q, k, v))
    ]
    inputs.append(helper.make_tensor_value_info("m", dtype, list(mask.shape)))
    out = helper.make_tensor_value_info("o", TensorProto.FLOAT, [*q.shape[:3], v.shape[3]])
    graph = helper.make_graph([helper.make_node("Attention", ["q", "k", "v", "m"], ["o"])], "g", inputs, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)
    feeds = {"q": q, "k": k, "v": v, "m": mask}
    reference = ReferenceEvaluator(model).run(None, feeds)[0]
    runtime = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return reference, runtime


@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_fully_masked_rows_are_zero_like_onnx(kind: str) -> None:
    """Rows with every key masked give zeros: our definition, and also ONNX's reference and onnxruntime's."""
    q = RNG.standard_normal((1, 1, 4, 3)).astype(np.float32)
    k = RNG.standard_normal((1, 1, 5, 3)).astype(np.float32)
    v = RNG.standard_normal((1, 1, 5, 2)).astype(np.float32)
    keep = np.ones((4, 5), bool)
    keep[1] = False  # query 1 sees nothing
    keep[3, :4] = False  # query 3 sees only the last key
    mask = keep if kind == "bool" else np.where(keep, 0.0, -np.inf).astype(np.float32)
    bias = numerics.mask_to_bias(mask, False, 4, 5)
    scale = 1 / math.sqrt(3)
    ours = sofa(q, k, v, bias, scale)
    dense = numerics.dense_attention(q, k, v, bias, scale)
    reference, runtime = onnx_attention(q, k, v, mask)
    for result in (ours, dense, reference, runtime):
        assert (result[0, 0, 1] == 0).all()
    np.testing.assert_array_equal(ours[0, 0, 3], fp16(v[0, 0, 4]))  # the stored (fp16) V row, exactly
    assert_close_to_fp32_reference(ours, reference)
    assert_close_to_fp32_reference(ours, runtime)


def test_fully_masked_rows_at_low_keep() -> None:
    """Masked rows stay zero, and no NaN appears, whatever SADS keeps."""
    q = RNG.standard_normal((1, 2, 3, 4))
    k = RNG.standard_normal((1, 1, 9, 4))
    v = RNG.standard_normal((1, 1, 9, 4))
    bias = np.zeros((3, 9))
    bias[0] = -np.inf
    out = numerics.sofa_attention(q, k, v, bias, 0.5, 0.1, 4, 1.0)
    assert np.isfinite(out).all()
    assert (out[:, :, 0] == 0).all()


@pytest.mark.parametrize("magnitude", [1e4, 1e6])
def test_huge_logits_do_not_overflow(magnitude: float) -> None:
    """Logits of 1e4 (and 1e6, past fp16's range in the predictor) give the argmax key's value, not NaN."""
    d = 4
    q = np.zeros((1, 1, 2, d), np.float32)
    k = RNG.standard_normal((1, 1, 6, d)).astype(np.float32) * 0.01
    v = RNG.standard_normal((1, 1, 6, 3)).astype(np.float32)
    q[..., 0] = 1.0
    k[0, 0, 4, 0] = 1.0  # key 4 wins by ~1 logit unit before scaling
    scale = magnitude  # logits ~ magnitude: every other key is exp(-~magnitude) = 0
    bias = np.zeros((2, 6))
    # SOFA gives the stored (fp16) V row; the fp64 reference the exact one.
    for out, row in (
        (sofa(q, k, v, bias, scale), fp16(v[0, 0, 4])),
        (numerics.dense_attention(q, k, v, bias, scale), v[0, 0, 4]),
    ):
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(out[0, 0], np.broadcast_to(row, (2, 3)))
    # The same through the machine: q and K-hat at fp16, logits ~ 1e4 after scaling.
    q2 = np.tile(np.array([[100.0, 0, 0, 0]], np.float32), (2, 1))
    k2 = k[0, 0] * 100
    out = machine(q2, k2, v[0, 0], tile=4, scale=1.0)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, np.broadcast_to(fp16(v[0, 0, 4]), (2, 3)))


def test_zero_vectors() -> None:
    """q = 0 or K = 0: uniform weights, the mean of V; V = 0: zeros."""
    q = np.zeros((1, 1, 4, 3), np.float32)
    k = RNG.standard_normal((1, 1, 7, 3)).astype(np.float32)
    v = RNG.standard_normal((1, 1, 7, 2)).astype(np.float32)
    bias = np.zeros((4, 7))
    mean = np.broadcast_to(fp16(v[0, 0]).mean(axis=0), (4, 2))  # of the stored (fp16) V rows
    assert_fp16_close(sofa(q, k, v, bias, 0.5)[0, 0], mean, v)
    assert_fp16_close(sofa(k[:, :, :4], np.zeros_like(k), v, bias, 0.5)[0, 0], mean, v)
    assert (sofa(q, k, np.zeros_like(v), bias, 0.5) == 0).all()
    out = machine(q[0, 0], k[0, 0], v[0, 0])
    assert_fp16_close(out, mean, v)
    assert (machine(q[0, 0], k[0, 0], np.zeros_like(v[0, 0])) == 0).all()


@pytest.mark.parametrize("causal", [False, True])
def test_sequence_length_one(causal: bool) -> None:
    """One key: the output is exactly that key's value, for every query (causal too)."""
    q = RNG.standard_normal((1, 1, 1, 5)).astype(np.float32)
    k = RNG.standard_normal((1, 1, 1, 5)).astype(np.float32)
    v = RNG.standard_normal((1, 1, 1, 3)).astype(np.float32)
    bias = numerics.mask_to_bias(None, causal, 1, 1)
    stored = fp16(v[0, 0, 0])  # the 16-bit datapath's V row; the fp64 reference keeps the exact one
    np.testing.assert_array_equal(sofa(q, k, v, bias, 0.4, keep=0.1, tile=1)[0, 0, 0], stored)
    np.testing.assert_array_equal(numerics.dense_attention(q, k, v, bias, 0.4)[0, 0, 0], v[0, 0, 0])
    np.testing.assert_array_equal(machine(q[0, 0], k[0, 0], v[0, 0], tile=1, causal=causal)[0], stored)
