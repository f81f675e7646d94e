"""`import_model`: an ONNX model as one `func.func @main` of sofa and host ops."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Block, Region, SSAValue
from xdsl.transforms.dead_code_elimination import region_dce
from xdsl.utils.exceptions import VerifyException

from dialects.host import PartitionOp
from sofa_compiler.frontend.attention_op import CacheLayout, emit_attention, lower_attention, warn_host
from sofa_compiler.frontend.core_masks import core_mask
from sofa_compiler.frontend.emitter import Emitter, shape_of, tensor_type
from sofa_compiler.frontend.errors import FrontendError, FrontendWarning
from sofa_compiler.frontend.graph import MAX_OPSET, MIN_OPSET, Graph, attributes, describe
from sofa_compiler.frontend.kv_masks import nonpad_mask
from sofa_compiler.frontend.loading import load_graph
from sofa_compiler.frontend.partition import boundary_inputs, levels, partition_model, produced_values, prune_partitions
from sofa_compiler.frontend.patterns import AttentionCore, find_cores, unmatched_reason
from sofa_compiler.frontend.placement import PLACEMENTS_ATTR, Placement, placements_attr
from sofa_compiler.frontend.projection import emit_kv_projection, head_split_source

NAME_ATTR = "sofa.name"
"""Argument/result attribute holding the ONNX name, so a runtime can map `.npz` keys."""
UNMATCHED_REASON = "not part of a recognised attention pattern"

__all__ = ["MAX_OPSET", "MIN_OPSET", "NAME_ATTR", "PLACEMENTS_ATTR", "Placement", "import_model"]


def import_model(
    model: str | Path | onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    kv_projection: bool = True,
) -> ModuleOp:
    """Import an ONNX model (a path or a `ModelProto`).

    `input_shapes` fixes dynamic input dimensions (name -> shape). With
    `kv_projection`, K/V computed by constant projections of one activation
    become `sofa.kv_projection`. Raises `FrontendError` for models that cannot
    be imported.
    """
    graph = load_graph(model, input_shapes)
    function, placements = _build_function(graph, kv_projection)
    module = ModuleOp([function])
    module.attributes[PLACEMENTS_ATTR] = placements_attr(placements)
    region_dce(function.body)
    prune_partitions(function)  # after DCE: glue that died no longer keeps partition results alive
    try:
        module.verify()
    except VerifyException as error:
        raise FrontendError(f"internal error: the imported IR does not verify: {error}") from error
    return module


def _ssa_name(name: str) -> str:
    """An SSA name hint close to the ONNX name (`input.1` -> `input_1`)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "v"
    return f"v{cleaned}" if cleaned[0].isdigit() else cleaned


def _names_attr(names: Sequence[str]) -> ArrayAttr[DictionaryAttr]:
    return ArrayAttr([DictionaryAttr({NAME_ATTR: StringAttr(name)}) for name in names])


def _build_function(graph: Graph, kv_projection: bool) -> tuple[FuncOp, list[Placement]]:
    arg_types = [tensor_type(graph.info(name)) for name in graph.inputs]
    block = Block(arg_types=arg_types)
    emitter = Emitter(graph, block)
    for name, argument in zip(graph.inputs, block.args, strict=True):
        argument.name_hint = _ssa_name(name)
        emitter.values[name] = argument

    live = [node for node in graph.nodes if not all(name in graph.consts for name in node.output if name)]
    cores = find_cores(graph)
    units: dict[int, AttentionCore | onnx.NodeProto] = {id(core): core for core in cores}
    units.update((id(node), node) for node in live if node.op_type == "Attention")
    unit_of = {id(node): id(core) for core in cores for node in (*core.fused, core.anchor)}
    unit_of.update((id(node), id(node)) for node in live if node.op_type == "Attention")
    node_levels, unit_levels = levels(graph, live, unit_of)
    placements: list[Placement] = []
    for level in range(max([0, *node_levels.values(), *unit_levels.values()]) + 1):
        _emit_partition([node for node in live if node_levels.get(id(node)) == level], graph, emitter)
        for key, unit_level in unit_levels.items():
            if unit_level != level:
                continue
            unit = units[key]
            if isinstance(unit, AttentionCore):
                reason, note = _emit_core(unit, graph, emitter, kv_projection)
                placements.append(Placement(_node_name(unit.absorbed[0]), reason, note=note))
            else:
                reason, note = lower_attention(unit, graph, emitter, kv_projection)
                placements.append(Placement(_node_name(unit), reason, note=note))
    placements += _unmatched(graph, cores)

    results = [emitter.value(name) for name in graph.outputs]
    block.add_op(ReturnOp(*results))
    function = FuncOp(
        "main",
        (arg_types, [r.type for r in results]),
        Region(block),
        arg_attrs=_names_attr(graph.inputs),
        res_attrs=_names_attr(graph.outputs),
    )
    return function, placements


def _node_name(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else "?")


