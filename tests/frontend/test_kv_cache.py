"""KV caches in the front end, against onnx's reference evaluator, with attention on the accelerator.

Edge lengths of `nonpad_kv_seqlen` (an empty cache, a full one, shorter than the queries) with
bottom-right causal masking over several queries; past_key with several queries; a decode step.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from xdsl.dialects.builtin import i1

import sofa_compiler
from dialects.sofa import AttentionOp
from sofa_compiler.frontend.importer import import_model

BATCH, HEADS, KV_HEADS, DEPTH = 4, 4, 2, 8


def attention_model(q_len: int, kv_len: int, past: int, nonpad: bool, causal: bool) -> onnx.ModelProto:
    inputs = [
        helper.make_tensor_value_info("Q", TensorProto.FLOAT, [BATCH, HEADS, q_len, DEPTH]),
        helper.make_tensor_value_info("K", TensorProto.FLOAT, [BATCH, KV_HEADS, kv_len, DEPTH]),
        helper.make_tensor_value_info("V", TensorProto.FLOAT, [BATCH, KV_HEADS, kv_len, DEPTH]),
    ]
    names = ["Q", "K", "V", ""]
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [BATCH, HEADS, q_len, DEPTH])]
    if past:
        for name in ("past_key", "past_value"):
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, KV_HEADS, past, DEPTH]))
        names += ["past_key", "past_value"]
    if nonpad:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT64, [BATCH]))
        names += ["", ""] if not past else []
        names.append("lengths")
    node = helper.make_node("Attention", names, ["Y"], is_causal=int(causal))
    graph = helper.make_graph([node], "attention", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)], ir_version=10)


def run_both(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = sofa_compiler.compile(model, keep=1.0)
    outputs, _ = compiled.run(feeds)
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    return outputs["Y"], expected, bool(compiled.programs)


def feeds_for(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        shape = [dim.dim_value for dim in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("q_len", [1, 3])
@pytest.mark.parametrize("causal", [False, True])
def test_nonpad_lengths_from_empty_to_full(q_len: int, causal: bool) -> None:
    model = attention_model(q_len, 6, 0, nonpad=True, causal=causal)
    feeds = feeds_for(model) | {"lengths": np.array([0, 2, 4, 6], np.int64)}
    got, expected, on_accelerator = run_both(model, feeds)
    assert on_accelerator
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)
    assert not got[0].any()  # an empty cache: every row fully masked, zeros as the spec says


@pytest.mark.parametrize(("q_len", "past"), [(1, 5), (3, 5), (4, 1)])
def test_causal_past_runs_bottom_right_on_the_accelerator(q_len: int, past: int) -> None:
    model = attention_model(q_len, q_len, past, nonpad=False, causal=True)
    got, expected, on_accelerator = run_both(model, feeds_for(model, seed=q_len))
    assert on_accelerator
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)


def test_nonpad_with_past_is_refused() -> None:
    from sofa_compiler.frontend.errors import FrontendError

    model = attention_model(1, 1, 2, nonpad=True, causal=False)
    with pytest.raises(FrontendError, match="nonpad_kv_seqlen cannot be combined with past_key"):
        sofa_compiler.compile(model, keep=1.0)


def conformance_case(name: str):
    from tests.frontend import test_onnx_conformance

    return next(case for case in test_onnx_conformance.CASES if case.name == name)


def test_a_lengths_mask_of_another_form_stays_a_general_mask() -> None:
    """A causal frontier one key earlier (j <= i + L[b] - 1 - q) is not the external-cache mask: a general mask.

    (A frontier one key later, or padding j < L[b] + 1, would be: the other half of the mask hides the same keys.)
    Its parts can only be 0 or -inf, so it runs on the accelerator as the run-time boolean mask it is, and right.
    """
    case = conformance_case("test_attention_4d_causal_nonpad_continued_prefill_expanded")
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    offset = next(n for n in graph.node if n.op_type == "Sub" and n.input[0] == "nonpad_kv_seqlen")
    offset.input[0] = "lengths_minus_one"
    one = helper.make_node("Constant", [], ["minus_one"], value=onnx.numpy_helper.from_array(np.array([-1], np.int64)))
    plus = helper.make_node("Add", ["nonpad_kv_seqlen", "minus_one"], ["lengths_minus_one"])
    nodes = [one, plus, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    inputs = dict(zip([v.name for v in graph.input], case.data_sets[0][0], strict=True))
    inputs["nonpad_kv_seqlen"] = np.array([2], np.int64)
    got, expected, on_accelerator = run_both(model, inputs)
    assert on_accelerator
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (attention,) = [op for op in import_model(model).walk() if isinstance(op, AttentionOp)]
    assert attention.mask is not None
    assert attention.mask.type.get_element_type() == i1
