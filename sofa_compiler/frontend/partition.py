"""Host partitions: the ONNX nodes the accelerator does not run, cut into onnxruntime subgraphs.

Like an onnxruntime execution provider, the front end claims the attention
subgraphs the accelerator runs ("units": a matched core or an `Attention`
node); every other node goes to the host. `levels` places each node and unit
on the number of units any path from the inputs to it passes through; the
host nodes of one level form one partition, which runs after the units of
the level before and before the units of its own level. That order is
topological, and a partition is maximal: no unit separates its nodes.

`partition_model` writes a partition as a standalone ONNX model: the values
crossing its boundary are its inputs and outputs, constants it reads are its
initializers. `prune_partitions` drops, once the whole function is built,
the results nobody reads and the nodes that only fed them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import onnx
from onnx import helper, numpy_helper
from xdsl.dialects.func import FuncOp
from xdsl.rewriter import InsertPoint, Rewriter

from dialects.host import PartitionOp
from sofa_compiler.frontend.graph import Graph, TensorInfo

Unit = int
"""A claimed attention unit, by the id of the object (core or node) that stands for it."""


def levels(
    graph: Graph, nodes: Sequence[onnx.NodeProto], unit_of: Mapping[int, Unit]
) -> tuple[dict[int, int], dict[Unit, int]]:
    """The level of every host node (by id) and every unit: how many units lie on the longest path to it.

    `nodes` are in topological order; `unit_of` maps the id of each node a unit
    claims to that unit. A unit's level is the highest level among what its
    nodes read from outside it; what reads a unit's result is one level higher.
    """
    value_level: dict[str, int] = {}
    owner: dict[str, Unit] = {}
    node_levels: dict[int, int] = {}
    unit_levels: dict[Unit, int] = {}
    for node in nodes:
        unit = unit_of.get(id(node))
        # Values a unit passes between its own nodes add no level.
        reads = [name for name in node.input if name and (unit is None or owner.get(name) is not unit)]
        level = max((value_level.get(name, 0) for name in reads), default=0)
        if unit is None:
            node_levels[id(node)] = level
            outputs_level = level
        else:
            level = max(level, unit_levels.get(unit, 0))
            unit_levels[unit] = level
            outputs_level = level + 1
        for name in node.output:
            if name:
                value_level[name] = outputs_level
                if unit is not None:
                    owner[name] = unit
    return node_levels, unit_levels


ONNXRUNTIME_MAX_IR_VERSION = 13
"""The newest ONNX IR version onnxruntime 1.31 loads (onnx 1.23's helper writes 14 by default)."""


def partition_ir_version(model: onnx.ModelProto) -> int:
    """The IR version of a partition cut from `model`: the model's, capped at what onnxruntime loads.

    A partition holds only standard operators of the model's opsets, so any IR version that admits
    those opsets describes it; the model's own one may be newer than onnxruntime reads.
    """
    needed = onnx.helper.find_min_ir_version_for(list(model.opset_import))
    return max(needed, min(model.ir_version, ONNXRUNTIME_MAX_IR_VERSION))


def partition_model(
    graph: Graph,
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[str],
    outputs: Sequence[str],
) -> onnx.ModelProto:
    """A standalone ONNX model of `nodes`: `inputs` feed it, constants they read become initializers."""
    produced = {name for node in nodes for name in node.output}
    read = dict.fromkeys(name for node in nodes for name in node.input if name)
    constants = [name for name in read if name in graph.consts and name not in produced]
    body = helper.make_graph(
        list(nodes),
        "partition",
        [_value_info(name, graph.info(name)) for name in inputs],
        [_value_info(name, graph.info(name)) for name in outputs],
        [numpy_helper.from_array(graph.consts[name], name) for name in constants],
    )
    model = helper.make_model(body, opset_imports=list(graph.model.opset_import))
    model.ir_version = partition_ir_version(graph.model)
    return model


def _value_info(name: str, info: TensorInfo) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(info.dtype), list(info.shape))


def boundary_inputs(graph: Graph, nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """The values `nodes` read that are neither produced by them nor constants, in first-read order."""
    produced = {name for node in nodes for name in node.output}
    names = (name for node in nodes for name in node.input if name)
    return list(dict.fromkeys(name for name in names if name not in produced and name not in graph.consts))


def produced_values(nodes: Iterable[onnx.NodeProto]) -> list[str]:
    return [name for node in nodes for name in node.output if name]


def prune_partitions(function: FuncOp) -> None:
    """Drop unread partition results and the nodes only they needed; number the partitions p0, p1, ..."""
    rewriter = Rewriter()
    count = 0
    for op in list(function.body.walk()):
        if not isinstance(op, PartitionOp):
            continue
        used = [index for index, result in enumerate(op.outputs) if result.uses]
        if not used:
            rewriter.erase_op(op)
            continue
        model = onnx.ModelProto.FromString(op.model.data)
        kept_outputs = [model.graph.output[index] for index in used]
        needed = {value.name for value in kept_outputs}
        kept_nodes: list[onnx.NodeProto] = []
        for node in reversed(model.graph.node):
            if any(name in needed for name in node.output):
                kept_nodes.append(node)
                needed.update(name for name in node.input if name)
        kept_nodes.reverse()
        kept_inputs = [index for index, value in enumerate(model.graph.input) if value.name in needed]
        graph = model.graph
        new_graph = helper.make_graph(
            kept_nodes,
            graph.name,
            [graph.input[index] for index in kept_inputs],
            kept_outputs,
            [init for init in graph.initializer if init.name in needed],
        )
        model.graph.CopyFrom(new_graph)
        replacement = PartitionOp(
            f"p{count}",
            model.SerializeToString(),
            [op.inputs[index] for index in kept_inputs],
            [op.outputs[index].type for index in used],
        )
        count += 1
        rewriter.insert_op(replacement, InsertPoint.before(op))
        for new, index in zip(replacement.outputs, used, strict=True):
            op.outputs[index].replace_all_uses_with(new)
        rewriter.erase_op(op)
