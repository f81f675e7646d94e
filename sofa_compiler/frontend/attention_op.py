"""The standard ONNX `Attention` operator (opsets 23 to 25) as `sofa.attention`.

Supported: 3-D and 4-D inputs, q_num_heads/kv_num_heads (MHA, GQA, MQA),
scale, is_causal, boolean and additive attn_mask of rank 2 to 4 (also
shorter than the KV length, padded as the spec says), past_key/past_value
with present_key/present_value (a host Concat before the op), nonpad_kv_seqlen
(opset 24's external cache), causal masking bottom-right aligned over either
cache (`kv_cache`), opset 25's sliding window (`frontend.masks`, intersected
into the mask), softcap and the
qk_matmul_output output in every qk_matmul_output_mode. Element types f16,
f32, f64 and bf16: bf16 operands are cast to f32 at the accelerator's boundary
(exact) and the output back to bf16, because sofa.attention takes f16/f32/f64;
the kernel computes in f32 for every input type.

The accelerator caps scores (softcap, `sofa.attention`'s softcap) but never materialises the
score matrix: with the qk_matmul_output output, Y still runs on the accelerator and host ops
(`_lower_on_host`, decomposed into MatMul/Tanh/Softmax as the ONNX reference implementation does)
compute the scores in the requested mode beside it; the placement says so.
These stay numpy `host.onnx` ops rather than an onnxruntime partition holding
the node: onnxruntime's Attention binds one element type to Q, K and V (the
spec lets V differ) and writes masked mode-2 scores as the lowest float where
the spec says -inf.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
from xdsl.dialects.builtin import bf16, f32, i1
from xdsl.ir import Attribute, SSAValue
from xdsl.utils.exceptions import VerifyException

from dialects.host import is_float_dtype, numpy_dtype
from dialects.sofa import AttentionOp
from passes.coordinated_tiling import host_reason
from sofa_compiler.frontend.emitter import Emitter, element_of, shape_of
from sofa_compiler.frontend.errors import FrontendError, FrontendWarning
from sofa_compiler.frontend.graph import Graph, attributes, describe
from sofa_compiler.frontend.kv_cache import (
    check_nonpad,
    concat_past,
    explicit_mask,
    key_only,
    place,
)
from sofa_compiler.frontend.mask_axes import narrow_mask
from sofa_compiler.frontend.masks import (
    apply_window,
    apply_window_per_batch,
    as_keep_term,
    folded_mask,
    pad_mask,
    window_of,
)
from sofa_compiler.frontend.patterns import MaskTerm, is_causal_mask
from sofa_compiler.frontend.projection import emit_kv_projection, head_split_source

QK_OUTPUT_NAMES = {
    0: "the scaled scores",
    1: "the scores after softcap",
    2: "the scores after softcap and the mask",
    3: "the softmax",
}
"""qk_matmul_output_mode values, as the opset-24 spec and onnxruntime read them (fully masked rows of
the softmax are 0). onnx's reference evaluator returns the softcapped scores for mode 0, against its
own spec; the front end follows the spec."""
QK_OUTPUT_MODES = tuple(QK_OUTPUT_NAMES)


def _input(node: onnx.NodeProto, index: int) -> str | None:
    return node.input[index] if len(node.input) > index and node.input[index] else None


def _output(node: onnx.NodeProto, index: int) -> str | None:
    return node.output[index] if len(node.output) > index and node.output[index] else None


def _check_supported(node: onnx.NodeProto, graph: Graph) -> None:
    where = describe(node)
    attrs = attributes(node)
    if attrs.get("softcap", 0.0) < 0:
        raise FrontendError(f"{where}: softcap must be >= 0, got {attrs['softcap']}")
    if attrs.get("qk_matmul_output_mode", 0) not in QK_OUTPUT_MODES:
        raise FrontendError(
            f"{where}: qk_matmul_output_mode must be one of {', '.join(map(str, QK_OUTPUT_MODES))}, "
            f"got {attrs['qk_matmul_output_mode']}"
        )
    if (_input(node, 4) is None) != (_input(node, 5) is None):
        raise FrontendError(f"{where}: past_key and past_value must be given together")
    for index, what in ((0, "Q"), (1, "K"), (2, "V")):
        dtype = graph.info(node.input[index]).dtype
        if not is_float_dtype(dtype):
            raise FrontendError(f"{where}: {what} must be a float tensor for the accelerator, got {dtype}")
    mask = _input(node, 3)
    if mask is not None:
        dtype = graph.info(mask).dtype
        if dtype != np.bool_ and not is_float_dtype(dtype):
            raise FrontendError(f"{where}: attn_mask must be boolean or float, got {dtype}")


def _heads(node: onnx.NodeProto, graph: Graph, rank: int) -> tuple[int, int]:
    attrs = attributes(node)
    if rank == 4:
        q_heads, kv_heads = graph.info(node.input[0]).shape[1], graph.info(node.input[1]).shape[1]
        for name, actual in (("q_num_heads", q_heads), ("kv_num_heads", kv_heads)):
            if name in attrs and attrs[name] != actual:
                raise FrontendError(f"{describe(node)}: {name}={attrs[name]} but the 4-D input has {actual} heads")
    else:
        if "q_num_heads" not in attrs or "kv_num_heads" not in attrs:
            raise FrontendError(f"{describe(node)}: 3-D inputs need the q_num_heads and kv_num_heads attributes")
        q_heads, kv_heads = attrs["q_num_heads"], attrs["kv_num_heads"]
    if q_heads < 1 or kv_heads < 1 or q_heads % kv_heads:
        raise FrontendError(
            f"{describe(node)}: q_num_heads ({q_heads}) must be a multiple of kv_num_heads ({kv_heads})"
        )
    if rank == 3:
        for index, what, heads in ((0, "Q", q_heads), (1, "K", kv_heads), (2, "V", kv_heads)):
            hidden = graph.info(node.input[index]).shape[2]
            if hidden == 0 or hidden % heads:
                raise FrontendError(f"{describe(node)}: {what} hidden size {hidden} does not split into {heads} heads")
    return q_heads, kv_heads


def _key_values(
    node: onnx.NodeProto, graph: Graph, emitter: Emitter, kv_heads: int, kv_projection: bool
) -> tuple[SSAValue, SSAValue]:
    """K and V as ``[B, Hkv, S, d]``: a recognised projection, or the inputs with their heads split."""
    k_name, v_name = node.input[1], node.input[2]
    if len(graph.info(k_name).shape) == 3:
        sources = (k_name, kv_heads), (v_name, kv_heads)
    else:
        sources = head_split_source(graph, k_name, (0, 1, 2, 3)), head_split_source(graph, v_name, (0, 1, 2, 3))
    if kv_projection and (projected := emit_kv_projection(graph, emitter, *sources)) is not None:
        return projected
    k, v = emitter.value(k_name), emitter.value(v_name)
    if len(shape_of(k)) == 3:
        return emitter.split_heads(k, kv_heads), emitter.split_heads(v, kv_heads)
    return k, v


def lower_attention(
    node: onnx.NodeProto, graph: Graph, emitter: Emitter, kv_projection: bool = True
) -> tuple[str | None, str | None]:
    """Emit `sofa.attention` (and the host ops around it) for one `Attention` node.

    Returns why the node runs on the host instead (None when the accelerator runs it), and the
    placement note of what host ops compute beside it (the qk_matmul_output output), or None.
    """
    _check_supported(node, graph)
    rank = len(graph.info(node.input[0]).shape)
    if rank not in (3, 4) or any(len(graph.info(node.input[i]).shape) != rank for i in (1, 2)):
        raise FrontendError(f"{describe(node)}: Q, K and V must all be 3-D or all 4-D")
    for index, what in ((0, "Q"), (1, "K"), (2, "V")):
        if 0 in graph.info(node.input[index]).shape:
            raise FrontendError(
                f"{describe(node)}: {what} is empty (shape {list(graph.info(node.input[index]).shape)})"
            )
    q_heads, kv_heads = _heads(node, graph, rank)
    q = emitter.value(node.input[0])
    if rank == 3:
        q = emitter.split_heads(q, q_heads)
    k, v = _key_values(node, graph, emitter, kv_heads, kv_projection)

    past_length = 0
    if (past_key := _input(node, 4)) is not None:
        past_length = graph.info(past_key).shape[2]
        k, v = concat_past(emitter, (emitter.value(past_key), k), (emitter.value(node.input[5]), v))
    for index, value in ((1, k), (2, v)):
        if (name := _output(node, index)) is not None:
            emitter.values[name] = value
    lengths = None
    if (nonpad := _input(node, 6)) is not None:
        check_nonpad(node, graph, nonpad, past_key is not None)
        lengths = emitter.value(nonpad)

    q_length, kv_length = shape_of(q)[2], shape_of(k)[2]
    mask_name = _input(node, 3)
    attrs = attributes(node)
    causal = bool(attrs.get("is_causal", 0))
    if mask_name is not None and not past_length and lengths is None:
        # A constant causal attn_mask (torch's SDPA export with is_causal=False) is the causal flag.
        term = as_keep_term(MaskTerm(mask_name, keep=graph.info(mask_name).dtype == np.bool_), graph)
        mask_name = term.name
        if is_causal_mask(term, graph, q_length, kv_length):
            mask_name, causal = None, True
    mask = None if mask_name is None else pad_mask(emitter, narrow_mask(graph, emitter, mask_name), kv_length)
    if causal and past_length and not key_only(mask) and shape_of(mask)[-2:] != (q_length, kv_length):
        raise FrontendError(
            f"{describe(node)}: attn_mask shape {list(shape_of(mask))} does not broadcast to "
            f"[..., {q_length}, {kv_length}] (queries, past + new keys)"
        )
    window = window_of(node, past_length)
    if lengths is None:
        mask = apply_window(emitter, mask, window, q_length, kv_length)
    else:
        mask = apply_window_per_batch(emitter, mask, window, lengths, q_length, kv_length)
    scale = _spec_scale(float(attrs.get("scale", 1.0 / math.sqrt(shape_of(q)[3]))), numpy_dtype(element_of(q)))
    softcap = float(attrs.get("softcap", 0.0))
    cache = CacheLayout(past_length, lengths)
    out, reason = emit_attention(
        emitter, describe(node), (q, k, v), mask, scale=float(scale), causal=causal, cache=cache, softcap=softcap
    )
    emitter.values[node.output[0]] = emitter.merge_heads(out) if rank == 3 else out
    if (name := _output(node, 3)) is None:
        return reason, None
    mode = attrs.get("qk_matmul_output_mode", 0)
    mask, causal = explicit_mask(emitter, mask, causal, past_length, lengths, q_length, kv_length)
    _, emitter.values[name] = _lower_on_host(emitter, q, k, v, mask, causal, float(scale), softcap, mode)
    note = qk_output_note(mode)
    warn_host(describe(node), f"{note} (the accelerator never materialises the scores)")
    return reason, note


@dataclass(frozen=True)
class CacheLayout:
    """Where the queries sit over the keys: after `past_length` static rows, or per batch after `lengths`."""

    past_length: int = 0
    lengths: SSAValue | None = None
    """`nonpad_kv_seqlen`, the valid length of each batch row of an external cache."""


def emit_attention(
    emitter: Emitter,
    subject: str,
    qkv: tuple[SSAValue, SSAValue, SSAValue],
    mask: SSAValue | None,
    *,
    scale: float,
    causal: bool,
    cache: CacheLayout = CacheLayout(),
    softcap: float = 0.0,
) -> tuple[SSAValue, str | None]:
    """The output of one attention (``[B, H, S, d]`` operands) and why it runs on the host, or None.

    The `Attention` operator and the decomposed patterns (`importer`) both come here, so that a
    node and its `_expanded` twin give the accelerator the same operands. `causal` is aligned
    bottom-right over the `cache` (`kv_cache.place`).
    """
    if not scale > 0:
        raise FrontendError(f"{subject}: scale must be positive for the accelerator, got {scale}")
    placed = place(emitter, qkv, mask, causal=causal, past_length=cache.past_length, lengths=cache.lengths)
    out, reason = checked_attention(
        emitter, subject, placed.qkv, scale=scale, causal=placed.causal, mask=placed.mask, softcap=softcap
    )
    return placed.output(emitter, out), reason


def qk_output_note(mode: int) -> str:
    """The placement note of an `Attention` whose qk_matmul_output output the host computes."""
    return f"its qk_matmul_output output ({QK_OUTPUT_NAMES[mode]}) is computed by host ops"


def _spec_scale(scale: float, dtype: np.dtype) -> float:
    """The scale as the spec applies it: sqrt(scale), rounded to Q's element type, multiplies Q and K each.

    The function body casts ScaleFactorSqrt to T1, and the reference does the same. In f16 or
    bf16 that rounding moves the product by up to ~1e-3, more than the conformance tolerance;
    in f32 and f64 it is below the rounding of the scores themselves, and the scale stays as given.
    """
    if not scale > 0 or dtype.itemsize >= 4:
        return scale  # (a scale <= 0 is the caller's to report)
    return float(np.asarray(math.sqrt(scale), dtype=dtype)) ** 2


def warn_host(subject: str, reason: str) -> None:
    """One warning naming the ONNX node (or pattern) that runs on the host, and why."""
    warnings.warn(f"{subject}: {reason}", FrontendWarning, stacklevel=4)


def checked_attention(
    emitter: Emitter,
    subject: str,
    qkv: tuple[SSAValue, SSAValue, SSAValue],
    *,
    scale: float,
    causal: bool,
    mask: SSAValue | None,
    softcap: float = 0.0,
) -> tuple[SSAValue, str | None]:
    """`emitter.attention`, verified; its output and why it runs on the host (a general mask), or None.

    bf16 operands are cast to f32 at the boundary (exact) and the output back to bf16:
    sofa.attention takes f16, f32 and f64, and the kernel computes in f32 whatever it is given.
    """
    element = element_of(qkv[0])
    qkv = (_widened(emitter, qkv[0]), _widened(emitter, qkv[1]), _widened(emitter, qkv[2]))
    if mask is not None and element_of(mask) != i1:
        mask = _widened(emitter, mask)
    mask = folded_mask(emitter, mask)
    out = emitter.attention(*qkv, scale=scale, causal=causal, mask=mask, softcap=softcap)
    op = out.owner
    assert isinstance(op, AttentionOp)
    try:
        # Shapes the ONNX checker does not relate (K vs V length, head dims, mask) are the model's problem.
        op.verify()
    except VerifyException as error:
        raise FrontendError(f"{subject}: Q, K, V and mask shapes do not fit together: {error}") from None
    if (reason := host_reason(op)) is not None:
        warn_host(subject, reason)
    return _cast(emitter, out, element), reason


def _widened(emitter: Emitter, value: SSAValue) -> SSAValue:
    """bf16 as f32, which holds every bf16 value exactly; other types as they are."""
    return _cast(emitter, value, f32) if element_of(value) == bf16 else value


def _cast(emitter: Emitter, value: SSAValue, element: Attribute) -> SSAValue:
    if element_of(value) == element:
        return value
    return emitter.host("Cast", [value], shape_of(value), element=element)


def _cast_like(emitter: Emitter, value: SSAValue, like: SSAValue) -> SSAValue:
    return _cast(emitter, value, element_of(like))


def _repeat_heads(emitter: Emitter, value: SSAValue, q_heads: int) -> SSAValue:
    """``[B, Hkv, S, d]`` -> ``[B, Hq, S, d]``: query head h reads KV head h // (Hq / Hkv)."""
    batch, kv_heads, length, depth = shape_of(value)
    if kv_heads == q_heads:
        return value
    group = q_heads // kv_heads
    spread = emitter.reshape(value, [batch, kv_heads, 1, length, depth])
    spread = emitter.host("Expand", [spread], [batch, kv_heads, group, length, depth])
    return emitter.reshape(spread, [batch, q_heads, length, depth])


