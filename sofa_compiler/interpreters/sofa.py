"""Interpreter implementations of the `sofa` dialect: the golden semantics.

Each op delegates to the numpy kernels in `dialects/numerics/`, which the
ISA simulator also uses, so both levels compute the same numbers. Runtime
values are numpy arrays; xDSL `ShapedArray`s are accepted too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.interpreters.shaped_array import ShapedArray
from xdsl.ir import SSAValue

from dialects import numerics
from dialects.sofa import (
    AttentionOp,
    DlzsKeyOp,
    DlzsScoreOp,
    KvProjectionOp,
    Mul4ScoreOp,
    SadsOp,
    SufaOp,
    WkToLzOp,
    softcap_value,
)


def as_array(value: Any) -> np.ndarray:
    """A numpy view of an interpreter value (numpy array or xDSL ShapedArray)."""
    if isinstance(value, ShapedArray):
        return np.array(value.data, dtype=np.float64).reshape(value.shape)
    return np.asarray(value)


def _check_shape(interpreter: Interpreter, value: np.ndarray, ssa: SSAValue, what: str) -> None:
    expected = tuple(ssa.type.get_shape()) if isinstance(ssa.type, TensorType) else ()
    interpreter.interpreter_assert(
        tuple(value.shape) == expected,
        f"{what} has shape {list(value.shape)} at run time, but its type says {ssa.type}",
    )


def _bias(
    mask: np.ndarray | None,
    causal: bool,
    shape: tuple[int, ...],
) -> np.ndarray:
    """Additive bias broadcast to the scores' shape ``[B, H, Sq, Skv]``."""
    *_, query_length, key_length = shape
    return np.broadcast_to(numerics.mask_to_bias(mask, causal, query_length, key_length), shape)


def _held_bias(bias: np.ndarray) -> np.ndarray:
    """The bias as the accelerator holds it: fp32 bias tiles (0 and -inf are exact in any float type)."""
    return np.asarray(bias, np.float32).astype(np.float64)


@register_impls
class SofaFunctions(InterpreterFunctions):
    @impl(AttentionOp)
    def run_attention(self, interpreter: Interpreter, op: AttentionOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        q, k, v = (as_array(a) for a in args[:3])
        for value, ssa, name in ((q, op.q, "Q"), (k, op.k, "K"), (v, op.v, "V")):
            _check_shape(interpreter, value, ssa, name)
        mask = as_array(args[3]) if op.mask is not None else None
        scores_shape = (*q.shape[:3], k.shape[2])
        bias = _bias(mask, op.causal is not None, scores_shape)
        scale, softcap = op.scale.value.data, softcap_value(op.softcap)
        if op.sparsity is None:
            return (numerics.dense_attention(q, k, v, bias, scale, softcap),)
        sparsity = op.sparsity
        out = numerics.sofa_attention(
            q,
            k,
            v,
            bias,
            scale,
            keep=sparsity.keep_ratio,
            tile=sparsity.tile_size,
            radius=sparsity.radius_value,
            predictor=sparsity.predictor.data,
            softcap=softcap,
        )
        return (out,)

    @impl(WkToLzOp)
    def run_wk_to_lz(self, interpreter: Interpreter, op: WkToLzOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        codes, base = numerics.wk_to_lz(as_array(args[0]))
        return codes, base

    @impl(DlzsKeyOp)
    def run_dlzs_key(self, interpreter: Interpreter, op: DlzsKeyOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x, codes, base = as_array(args[0]), as_array(args[1]), int(args[2])
        khat = numerics.dlzs_key(x, codes, base)
        batch, length, columns = khat.shape
        heads = op.kv_heads.value.data
        khat = khat.reshape(batch, length, heads, columns // heads).transpose(0, 2, 1, 3)
        return (np.ascontiguousarray(khat),)

    @impl(DlzsScoreOp)
    def run_dlzs_score(self, interpreter: Interpreter, op: DlzsScoreOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        q, khat = as_array(args[0]), numerics.to_fp16_saturating(as_array(args[1]))
        return (numerics.dlzs_score(q, numerics.expand_kv_heads(khat, q.shape[1])),)

    @impl(Mul4ScoreOp)
    def run_mul4_score(self, interpreter: Interpreter, op: Mul4ScoreOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        q, k = as_array(args[0]), as_array(args[1])
        return (numerics.mul4_score(q, numerics.expand_kv_heads(k, q.shape[1])),)

    @impl(SadsOp)
    def run_sads(self, interpreter: Interpreter, op: SadsOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        scores = as_array(args[0])
        mask = as_array(args[1]) if op.mask is not None else None
        bias = _bias(mask, op.causal is not None, scores.shape)
        sparsity = op.sparsity
        # A-hat is in unscaled dot-product units; the radius is in logits.
        radius = sparsity.radius_value / op.scale.value.data
        tile, keep, far = sparsity.tile_size, sparsity.keep_ratio, sparsity.far_ratio
        if op.biased is not None:
            # Ranked in logits (`sads.bias`): the capped, scaled prediction plus the bias; the radius is in logits.
            softcap = softcap_value(op.softcap)
            ranked, valid = numerics.biased_sads_inputs(scores, bias, op.scale.value.data, softcap)
            return (numerics.sads(ranked, valid, tile, keep, sparsity.radius_value, far),)
        indices = numerics.sads(scores, np.isfinite(bias), tile, keep, radius, far)
        return (indices,)

    @impl(SufaOp)
    def run_sufa(self, interpreter: Interpreter, op: SufaOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        q, k, v, indices = (as_array(a) for a in args[:4])
        mask = as_array(args[4]) if op.mask is not None else None
        bias = _held_bias(_bias(mask, op.causal is not None, (*q.shape[:3], k.shape[2])))
        scale, tile = op.scale.value.data, op.tile.value.data
        out, _ = numerics.sufa(q, k, v, indices.astype(np.int32), bias, scale, tile, softcap_value(op.softcap))
        return (out,)

    @impl(KvProjectionOp)
    def run_kv_projection(self, interpreter: Interpreter, op: KvProjectionOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x, w_k, w_v = (as_array(a) for a in args[:3])
        rest = list(args[3:])
        b_k = as_array(rest.pop(0)) if op.b_k is not None else None
        b_v = as_array(rest.pop(0)) if op.b_v is not None else None
        heads = op.kv_heads.value.data
        return _split_heads(_project(x, w_k, b_k), heads), _split_heads(_project(x, w_v, b_v), heads)


def _project(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``x . w + b`` for ``x`` ``[B, S, H]`` as the K/V-generation array computes it (`numerics.kv_rows`)."""
    batch, length, hidden = x.shape
    rows = numerics.kv_rows(x.reshape(-1, hidden), w, b)
    return rows.reshape(batch, length, -1)


def _split_heads(values: np.ndarray, heads: int) -> np.ndarray:
    """``[B, S, Hkv * d]`` -> ``[B, Hkv, S, d]`` as fp32."""
    batch, length, columns = values.shape
    split = values.reshape(batch, length, heads, columns // heads).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(split, dtype=np.float32)
