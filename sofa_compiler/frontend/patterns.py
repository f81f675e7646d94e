"""Decomposed attention as exporters write it, found from each Softmax.

    scores = MatMul(Q', K')          Q' = Q scaled, K' = K^T (Transpose, scaled)
    scores = scores * c | scores / c  (any number, any order)
    scores = scores + mask            (additive, either operand order)
           | Where(keep, scores, -big)
    P      = Softmax(scores, axis=-1)
    out    = MatMul(P, V)

Every intermediate must have no other use, so absorbing the chain into one
`sofa.attention` cannot change another value. Softmaxes that do not match
stay on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from dialects.host import is_float_dtype
from sofa_compiler.frontend.graph import Graph, attributes, describe

# Fill values at or below this in a Where before Softmax act as "masked out".
MASKED_FILL = -1e4


@dataclass(frozen=True)
class MaskTerm:
    name: str
    keep: bool
    """True: a boolean 'keep where true' mask; False: an additive float mask."""
    invert: bool = False
    """For a keep mask written as Where(cond, -big, scores): keep where cond is false."""


@dataclass
class AttentionCore:
    """One matched attention chain; `anchor` is the MatMul(P, V) it replaces."""

    anchor: onnx.NodeProto
    q: str
    k: str
    k_perm: tuple[int, ...]
    """K = transpose(k, k_perm)."""
    v: str
    scale: float
    masks: list[MaskTerm]
    absorbed: list[onnx.NodeProto] = field(default_factory=list)
    blocker: onnx.NodeProto | None = None
    """While matching: the last node looked at on the scores side."""


def _scalar_factor(graph: Graph, node: onnx.NodeProto) -> tuple[str, float] | None:
    """For Mul/Div by a one-element constant: the other operand and the factor."""
    if node.op_type == "Mul":
        for data, other in ((0, 1), (1, 0)):
            factor = graph.scalar(node.input[other])
            if factor is not None and node.input[data] not in graph.consts:
                return node.input[data], factor
    if node.op_type == "Div" and (divisor := graph.scalar(node.input[1])) not in (None, 0.0):
        assert divisor is not None
        return node.input[0], 1.0 / divisor
    return None


def _peel_scales(graph: Graph, name: str, core: AttentionCore, transposes: bool) -> tuple[str, tuple[int, ...] | None]:
    """Walk up through single-use scalar scalings (and Transposes on the K side)."""
    perm: tuple[int, ...] | None = None
    while graph.single_use(name) and (node := graph.producer.get(name)) is not None:
        if (scaled := _scalar_factor(graph, node)) is not None:
            name, factor = scaled
            core.scale *= factor
        elif transposes and node.op_type == "Transpose":
            inner = tuple(attributes(node)["perm"])
            rank = len(inner)
            current = perm or tuple(range(rank))
            perm = tuple(inner[current[i]] for i in range(rank))
            name = node.input[0]
        else:
            break
        core.absorbed.append(node)
    return name, perm


def _peel_masks(graph: Graph, name: str, core: AttentionCore) -> str | None:
    """From the Softmax input up to the scores MatMul, collecting masks and scales; the MatMul output.

    On a mismatch, `core.blocker` is the node the walk could not pass (None: a value with other uses).
    """
    scores_shape = graph.info(name).shape
    scaled_outside = False  # a scaling seen so far is applied after any mask found further up
    while graph.single_use(name) and (node := graph.producer.get(name)) is not None:
        core.blocker = node
        if node.op_type == "MatMul":
            return name
        if (scaled := _scalar_factor(graph, node)) is not None:
            name, factor = scaled
            core.scale *= factor
            scaled_outside = True
        elif _is_noop_cast(graph, node):
            name = node.input[0]
        elif scaled_outside:
            return None  # (QK + mask) * c scales the mask too
        elif node.op_type == "Add":
            data = next((i for i in (0, 1) if _leads_to_matmul(graph, node.input[i])), None)
            if data is None or graph.info(node.input[data]).shape != scores_shape:
                return None
            term = MaskTerm(node.input[1 - data], keep=False)
            if not _masks_nothing(graph, term):
                core.masks.append(term)
            name = node.input[data]
        elif node.op_type == "Where":
            term = _where_mask(graph, node, scores_shape)
            if term is None:
                return None
            core.masks.append(term)
            name = node.input[2 if term.invert else 1]
        else:
            return None
        core.absorbed.append(node)
    core.blocker = None
    return None


def _leads_to_matmul(graph: Graph, name: str) -> bool:
    """Whether `name` is the scores: a MatMul output, maybe behind scalings and masks."""
    for _ in range(8):
        node = graph.producer.get(name)
        if node is None or name in graph.consts:
            return False
        if node.op_type == "MatMul":
            return True
        if (scaled := _scalar_factor(graph, node)) is not None:
            name = scaled[0]
        elif _is_noop_cast(graph, node):
            name = node.input[0]
        elif node.op_type in ("Add", "Where"):
            return any(_leads_to_matmul(graph, operand) for operand in node.input)
        else:
            return False
    return False


def _where_mask(graph: Graph, node: onnx.NodeProto, scores_shape: tuple[int, ...]) -> MaskTerm | None:
    """Where(keep, scores, fill) or Where(cond, fill, scores) with a very negative fill, as a boolean mask."""
    condition = node.input[0]
    for data, fill, invert in ((1, 2, False), (2, 1, True)):
        value = graph.scalar(node.input[fill])
        if value is None or value > MASKED_FILL or graph.info(node.input[data]).shape != scores_shape:
            continue
        if not np.isneginf(value) and not _no_empty_rows(graph, condition, invert, scores_shape):
            # A finite fill gives a fully masked row a uniform softmax; sofa.attention gives zeros.
            return None
        return MaskTerm(condition, keep=True, invert=invert)
    return None


def _no_empty_rows(graph: Graph, condition: str, invert: bool, shape: tuple[int, ...]) -> bool:
    keep = graph.consts.get(condition)
    if keep is None:
        return False
    keep = np.broadcast_to(np.logical_not(keep) if invert else keep.astype(bool), shape)
    return bool(keep.any(axis=-1).all())


def match_core(graph: Graph, softmax: onnx.NodeProto) -> AttentionCore | None:
    """The attention chain around one Softmax, or None."""
    scores = softmax.input[0]
    shape = graph.info(scores).shape
    if len(shape) not in (3, 4) or attributes(softmax).get("axis", -1) % len(shape) != len(shape) - 1:
        return None
    probabilities, after, guards = _peel_probabilities(graph, softmax.output[0])
    consumers = graph.uses(probabilities)
    if not graph.single_use(probabilities) or consumers[0].op_type != "MatMul":
        return None
    anchor = consumers[0]
    if anchor.input[0] != probabilities:
        return None
    core = AttentionCore(anchor, q="", k="", k_perm=(), v=anchor.input[1], scale=1.0, masks=[])
    core.absorbed.extend([softmax, *after])
    matmul_output = _peel_masks(graph, scores, core)
    if matmul_output is None or not all(_zeroes_masked_rows(graph, guard, core.masks, shape) for guard in guards):
        return None
    qk = graph.producer[matmul_output]
    core.absorbed.append(qk)
    core.q, _ = _peel_scales(graph, qk.input[0], core, transposes=False)
    k_transposed, perm = _peel_scales(graph, qk.input[1], core, transposes=True)
    rank = len(shape)
    perm = perm or tuple(range(rank))
    swap = (*range(rank - 2), rank - 1, rank - 2)
    core.k, core.k_perm = k_transposed, tuple(perm[swap[i]] for i in range(rank))
    if not _shapes_fit(graph, core, rank) or not core.scale > 0:
        return None
    return core


def _is_noop_cast(graph: Graph, node: onnx.NodeProto) -> bool:
    """A Cast or CastLike to the element type its input already has."""
    if node.op_type not in ("Cast", "CastLike"):
        return False
    return graph.info(node.output[0]).dtype == graph.info(node.input[0]).dtype


def _masks_nothing(graph: Graph, term: MaskTerm) -> bool:
    """A constant mask that hides no key: an all-zero bias (ONNX's expanded Attention adds one)."""
    value = graph.consts.get(term.name)
    return value is not None and not term.keep and not np.any(value)


def _peel_probabilities(graph: Graph, name: str) -> tuple[str, list[onnx.NodeProto], list[str]]:
    """From the Softmax output down to P: no-op Casts and Where(rows_all_masked, 0, P) guards.

    Returns P's name, the nodes passed and the guards' conditions, which
    `_zeroes_masked_rows` checks once the masks are known.
    """
    passed, guards = [], []
    while (nan_guard := _nan_guard(graph, name)) is not None or graph.single_use(name):
        if nan_guard is not None:
            passed.extend(nan_guard)
            guards.append(nan_guard[0].output[0])
            name = nan_guard[1].output[0]
            continue
        node = graph.uses(name)[0]
        if _is_noop_cast(graph, node):
            pass
        elif node.op_type == "Where" and node.input[2] == name and graph.scalar(node.input[1]) == 0.0:
            if graph.info(node.output[0]).shape != graph.info(name).shape:
                break
            guards.append(node.input[0])
        else:
            break
        passed.append(node)
        name = node.output[0]
    return name, passed, guards


def _nan_guard(graph: Graph, name: str) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
    """Where(IsNaN(P), 0, P), torch's SDPA decomposition (dynamo exporter): the IsNaN and Where nodes, or None.

    Softmax gives NaN exactly in rows whose every score is -inf, the fully masked rows that
    sofa.attention sets to zero, so the guard is what the accelerator computes anyway.
    """
    uses = graph.uses(name)
    if len(uses) != 2 or name in graph.outputs:
        return None
    isnan, where = sorted(uses, key=lambda node: node.op_type != "IsNaN")
    if isnan.op_type != "IsNaN" or where.op_type != "Where" or not graph.single_use(isnan.output[0]):
        return None
    if list(where.input) != [isnan.output[0], where.input[1], name] or graph.scalar(where.input[1]) != 0.0:
        return None
    return (isnan, where) if graph.info(where.output[0]).shape == graph.info(name).shape else None


def _zeroes_masked_rows(graph: Graph, guard: str, masks: list[MaskTerm], shape: tuple[int, ...]) -> bool:
    """Whether Where(guard, 0, P) zeroes exactly the rows every key of which is masked, as sofa.attention does."""
    if (producer := graph.producer.get(guard)) is not None and producer.op_type == "IsNaN":
        return True  # `_nan_guard`: the NaN rows are the fully masked ones
    if len(masks) == 1 and not masks[0].keep and _is_row_all_masked(graph, guard, masks[0].name):
        return True
    condition = graph.consts.get(guard)
    if condition is None or any(mask.name not in graph.consts for mask in masks):
        return False
    visible = np.ones(shape, dtype=bool)
    for mask in masks:
        value = graph.consts[mask.name]
        keep = (np.logical_not(value) if mask.invert else value.astype(bool)) if mask.keep else value > -np.inf
        visible &= np.broadcast_to(keep, shape)
    empty = np.logical_not(visible.any(axis=-1, keepdims=True))
    return bool(np.array_equal(np.broadcast_to(condition, shape), np.broadcast_to(empty, shape)))


def _is_row_all_masked(graph: Graph, guard: str, bias: str) -> bool:
    """guard = Equal(ReduceMax(bias, axes=[-1], keepdims=1), -inf): the expanded Attention's row check."""
    equal = graph.producer.get(guard)
    if equal is None or equal.op_type != "Equal":
        return False
    for row_max, fill in ((0, 1), (1, 0)):
        reduce = graph.producer.get(equal.input[row_max])
        value = graph.scalar(equal.input[fill])
        if reduce is None or reduce.op_type != "ReduceMax" or value is None or not np.isneginf(value):
            continue
        axes = graph.consts.get(reduce.input[1]) if len(reduce.input) > 1 and reduce.input[1] else None
        axes = attributes(reduce).get("axes") if axes is None else axes
        rank = len(graph.info(bias).shape)
        last_axis = axes is not None and [int(a) % rank for a in np.ravel(axes)] == [rank - 1]
        if reduce.input[0] == bias and last_axis and attributes(reduce).get("keepdims", 1):
            return True
    return False


def _shapes_fit(graph: Graph, core: AttentionCore, rank: int) -> bool:
    """Q, K, V have the scores' rank, float elements, and batch/head dims SOFA can take."""
    q, v = graph.info(core.q), graph.info(core.v)
    k_shape = tuple(graph.info(core.k).shape[p] for p in core.k_perm)
    if any(len(s) != rank for s in (q.shape, k_shape, v.shape)):
        return False
    if not all(is_float_dtype(t.dtype) for t in (q, v, graph.info(core.k))):
        return False
    lead_q, lead_k, lead_v = q.shape[:-2], k_shape[:-2], v.shape[:-2]
    if rank == 4 and not lead_q[0] == lead_k[0] == lead_v[0]:
        return False
    # Heads: K and V must each match Q's or be 1 (MQA by broadcasting).
    return all(lead[-1] in (1, lead_q[-1]) for lead in (lead_k, lead_v)) and k_shape[-2] == v.shape[-2]


def unmatched_reason(graph: Graph, softmax: onnx.NodeProto) -> str:
    """Why `match_core` found no attention around this Softmax, in words, naming the node in the way."""
    shape = graph.info(softmax.input[0]).shape
    axis = attributes(softmax).get("axis", -1)
    if len(shape) not in (3, 4) or axis % len(shape) != len(shape) - 1:
        return f"it normalises axis {axis} of a rank-{len(shape)} tensor, not the key axis of 3-D or 4-D scores"
    probabilities, _, _ = _peel_probabilities(graph, softmax.output[0])
    if not graph.single_use(probabilities):
        return "its probabilities have uses besides the product with V (a model output, say)"
    use = graph.uses(probabilities)[0]
    if use.op_type != "MatMul" or use.input[0] != probabilities:
        return f"its probabilities feed {describe(use)}, not a MatMul with V"
    scratch = AttentionCore(use, q="", k="", k_perm=(), v=use.input[1], scale=1.0, masks=[])
    if _peel_masks(graph, softmax.input[0], scratch) is None:
        if scratch.blocker is None:
            return "its scores have other uses, or come from no MatMul"
        return f"its scores pass through {describe(scratch.blocker)}, which is not a scaling or a mask SOFA can take"
    return "Q, K, V, the scale or a mask guard do not fit sofa.attention (shapes, element types, fully masked rows)"


def find_cores(graph: Graph) -> list[AttentionCore]:
    cores = []
    claimed: set[int] = set()
    for node in graph.nodes:
        if node.op_type != "Softmax" or node.output[0] in graph.consts:
            continue
        core = match_core(graph, node)
        if core is None or any(id(n) in claimed for n in core.absorbed):
            continue
        claimed.update(id(n) for n in core.absorbed)
        cores.append(core)
    return cores


def is_causal_mask(term: MaskTerm, graph: Graph, q_length: int, kv_length: int, offset: int = 0) -> bool:
    """Whether a constant mask is exactly causal masking (and nothing else): query i sees key j iff j <= i + offset.

    Offset 0 is upper-left causal, as `sofa.attention` has it; kv_length - q_length is the
    bottom-right form of queries that follow a KV cache. The folded value decides,
    however the model built it (a triangular buffer, a slice of a bigger one, Trilu,
    Where over a Range comparison); a mask broadcast over batch and heads is checked whole.
    """
    value = graph.consts.get(term.name)
    if value is None or value.ndim < 2 or value.shape[-2:] != (q_length, kv_length):
        return False
    lower = np.tril(np.ones((q_length, kv_length), dtype=bool), k=offset)
    if term.keep:
        keep = np.logical_not(value) if term.invert else value.astype(bool)
        return bool(np.all(keep == lower))
    # Additive: 0 where visible; at or below MASKED_FILL (exp underflows to exactly 0 in f32) elsewhere.
    return bool(np.all(np.where(lower, value == 0, value <= MASKED_FILL)))