def _emit_partition(nodes: list[onnx.NodeProto], graph: Graph, emitter: Emitter) -> None:
    """One `host.partition` of `nodes`; every value it produces is a result until `prune_partitions`."""
    if not nodes:
        return
    for node in nodes:
        attributes(node)  # a name or string that is not UTF-8 is the model's error, not onnxruntime's crash
    inputs, outputs = boundary_inputs(graph, nodes), produced_values(nodes)
    for name in inputs:
        if name not in emitter.values:
            raise FrontendError(f"internal error: '{name}' is read by the host before it is computed")
    model = partition_model(graph, nodes, inputs, outputs)
    result_types = [tensor_type(graph.info(name)) for name in outputs]
    op = emitter.add(
        PartitionOp("p", model.SerializeToString(), [emitter.values[name] for name in inputs], result_types)
    )
    for name, result in zip(outputs, op.results, strict=True):
        emitter.values[name] = result


def _unmatched(graph: Graph, cores: Sequence[AttentionCore]) -> list[Placement]:
    """A placement (and a warning) for each live Softmax outside every recognised core."""
    matched = {id(node) for core in cores for node in core.absorbed}
    placements = []
    for node in graph.nodes:
        if node.op_type == "Softmax" and id(node) not in matched and node.output[0] not in graph.consts:
            why = unmatched_reason(graph, node)
            warnings.warn(
                f"{describe(node)} is not part of a recognised attention core; it runs on the host: {why}",
                FrontendWarning,
                stacklevel=3,
            )
            placements.append(Placement(_node_name(node), f"{UNMATCHED_REASON}: {why}"))
    return placements


# ---------------------------------------------------------------------------
# Decomposed attention cores
# ---------------------------------------------------------------------------


def _emit_core(
    core: AttentionCore, graph: Graph, emitter: Emitter, kv_projection: bool
) -> tuple[str | None, str | None]:
    """Emit one matched core as `sofa.attention`; why it runs on the host (or None), and its placement note."""
    rank = len(graph.info(core.q).shape)
    ranks = [len(graph.info(name).shape) for name in (core.q, core.k, core.v)]
    if rank not in (3, 4) or ranks != [rank] * 3 or len(core.k_perm) != rank:
        raise FrontendError(
            f"the attention pattern ending at {describe(core.anchor)} has Q, K, V of ranks {ranks}; "
            "they must all be 3-D or all 4-D"
        )
    projected = None
    if kv_projection and rank == 4:
        k_source = head_split_source(graph, core.k, core.k_perm)
        v_source = head_split_source(graph, core.v, (0, 1, 2, 3))
        projected = emit_kv_projection(graph, emitter, k_source, v_source)
    if projected is not None:
        k, v = projected
    else:
        k, v = emitter.transpose(emitter.value(core.k), core.k_perm), emitter.value(core.v)
    q = emitter.value(core.q)
    if rank == 3:
        # [N, S, d] with N = batch * heads: one batch of N heads.
        q, k, v = (emitter.reshape(x, [1, *shape_of(x)]) for x in (q, k, v))
    k, v = _match_kv_heads(emitter, k, v, shape_of(q)[:2])
    subject = f"the attention pattern ending at {describe(core.anchor)}"
    q_length, kv_length = shape_of(q)[2], shape_of(k)[2]
    external = nonpad_mask(graph, core.masks[0], q_length, kv_length) if len(core.masks) == 1 else None
    if external is not None:
        # The external-cache mask of Attention's function body: the lengths it was made from.
        lengths, causal = external
        mask, cache = None, CacheLayout(lengths=emitter.value(lengths))
    else:
        mask, causal, offset = core_mask(core.masks, graph, emitter, q_length, kv_length)
        if mask is not None and rank == 3 and len(shape_of(mask)) == 3:
            mask = emitter.reshape(mask, [1, *shape_of(mask)])
        cache = CacheLayout(past_length=offset)
    out, reason = emit_attention(
        emitter, subject, (q, k, v), mask, scale=core.scale, causal=causal, cache=cache, softcap=core.softcap
    )
    if rank == 3:
        out = emitter.reshape(out, shape_of(out)[1:])
    emitter.values[core.anchor.output[0]] = out
    if not core.read_outside:
        return reason, None
    note = f"host ops also compute {', '.join(core.read_outside)}, which the model reads elsewhere"
    warn_host(subject, f"{note} (the accelerator never materialises the scores)")
    return reason, note


def _match_kv_heads(emitter: Emitter, k: SSAValue, v: SSAValue, lead: tuple[int, ...]) -> tuple[SSAValue, SSAValue]:
    """Broadcast K/V over the batch (and over heads where only one of K, V has one)."""
    batch = lead[0]
    heads = max(shape_of(k)[1], shape_of(v)[1])
    expanded = []
    for value in (k, v):
        shape = shape_of(value)
        target = [batch, heads, *shape[2:]]
        expanded.append(value if list(shape) == target else emitter.host("Expand", [value], target))
    return expanded[0], expanded[1]
