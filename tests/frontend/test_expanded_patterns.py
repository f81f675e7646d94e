"""Decomposed attention as ONNX's expanded `Attention` writes it: softcap, a boolean mask as a float bias,
softmax_precision casts, and scores or probabilities that are also model outputs.

Each pattern must reach the path the `Attention` node takes (`frontend.core_masks`, `attention_op.emit_attention`);
malformed ones stay host ops with a reason that names the node in the way.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from xdsl.dialects.builtin import i1

import sofa_compiler
from dialects.sofa import AttentionOp
from sofa_compiler.frontend.core_masks import split_bias, zero_or_masked
from sofa_compiler.frontend.importer import UNMATCHED_REASON, import_model
from sofa_compiler.frontend.loading import load_graph
from sofa_compiler.frontend.patterns import MaskTerm, find_cores
from tests.fp16_tolerance import assert_close_to_fp32_reference
from tests.frontend.frontend_harness import random_inputs, run_onnxruntime

BATCH, HEADS, Q_LEN, KV_LEN, DEPTH = 2, 2, 5, 7, 8
SCORES = [BATCH, HEADS, Q_LEN, KV_LEN]
FLOAT, FLOAT16, BOOL = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BOOL


class Builder:
    """A small decomposed attention graph: `scores()`, then steps on the scores, then `finish(...)`."""

    def __init__(self, element: int = FLOAT) -> None:
        self.element = element
        self.dtype = helper.tensor_dtype_to_np_dtype(element)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs = [
            helper.make_tensor_value_info("q", element, [BATCH, HEADS, Q_LEN, DEPTH]),
            helper.make_tensor_value_info("k", element, [BATCH, HEADS, KV_LEN, DEPTH]),
            helper.make_tensor_value_info("v", element, [BATCH, HEADS, KV_LEN, DEPTH]),
        ]
        self.outputs: list[onnx.ValueInfoProto] = []

    def constant(self, name: str, value: object, dtype: np.dtype | None = None) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype or self.dtype), name))
        return name

    def node(self, op_type: str, inputs: list[str], output: str, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def input(self, name: str, element: int, shape: list[int]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, element, shape))
        return name

    def output(self, name: str, element: int | None = None) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, element or self.element, None))

    def scores(self) -> str:
        kt = self.node("Transpose", ["k"], "kt", perm=[0, 1, 3, 2])
        qk = self.node("MatMul", ["q", kt], "qk")
        return self.node("Mul", [qk, self.constant("scale", DEPTH**-0.5)], "scaled")

    def softcap(self, scores: str, divisor: float, factor: float) -> str:
        divided = self.node("Div", [scores, self.constant("cap_divisor", divisor)], "capped_div")
        tanh = self.node("Tanh", [divided], "capped_tanh")
        return self.node("Mul", [tanh, self.constant("cap_factor", factor)], "capped")

    def boolean_bias(self, mask: str, inverted: bool = False) -> str:
        zero, minus_inf = self.constant("zero", 0.0), self.constant("minus_inf", -np.inf)
        return self.node("Where", [mask, minus_inf, zero] if inverted else [mask, zero, minus_inf], "bias")

    def finish(self, scores: str, after_softmax: list[tuple[str, dict]] | None = None) -> onnx.ModelProto:
        probabilities = self.node("Softmax", [scores], "probabilities", axis=-1)
        for index, (op_type, attrs) in enumerate(after_softmax or []):
            probabilities = self.node(op_type, [probabilities], f"after_{index}", **attrs)
        self.node("MatMul", [probabilities, "v"], "y")
        self.outputs.insert(0, helper.make_tensor_value_info("y", self.element, None))
        graph = helper.make_graph(self.nodes, "expanded", self.inputs, self.outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)
        return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def compile_quietly(model: onnx.ModelProto) -> sofa_compiler.CompiledModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sofa_compiler.compile(model, keep=1.0)


def attention_ops(model: onnx.ModelProto) -> list[AttentionOp]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [op for op in import_model(model).walk() if isinstance(op, AttentionOp)]


def check_outputs(model: onnx.ModelProto, compiled: sofa_compiler.CompiledModel) -> None:
    inputs = random_inputs(model)
    outputs, _ = compiled.run(inputs)
    for value, expected in zip(model.graph.output, run_onnxruntime(model, inputs), strict=True):
        assert_close_to_fp32_reference(outputs[value.name].astype(np.float32), expected.astype(np.float32))


def the_core(model: onnx.ModelProto):
    (core,) = find_cores(load_graph(model, None))
    return core


# ---------------------------------------------------------------------------
# Softcap
# ---------------------------------------------------------------------------


def test_expanded_softcap_is_the_nodes_softcap() -> None:
    b = Builder()
    mask = b.input("mask", BOOL, [Q_LEN, KV_LEN])
    model = b.finish(b.node("Add", [b.softcap(b.scores(), 2.5, 2.5), b.boolean_bias(mask)], "masked"))
    core = the_core(model)
    assert core.softcap == 2.5
    assert core.scale == pytest.approx(DEPTH**-0.5)
    compiled = compile_quietly(model)
    (placement,) = compiled.placements
    assert placement.host_reason is None  # the node form's path: softcap on the accelerator
    assert placement.kernel in compiled.programs
    check_outputs(model, compiled)


@pytest.mark.parametrize(("divisor", "factor"), [(2.0, 3.0), (-2.0, -2.0)])
def test_a_malformed_softcap_names_the_node(divisor: float, factor: float) -> None:
    """c * tanh(x / d) with d != c, or c <= 0, is no softcap: host ops, and the reason names the Tanh."""
    b = Builder()
    model = b.finish(b.softcap(b.scores(), divisor, factor))
    compiled = compile_quietly(model)
    (placement,) = compiled.placements
    assert placement.host_reason == (
        f"{UNMATCHED_REASON}: its scores pass through Tanh node 'capped_tanh', which is not a scaling, a softcap "
        "or a mask SOFA can take (in that order)"
    )
    check_outputs(model, compiled)


def test_a_mask_before_the_softcap_is_not_sofa_attention() -> None:
    """softcap(QK + mask) caps the mask (tanh(-inf) = -1): not the spec's order, so not sofa.attention."""
    b = Builder()
    mask = b.input("mask", BOOL, [Q_LEN, KV_LEN])
    masked = b.node("Add", [b.scores(), b.boolean_bias(mask)], "masked")
    model = b.finish(b.softcap(masked, 2.0, 2.0))
    (placement,) = compile_quietly(model).placements
    assert placement.host_reason == (
        f"{UNMATCHED_REASON}: its scores pass through Add node 'masked', which is not a scaling, a softcap "
        "or a mask SOFA can take (in that order)"
    )


