"""The external-cache mask of `Attention`'s function body, recognised in a decomposed graph.

ONNX's `_expanded` form of an `Attention` with `nonpad_kv_seqlen` builds its mask at run time
from the lengths: key j is visible to query i of batch b iff j < L[b] (and, causal,
j <= i + L[b] - q). As a general runtime mask it would run on the host; recognised, it becomes
the lengths themselves, which `kv_cache.place` gives the accelerator.

The mask is recognised by what it computes, not how: the subgraph from the lengths to the mask
is evaluated (onnx's reference evaluator) for lengths covering every value 0..S_kv in every
batch row (S_kv + 1 runs, each batch row shifted by one; at most `MAX_PROBES` spread values
for long caches), and must equal one of the two forms on all of them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from sofa_compiler.frontend.graph import Graph
from sofa_compiler.frontend.patterns import MASKED_FILL, MaskTerm

MAX_NODES = 200
"""A mask built by more nodes is not the function body's (and is not evaluated)."""
MAX_PROBES = 65
"""Length vectors evaluated at most; below S_kv + 1 of them, spread over 0..S_kv with both ends."""


def _ancestors(graph: Graph, name: str) -> tuple[list[onnx.NodeProto], set[str]] | None:
    """The running nodes that compute `name`, and the graph inputs they read (None: too many nodes)."""
    nodes: dict[int, onnx.NodeProto] = {}
    inputs: set[str] = set()
    pending = [name]
    while pending:
        value = pending.pop()
        if value in graph.consts or not value:
            continue
        node = graph.producer.get(value)
        if node is None:
            inputs.add(value)
            continue
        if id(node) in nodes:
            continue
        nodes[id(node)] = node
        if len(nodes) > MAX_NODES:
            return None
        pending.extend(node.input)
    order = [node for node in graph.nodes if id(node) in nodes]
    return order, inputs


def _subgraph(graph: Graph, nodes: list[onnx.NodeProto], lengths: str, output: str) -> onnx.ModelProto:
    produced = {out for node in nodes for out in node.output}
    consts = {name for node in nodes for name in node.input if name in graph.consts and name not in produced}
    info = graph.info(lengths)
    body = helper.make_graph(
        nodes,
        "mask",
        [helper.make_tensor_value_info(lengths, onnx.TensorProto.INT64, list(info.shape))],
        [helper.make_empty_tensor_value_info(output)],
        [numpy_helper.from_array(graph.consts[name], name) for name in sorted(consts)],
    )
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", graph.opset)])


def _visible(value: np.ndarray, term: MaskTerm) -> np.ndarray | None:
    """Where the mask lets a key through, or None when it is not a pure visible/hidden mask."""
    if term.keep:
        keep = value.astype(bool)
        return np.logical_not(keep) if term.invert else keep
    if not np.all((value == 0) | (value <= MASKED_FILL)):
        return None
    return value == 0


def probe_lengths(batch: int, kv_length: int) -> list[np.ndarray]:
    """Length vectors in which every batch row takes every value 0..S_kv (or a spread with both ends)."""
    values = np.arange(kv_length + 1)
    if len(values) > MAX_PROBES:
        values = np.unique(np.linspace(0, kv_length, MAX_PROBES).round().astype(np.int64))
    return [((values[index] + np.arange(batch)) % (kv_length + 1)).astype(np.int64) for index in range(len(values))]


def nonpad_mask(graph: Graph, term: MaskTerm, q_length: int, kv_length: int) -> tuple[str, bool] | None:
    """``(lengths input, causal)`` when the mask is the external-cache mask of those lengths, else None."""
    if term.name in graph.consts:
        return None
    found = _ancestors(graph, term.name)
    if found is None:
        return None
    nodes, inputs = found
    if len(inputs) != 1:
        return None
    (lengths,) = inputs
    info = graph.info(lengths)
    if info.dtype != np.int64 or len(info.shape) != 1:
        return None
    batch = info.shape[0]
    from onnx.reference import ReferenceEvaluator

    try:
        evaluator = ReferenceEvaluator(_subgraph(graph, nodes, lengths, term.name))
    except Exception:  # a subgraph the reference cannot load is not the function body's mask
        return None
    keys = np.arange(kv_length)
    queries = np.arange(q_length)[:, None]
    matches = {False: True, True: True}
    for probe in probe_lengths(batch, kv_length):
        try:
            (value,) = evaluator.run(None, {lengths: probe})
        except Exception:  # likewise: the evaluation is only a probe
            return None
        visible = _visible(np.asarray(value), term)
        if visible is None or visible.ndim > 4:
            return None
        limit = probe.reshape(batch, 1, 1, 1)
        padding = keys < limit
        causal = padding & (keys <= queries + limit - q_length)
        try:
            shape = np.broadcast_shapes(visible.shape, (batch, 1, q_length, kv_length))
        except ValueError:
            return None
        seen = np.broadcast_to(visible, shape)
        matches[False] &= bool(np.array_equal(seen, np.broadcast_to(padding, shape)))
        matches[True] &= bool(np.array_equal(seen, np.broadcast_to(causal, shape)))
        if not any(matches.values()):
            return None
    return lengths, not matches[False]  # padding alone where it fits (one query: the two agree)