def _mask_bias(
    emitter: Emitter, mask: SSAValue | None, causal: bool, q_length: int, kv_length: int, dtype: np.dtype
) -> SSAValue:
    """The additive bias (0 where visible, -inf where masked) of the mask and the causal flag."""
    bias = None
    if mask is not None:
        if element_of(mask) == i1:
            zero, minus_inf = (emitter.constant(np.array(value, dtype)) for value in (0.0, -np.inf))
            bias = emitter.host("Where", [mask, zero, minus_inf], shape_of(mask), element=element_of(zero))
        else:
            bias = mask
    if causal:
        allowed = np.arange(kv_length)[None, :] <= np.arange(q_length)[:, None]
        causal_bias = emitter.constant(np.where(allowed, 0.0, -np.inf).astype(dtype))
        if bias is None:
            return causal_bias
        shape = np.broadcast_shapes(shape_of(bias), (q_length, kv_length))
        return emitter.host("Add", [bias, causal_bias], shape)
    return bias if bias is not None else emitter.constant(np.zeros((q_length, kv_length), dtype))


def _lower_on_host(
    emitter: Emitter,
    q: SSAValue,
    k: SSAValue,
    v: SSAValue,
    mask: SSAValue | None,
    causal: bool,
    scale: float,
    softcap: float,
    mode: int,
) -> tuple[SSAValue, SSAValue]:
    """Attention as host ops, in the ONNX spec's order; returns (output, qk_matmul_output).

    scores = Q K^T * scale, softcap · tanh(scores / softcap) when softcap > 0,
    + mask bias, softmax (rows whose bias is all -inf give zeros), times V.
    """
    batch, q_heads, q_length, _ = shape_of(q)
    dtype = numpy_dtype(element_of(q))
    # ONNX lets K and V (T2) differ from Q (T1); compute in Q's type, as Y has it.
    k, v = (_cast_like(emitter, value, q) for value in (k, v))
    if mask is not None and element_of(mask) != i1:
        mask = _cast_like(emitter, mask, q)
    k_all, v_all = _repeat_heads(emitter, k, q_heads), _repeat_heads(emitter, v, q_heads)
    kv_length, v_depth = shape_of(v_all)[2], shape_of(v_all)[3]
    score_shape = [batch, q_heads, q_length, kv_length]

    def scalar(value: float) -> SSAValue:
        return emitter.constant(np.array(value, dtype))

    scores = emitter.host("MatMul", [q, emitter.transpose(k_all, [0, 1, 3, 2])], score_shape)
    scores = raw_scores = emitter.host("Mul", [scores, scalar(scale)], score_shape)
    if softcap > 0:
        capped = emitter.host("Tanh", [emitter.host("Div", [scores, scalar(softcap)], score_shape)], score_shape)
        scores = emitter.host("Mul", [capped, scalar(softcap)], score_shape)
    bias = _mask_bias(emitter, mask, causal, q_length, kv_length, dtype)
    with_bias = emitter.host("Add", [scores, bias], score_shape)
    weights = emitter.host("Softmax", [with_bias], score_shape, {"axis": -1})
    bias_max_shape = [*shape_of(bias)[:-1], 1]
    bias_max = emitter.host("ReduceMax", [bias], bias_max_shape, {"axes": (-1,), "keepdims": 1})
    all_masked = emitter.host("Equal", [bias_max, scalar(-np.inf)], bias_max_shape, element=i1)
    weights = emitter.host("Where", [all_masked, scalar(0.0), weights], score_shape, element=element_of(weights))
    out = emitter.host("MatMul", [weights, v_all], [batch, q_heads, q_length, v_depth])
    return out, {0: raw_scores, 1: scores, 2: with_bias, 3: weights}[mode]
