"""Decomposed attention as exporters write it, found from each Softmax.

    scores = MatMul(Q', K')          Q' = Q scaled, K' = K^T (Transpose, scaled)
    scores = scores * c | scores / c  (any number, any order)
    scores = c * tanh(scores / c)     (softcap, at most once, before the masks)
    scores = scores + mask            (additive, either operand order)
           | Where(keep, scores, -big)
    P      = Softmax(scores, axis=-1)  (exact float Casts anywhere between; float Casts of P)
    out    = MatMul(P, V)

An intermediate may have other uses (ONNX's expanded `Attention` returns the scores or the
probabilities as qk_matmul_output): the nodes that compute such a value, and the nodes before
them, stay on the host as well (`AttentionCore.shared`), so every other use reads the value the
model computes, while `sofa.attention` computes the output. Softmaxes that do not match stay
on the host.
"""

from __future__ import annotations

import math
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
    padded: bool = False
    """Shorter than the keys: padded at the end of the key axis with masked entries (the spec's mask padding)."""


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
    """The pattern's nodes; the first is its Softmax."""
    softcap: float = 0.0
    """c of c * tanh(scores / c), applied before the masks; 0 without one."""
    shared: list[onnx.NodeProto] = field(default_factory=list)
    """Nodes of `absorbed` the host runs as well: they compute a value read outside the pattern, or feed one."""
    read_outside: list[str] = field(default_factory=list)
    """The values of the pattern read outside it (a model output, say)."""
    blocker: onnx.NodeProto | None = None
    """While matching: the last node looked at on the scores side."""

    @property
    def fused(self) -> list[onnx.NodeProto]:
        """The nodes `sofa.attention` replaces: `absorbed` less `shared`."""
        shared = {id(node) for node in self.shared}
        return [node for node in self.absorbed if id(node) not in shared]


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


def _softcap(graph: Graph, node: onnx.NodeProto) -> tuple[str, float, list[onnx.NodeProto]] | None:
    """For c * tanh(x / c) (Mul by c of a Tanh of x divided by c, or times 1 / c): x, c and the Tanh and inner nodes."""
    if node.op_type != "Mul":
        return None
    for tanh_at in (0, 1):
        cap, tanh = graph.scalar(node.input[1 - tanh_at]), graph.producer.get(node.input[tanh_at])
        if cap is None or not cap > 0 or tanh is None or tanh.op_type != "Tanh":
            continue
        inner = graph.producer.get(tanh.input[0])
        scaled = None if inner is None else _scalar_factor(graph, inner)
        if inner is not None and scaled is not None and math.isclose(scaled[1] * cap, 1.0, rel_tol=1e-6):
            return scaled[0], cap, [tanh, inner]
    return None


def _peel_masks(graph: Graph, name: str, core: AttentionCore) -> str | None:
    """From the Softmax input up to the scores MatMul, collecting masks, a softcap and scales; the MatMul output.

    On a mismatch, `core.blocker` is the node the walk could not pass (None: a value no node computes).
    """
    scores_shape = graph.info(name).shape
    scaled_outside = False  # a scaling seen so far is applied after any mask or softcap found further up
    while name not in graph.consts and (node := graph.producer.get(name)) is not None:
        core.blocker = node
        if node.op_type == "MatMul":
            return name
        if (capped := _softcap(graph, node)) is not None:
            if scaled_outside or core.softcap:
                return None  # s * softcap(x), or a second softcap: not sofa.attention's form
            name, core.softcap, inner = capped
            core.absorbed.extend(inner)
        elif (scaled := _scalar_factor(graph, node)) is not None:
            name, factor = scaled
            core.scale *= factor
            scaled_outside = True
        elif is_exact_cast(graph, node):
            name = node.input[0]
        elif scaled_outside or core.softcap:
            return None  # (QK + mask) * c scales the mask too; a softcap after the mask caps it
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
        if (capped := _softcap(graph, node)) is not None:
            name = capped[0]
        elif (scaled := _scalar_factor(graph, node)) is not None:
            name = scaled[0]
        elif is_exact_cast(graph, node):
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
    anchor = _product_with_v(graph, probabilities)
    if anchor is None:
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
    _share(graph, core)
    return core


def _product_with_v(graph: Graph, probabilities: str) -> onnx.NodeProto | None:
    """The one MatMul(P, V) that reads the probabilities, or None (none, or several)."""
    products = [
        node for node in graph.uses(probabilities) if node.op_type == "MatMul" and node.input[0] == probabilities
    ]
    return products[0] if len(products) == 1 else None