def test_a_scaling_after_the_softcap_is_not_sofa_attention() -> None:
    b = Builder()
    capped = b.softcap(b.scores(), 2.0, 2.0)
    model = b.finish(b.node("Mul", [capped, b.constant("after", 0.5)], "rescaled"))
    (placement,) = compile_quietly(model).placements
    assert placement.host_reason is not None
    assert "Mul node 'capped'" in placement.host_reason


# ---------------------------------------------------------------------------
# Boolean masks written as a float bias
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("inverted", [False, True])
def test_where_bias_is_a_run_time_boolean_mask(inverted: bool) -> None:
    b = Builder()
    mask = b.input("mask", BOOL, [BATCH, 1, Q_LEN, KV_LEN])
    model = b.finish(b.node("Add", [b.scores(), b.boolean_bias(mask, inverted)], "masked"))
    (op,) = attention_ops(model)
    assert op.mask is not None
    assert op.mask.type.get_element_type() == i1  # pyright: ignore
    compiled = compile_quietly(model)
    assert compiled.programs
    check_outputs(model, compiled)


def test_causal_triangle_in_the_bias_is_the_causal_flag() -> None:
    """Bias = Where(mask, 0, -inf) + a constant causal triangle: the node form's boolean mask and causal flag."""
    b = Builder()
    mask = b.input("mask", BOOL, [Q_LEN, KV_LEN])
    triangle = np.where(np.tri(Q_LEN, KV_LEN, dtype=bool), 0.0, -np.inf)
    bias = b.node("Add", [b.boolean_bias(mask), b.constant("triangle", triangle)], "both")
    model = b.finish(b.node("Add", [b.scores(), bias], "masked"))
    (op,) = attention_ops(model)
    assert op.causal is not None
    assert op.mask is not None
    assert op.mask.type.get_element_type() == i1  # pyright: ignore
    check_outputs(model, compile_quietly(model))


