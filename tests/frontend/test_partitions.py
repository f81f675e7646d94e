"""Host partitions: onnxruntime subgraphs between the accelerator's attention ops."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from frontend_harness import FIXTURES
from onnx import TensorProto, helper, numpy_helper
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.ir import Block
from xdsl.utils.exceptions import VerifyException

import sofa_compiler
from dialects.host import PartitionOp
from dialects.sofa import AttentionOp
from sofa_compiler.bundle import bundle_bytes, load_bundle
from sofa_compiler.driver import make_context, print_ir
from sofa_compiler.frontend import import_model
from sofa_compiler.parser import SofaParser
from sofa_compiler.tools.sofa_run import main as sofa_run
from tests.fp16_tolerance import assert_close_to_fp32_reference

SHAPE = [1, 2, 4, 8]


def uncommon_ops_model() -> onnx.ModelProto:
    """Sin/Cos feed an Attention; GatherElements, GatherND and IsNaN (none in the numpy table) follow it.

    `side` depends only on the input but comes after the attention in node order: it belongs to the
    first partition. `tail` reads the attention output: it must run in a later one.
    """
    rng = np.random.default_rng(1)
    index = rng.integers(0, 8, size=SHAPE).astype(np.int64)
    nd_index = np.array([[0, 1, 2], [0, 0, 3]], dtype=np.int64)
    nodes = [
        helper.make_node("Sin", ["x"], ["q"], name="sin"),
        helper.make_node("Cos", ["x"], ["k"], name="cos"),
        helper.make_node("Attention", ["q", "k", "x"], ["y"], name="attention"),
        helper.make_node("Cos", ["x"], ["side_cos"], name="side_cos"),
        helper.make_node("GatherND", ["side_cos", "nd_index"], ["side"], name="side_gather_nd"),
        helper.make_node("GatherElements", ["y", "index"], ["gathered"], axis=3, name="gather_elements"),
        helper.make_node("IsNaN", ["gathered"], ["nan"], name="isnan"),
        helper.make_node("Where", ["nan", "zero", "gathered"], ["tail"], name="where"),
    ]
    graph = helper.make_graph(
        nodes,
        "uncommon",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [
            helper.make_tensor_value_info("tail", TensorProto.FLOAT, SHAPE),
            helper.make_tensor_value_info("side", TensorProto.FLOAT, [2, 8]),
        ],
        [
            numpy_helper.from_array(index, "index"),
            numpy_helper.from_array(nd_index, "nd_index"),
            numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def partitions(module: ModuleOp) -> list[PartitionOp]:
    return [op for op in module.walk() if isinstance(op, PartitionOp)]


def op_types(op: PartitionOp) -> list[str]:
    return [node.op_type for node in onnx.ModelProto.FromString(op.model.data).graph.node]


def reference(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def test_partitions_are_ordered_around_the_attention():
    module = import_model(uncommon_ops_model())
    ops = next(iter(module.body.block.ops)).body.block.ops
    kinds = [type(op).__name__ for op in ops if isinstance(op, PartitionOp | AttentionOp)]
    assert kinds == ["PartitionOp", "AttentionOp", "PartitionOp"]
    first, second = partitions(module)
    assert (first.sym_name.data, second.sym_name.data) == ("p0", "p1")
    assert sorted(op_types(first)) == ["Cos", "Cos", "GatherND", "Sin"]
    assert op_types(second) == ["GatherElements", "IsNaN", "Where"]
    # The weights a partition reads are its initializers, not operands.
    assert len(second.inputs) == 1
    assert isinstance(second.inputs[0].owner, AttentionOp)


def test_ops_the_numpy_table_lacks_match_onnxruntime():
    model = uncommon_ops_model()
    inputs = {"x": np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)}
    compiled = sofa_compiler.compile(model)
    outputs, report = compiled.run(inputs)
    expected = reference(model, inputs)
    assert len(report.kernels) == 1
    for name, value in expected.items():
        assert_close_to_fp32_reference(outputs[name], value)


def test_constant_gather_elements_folds_like_onnxruntime():
    """BERT's token_type_ids: a [1, 256] buffer gathered along axis 1 (more than 32 entries: onnx's
    reference GatherElements reads one element per row there)."""
    width = 40
    nodes = [
        helper.make_node("GatherElements", ["buffer", "positions"], ["types"], axis=1),
        helper.make_node("Cast", ["types"], ["types_f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "types_f"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "gather_elements",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
        [
            numpy_helper.from_array(np.arange(256, dtype=np.int64)[None] % 7, "buffer"),
            numpy_helper.from_array(np.arange(width, dtype=np.int64)[None, ::-1] - 3, "positions"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    inputs = {"x": np.zeros((1, width), np.float32)}
    outputs, _ = sofa_compiler.compile(model).run(inputs)
    np.testing.assert_array_equal(outputs["y"], reference(model, inputs)["y"])


def test_sessions_are_made_once_per_compiled_model():
    compiled = sofa_compiler.compile(uncommon_ops_model())
    assert len(compiled.sessions) == 2
    inputs = {"x": np.ones(SHAPE, np.float32)}
    first, _ = compiled.run(inputs)
    second, _ = compiled.run(inputs)
    assert len(compiled.sessions) == 2
    np.testing.assert_array_equal(first["tail"], second["tail"])


def test_partition_round_trips_through_print_and_parse():
    module = import_model(uncommon_ops_model())
    text = print_ir(module)
    assert 'host.partition "p1"(%' in text
    assert '{nodes = 3, ops = "GatherElements,IsNaN,Where"} model = "0x' in text
    parsed = SofaParser(make_context(), text, "<test>").parse_module()
    assert print_ir(parsed) == text
    assert [op.model.data for op in partitions(parsed)] == [op.model.data for op in partitions(module)]


def test_a_summary_that_does_not_match_the_model_is_a_parse_error():
    text = print_ir(import_model(uncommon_ops_model())).replace('ops = "GatherElements,IsNaN,Where"', 'ops = "Relu"')
    with pytest.raises(Exception, match="the summary does not match the model"):
        SofaParser(make_context(), text, "<test>").parse_module()


def test_partitions_survive_a_bundle():
    model = uncommon_ops_model()
    inputs = {"x": np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)}
    compiled = sofa_compiler.compile(model)
    loaded = load_bundle(bundle_bytes(compiled))
    assert len(loaded.sessions) == 2
    expected, _ = compiled.run(inputs)
    actual, report = loaded.run(inputs)
    assert len(report.kernels) == 1
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value)
    assert [p.line() for p in loaded.placements] == ["attention attention: accelerator (kernel attn0)"]


@pytest.mark.parametrize(
    ("fixture", "lines"),
    [
        ("torch_bert", ["attention /Softmax: accelerator (kernel attn0)"]),
        ("attn24_softcap", ["attention attention: accelerator (kernel attn0)"]),
    ],
)
def test_placement_lines(fixture: str, lines: list[str], capsys: pytest.CaptureFixture[str]):
    assert sofa_run([str(FIXTURES / f"{fixture}.onnx")]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if re.match(r"attention \S+: (accelerator|host) \(", line)] == lines
    assert sofa_run([str(FIXTURES / f"{fixture}.onnx"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert len(document["placements"]) == len(lines)


def test_an_unmatched_softmax_is_placed_on_the_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], name="lonely", axis=-1)],
        "softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    )
    path = tmp_path / "softmax.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), path)
    assert sofa_run([str(path)]) == 0
    out = capsys.readouterr().out
    assert "attention lonely: host (not part of a recognised attention pattern: " in out


def test_operands_that_do_not_fit_the_model_do_not_verify():
    second = partitions(import_model(uncommon_ops_model()))[1]
    wrong = TensorType(f32, [1, 2, 8, 4])  # the model's input is [1, 2, 4, 8]
    (value,) = Block(arg_types=[wrong]).args
    op = PartitionOp("p1", second.model.data, [value], [second.outputs[0].type])
    with pytest.raises(VerifyException, match="does not fit the model's 'y' of shape"):
        op.verify()
    extra = PartitionOp("p1", second.model.data, [value, value], [second.outputs[0].type])
    with pytest.raises(VerifyException, match="has 2 operands; its model has 1"):
        extra.verify()