def _share(graph: Graph, core: AttentionCore) -> None:
    """Fill `core.shared` and `core.read_outside`: what the host still computes for uses outside the pattern."""
    inside = {id(node) for node in (*core.absorbed, core.anchor)}
    core.read_outside = [
        name
        for node in core.absorbed
        for name in node.output
        if name and (name in graph.outputs or any(id(use) not in inside for use in graph.uses(name)))
    ]
    producer = {name: node for node in core.absorbed for name in node.output}
    shared: set[int] = set()
    pending = [producer[name] for name in core.read_outside]
    while pending:
        node = pending.pop()
        if id(node) not in shared:
            shared.add(id(node))
            pending.extend(producer[name] for name in node.input if name in producer)
    core.shared = [node for node in core.absorbed if id(node) in shared]


def is_float_cast(graph: Graph, node: onnx.NodeProto) -> bool:
    """A Cast or CastLike from a float type to a float type (both known)."""
    if node.op_type not in ("Cast", "CastLike"):
        return False
    infos = graph.known(node.input[0]), graph.known(node.output[0])
    return all(info is not None and is_float_dtype(info.dtype) for info in infos)


def is_exact_cast(graph: Graph, node: onnx.NodeProto) -> bool:
    """A float Cast or CastLike that changes no value: to the same type, or a wider one (f16 to f32, say)."""
    if not is_float_cast(graph, node):
        return False
    source, target = graph.info(node.input[0]).dtype, graph.info(node.output[0]).dtype
    return source == target or target.itemsize > source.itemsize


def _masks_nothing(graph: Graph, term: MaskTerm) -> bool:
    """A constant mask that hides no key: an all-zero bias (ONNX's expanded Attention adds one)."""
    value = graph.consts.get(term.name)
    return value is not None and not term.keep and not np.any(value)


def _peel_probabilities(graph: Graph, name: str) -> tuple[str, list[onnx.NodeProto], list[str]]:
    """From the Softmax output down to P: float Casts and Where(rows_all_masked, 0, P) guards.

    Returns P's name, the nodes passed and the guards' conditions, which
    `_zeroes_masked_rows` checks once the masks are known. A value on the way may have other
    uses (`_share`); the walk follows the one use that continues the chain. A float Cast of P
    (softmax_precision's round trip, say) is passed: the kernel computes P in f32 whatever the
    types, as it does for the `Attention` node's softmax_precision.
    """
    passed, guards = [], []
    while True:
        if (nan_guard := _nan_guard(graph, name)) is not None:
            passed.extend(nan_guard)
            guards.append(nan_guard[0].output[0])
            name = nan_guard[1].output[0]
            continue
        steps = [node for node in graph.uses(name) if _is_probability_step(graph, node, name)]
        if len(steps) != 1:
            return name, passed, guards
        (node,) = steps
        if node.op_type == "Where":
            guards.append(node.input[0])
        passed.append(node)
        name = node.output[0]


def _is_probability_step(graph: Graph, node: onnx.NodeProto, name: str) -> bool:
    """A float Cast of P, or Where(guard, 0, P) of P's shape."""
    if is_float_cast(graph, node):
        return True
    if node.op_type != "Where" or list(node.input[2:]) != [name] or graph.scalar(node.input[1]) != 0.0:
        return False
    guarded = graph.known(node.output[0])
    return guarded is not None and guarded.shape == graph.info(name).shape


def _nan_guard(graph: Graph, name: str) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
    """Where(IsNaN(P), 0, P), torch's SDPA decomposition (dynamo exporter): the IsNaN and Where nodes, or None.

    Softmax gives NaN exactly in rows whose every score is -inf, the fully masked rows that
    sofa.attention sets to zero, so the guard is what the accelerator computes anyway.
    """
    uses = graph.uses(name)
    for isnan in uses:
        if isnan.op_type != "IsNaN" or not graph.single_use(isnan.output[0]):
            continue
        (where,) = graph.uses(isnan.output[0])
        if where not in uses or where.op_type != "Where" or graph.scalar(where.input[1]) != 0.0:
            continue
        if list(where.input) == [isnan.output[0], where.input[1], name]:
            return (isnan, where) if graph.info(where.output[0]).shape == graph.info(name).shape else None
    return None


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
    use = _product_with_v(graph, probabilities)
    if use is None:
        uses = graph.uses(probabilities)
        if len(uses) == 1:
            return f"its probabilities feed {describe(uses[0])}, not a MatMul with V"
        return f"its probabilities feed {len(uses)} nodes, not one MatMul with V"
    scratch = AttentionCore(use, q="", k="", k_perm=(), v=use.input[1], scale=1.0, masks=[])
    if _peel_masks(graph, softmax.input[0], scratch) is None:
        if scratch.blocker is None:
            return "its scores come from no MatMul"
        return (
            f"its scores pass through {describe(scratch.blocker)}, which is not a scaling, a softcap "
            "or a mask SOFA can take (in that order)"
        )
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