@pytest.mark.parametrize(("begin", "end", "padded"), [(0, 2, True), (2, 0, None)])
def test_a_short_mask_padded_with_minus_inf(begin: int, end: int, padded: bool | None) -> None:
    """Pad(bias, end of the key axis, -inf) is the spec's mask padding; padding at the front is another mask."""
    b = Builder()
    mask = b.input("mask", BOOL, [Q_LEN, KV_LEN - 2])
    pads = b.constant("pads", [begin, end], np.int64)
    axes = b.constant("axes", [-1], np.int64)
    bias = b.node("Pad", [b.boolean_bias(mask), pads, b.constant("fill", -np.inf), axes], "padded_bias")
    model = b.finish(b.node("Add", [b.scores(), bias], "masked"))
    (term,) = split_bias(load_graph(model, None), MaskTerm("padded_bias", keep=False))
    if padded:
        assert term == MaskTerm("mask", keep=True, padded=True)
    else:
        assert term == MaskTerm("padded_bias", keep=False)  # zero_or_masked still makes it boolean
    (op,) = attention_ops(model)
    assert op.mask is not None
    assert op.mask.type.get_element_type() == i1  # pyright: ignore
    check_outputs(model, compile_quietly(model))


def test_two_biases_stay_one_additive_mask() -> None:
    """Two true biases added stay one term (adding them again could round differently); on the host for now."""
    b = Builder()
    first, second = (b.input(name, FLOAT, [Q_LEN, KV_LEN]) for name in ("bias_a", "bias_b"))
    both = b.node("Add", [first, second], "both")
    model = b.finish(b.node("Add", [b.scores(), both], "masked"))
    assert split_bias(load_graph(model, None), MaskTerm("both", keep=False)) == [MaskTerm("both", keep=False)]
    (op,) = attention_ops(model)
    assert op.mask is not None
    assert op.mask.type.get_element_type() != i1  # pyright: ignore


def test_zero_or_masked_follows_only_value_preserving_ops() -> None:
    b = Builder()
    mask = b.input("mask", BOOL, [Q_LEN, KV_LEN])
    bias = b.boolean_bias(mask)
    axes = b.constant("axes0", [0], np.int64)
    widened = b.node("Unsqueeze", [bias, axes], "widened")
    doubled = b.node("Mul", [bias, b.constant("two", 2.0)], "doubled")
    shifted = b.node("Add", [bias, b.constant("one", 1.0)], "shifted")
    total = b.node("Add", [b.node("Add", [widened, doubled], "sum1"), shifted], "sum2")
    model = b.finish(b.node("Add", [b.scores(), total], "masked"))
    graph = load_graph(model, None)
    assert zero_or_masked(graph, "widened")
    assert not zero_or_masked(graph, "doubled")  # (-inf * 2 is -inf, but Mul is not followed)
    assert not zero_or_masked(graph, "shifted")  # 0 + 1 is a bias
    assert not zero_or_masked(graph, "sum2")


# ---------------------------------------------------------------------------
# softmax_precision casts and values read elsewhere
# ---------------------------------------------------------------------------


def test_softmax_precision_casts_pass() -> None:
    """f16 scores widened to f32 for the Softmax and P cast back: the node's softmax_precision round trip."""
    b = Builder(FLOAT16)
    widened = b.node("Cast", [b.scores()], "widened", to=FLOAT)
    model = b.finish(widened, after_softmax=[("Cast", {"to": FLOAT16})])
    assert the_core(model).shared == []
    compiled = compile_quietly(model)
    assert compiled.programs
    check_outputs(model, compiled)


def test_a_rounding_cast_of_the_scores_is_not_passed() -> None:
    b = Builder()
    narrowed = b.node("Cast", [b.scores()], "narrowed", to=FLOAT16)
    model = b.finish(narrowed, after_softmax=[("Cast", {"to": FLOAT})])
    (placement,) = compile_quietly(model).placements
    assert placement.host_reason is not None
    assert "Cast node 'narrowed'" in placement.host_reason


@pytest.mark.parametrize("read", ["qk", "masked", "probabilities"])
def test_a_value_read_elsewhere_stays_a_host_op(read: str) -> None:
    """The scores (mode 0), the masked scores (mode 2) or P (mode 3) as a model output: the host computes that value
    (and what it reads), `sofa.attention` the output; the placement says so."""
    b = Builder()
    mask = b.input("mask", BOOL, [Q_LEN, KV_LEN])
    b.output(read)
    model = b.finish(b.node("Add", [b.scores(), b.boolean_bias(mask)], "masked"))
    core = the_core(model)
    assert core.read_outside == [read]
    fused = {node.output[0] for node in core.fused}
    assert read not in fused
    assert ("probabilities" in fused) == (read != "probabilities")
    compiled = compile_quietly(model)
    (placement,) = compiled.placements
    assert placement.host_reason is None
    assert placement.note == f"host ops also compute {read}, which the model reads elsewhere"
    check_outputs(model, compiled)
