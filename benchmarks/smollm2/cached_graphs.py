"""A Llama-style decoder (SmolLM2-135M) as a prefill graph and a decode-step graph with a KV cache.

The graphs follow `sofa_compiler.generation.contract`: the prefill takes ``input_ids [1, S]``
and gives the logits and each layer's K/V; the decode step takes one token per sample, the
cache (capacity C) and its length, writes the new K/V with `TensorScatter` and attends with
`nonpad_kv_seqlen` (ONNX opset 24). Both are written op by op from the weights (numpy), so
the same builder makes SmolLM2's graphs and the small random-weight graphs of the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sofa_compiler.generation.contract import (
    CACHE_LENGTH,
    INPUT_IDS,
    LOGITS,
    past_key,
    past_value,
    present_key,
    present_value,
)

OPSET = 24


@dataclass(frozen=True)
class LlamaShape:
    hidden: int = 576
    layers: int = 30
    heads: int = 9
    kv_heads: int = 3
    head_dim: int = 64
    intermediate: int = 1536
    vocab: int = 49152
    rope_theta: float = 100000.0
    eps: float = 1e-5


SMOLLM2_135M = LlamaShape()


def random_weights(shape: LlamaShape, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights with transformers' Llama names, drawn at scales that keep activations O(1)."""
    rng = np.random.default_rng(seed)

    def matrix(out: int, inp: int) -> np.ndarray:
        return (rng.standard_normal((out, inp)) / np.sqrt(inp)).astype(np.float32)

    q_out, kv_out = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    weights = {"model.embed_tokens.weight": rng.standard_normal((shape.vocab, shape.hidden)).astype(np.float32)}
    for i in range(shape.layers):
        prefix = f"model.layers.{i}."
        for name, (out, inp) in {
            "self_attn.q_proj": (q_out, shape.hidden),
            "self_attn.k_proj": (kv_out, shape.hidden),
            "self_attn.v_proj": (kv_out, shape.hidden),
            "self_attn.o_proj": (shape.hidden, q_out),
            "mlp.gate_proj": (shape.intermediate, shape.hidden),
            "mlp.up_proj": (shape.intermediate, shape.hidden),
            "mlp.down_proj": (shape.hidden, shape.intermediate),
        }.items():
            weights[f"{prefix}{name}.weight"] = matrix(out, inp)
        for norm in ("input_layernorm", "post_attention_layernorm"):
            weights[f"{prefix}{norm}.weight"] = (1 + 0.1 * rng.standard_normal(shape.hidden)).astype(np.float32)
    weights["model.norm.weight"] = np.ones(shape.hidden, np.float32)
    weights["lm_head.weight"] = matrix(shape.vocab, shape.hidden)  # untied: varied tokens from random weights
    return weights


class _Builder:
    """Appends nodes and initializers; `op` returns the new value's name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value: np.ndarray, name: str | None = None) -> str:
        name = name or f"c{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: object) -> str:
        self.count += 1
        out = f"{op_type.lower()}{self.count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def rms_norm(self, x: str, weight: str, eps: float) -> str:
        square = self.op("Mul", x, x)
        mean = self.op("ReduceMean", square, self.const(np.array([-1], np.int64)), keepdims=1)
        root = self.op("Sqrt", self.op("Add", mean, self.const(np.array(eps, np.float32))))
        return self.op("Mul", self.op("Div", x, root), weight)

    def heads(self, x: str, batch: int, length: int, heads: int, depth: int) -> str:
        """``[B, S, H*d]`` -> ``[B, H, S, d]``."""
        shaped = self.op("Reshape", x, self.const(np.array([batch, length, heads, depth], np.int64)))
        return self.op("Transpose", shaped, perm=[0, 2, 1, 3])

    def rope(self, x: str, cos: str, sin: str, depth: int) -> str:
        """transformers' rotate-half RoPE: x cos + rotate_half(x) sin."""
        half = depth // 2
        axis = self.const(np.array([3], np.int64))
        first = self.op("Slice", x, self.const(np.array([0], np.int64)), self.const(np.array([half], np.int64)), axis)
        second = self.op(
            "Slice", x, self.const(np.array([half], np.int64)), self.const(np.array([depth], np.int64)), axis
        )
        rotated = self.op("Concat", self.op("Neg", second), first, axis=3)
        return self.op("Add", self.op("Mul", x, cos), self.op("Mul", rotated, sin))


def _rope_tables(shape: LlamaShape, positions: int) -> tuple[np.ndarray, np.ndarray]:
    inverse = 1.0 / shape.rope_theta ** (np.arange(0, shape.head_dim, 2, dtype=np.float64) / shape.head_dim)
    angles = np.arange(positions, dtype=np.float64)[:, None] * inverse[None, :]
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def build(
    weights: dict[str, np.ndarray], shape: LlamaShape, *, prompt: int, capacity: int, samples: int, decode: bool
) -> onnx.ModelProto:
    """The prefill graph (``decode=False``: batch 1, `prompt` tokens) or the decode-step graph."""
    b = _Builder()
    batch, length = (samples, 1) if decode else (1, prompt)
    d = shape.head_dim
    inputs = [helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, [batch, length])]
    outputs = [helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, [batch, length, shape.vocab])]
    cos_table, sin_table = _rope_tables(shape, capacity)
    if decode:
        inputs.append(helper.make_tensor_value_info(CACHE_LENGTH, TensorProto.INT64, [batch]))
        position_shape = b.const(np.array([batch, 1, 1, d], np.int64))
        cos = b.op("Reshape", b.op("Gather", b.const(cos_table), CACHE_LENGTH, axis=0), position_shape)
        sin = b.op("Reshape", b.op("Gather", b.const(sin_table), CACHE_LENGTH, axis=0), position_shape)
        valid = b.op("Add", CACHE_LENGTH, b.const(np.array([1], np.int64)))
    else:
        cos, sin = b.const(cos_table[:prompt][None, None]), b.const(sin_table[:prompt][None, None])
    embedding = b.const(weights["model.embed_tokens.weight"], "embed_tokens")
    x = b.op("Gather", embedding, INPUT_IDS, axis=0)
    for i in range(shape.layers):
        prefix = f"model.layers.{i}."
        w = {name: b.const(value.T.copy() if value.ndim == 2 else value) for name, value in weights.items()
             if name.startswith(prefix)}  # fmt: skip
        normed = b.rms_norm(x, w[prefix + "input_layernorm.weight"], shape.eps)
        q = b.heads(b.op("MatMul", normed, w[prefix + "self_attn.q_proj.weight"]), batch, length, shape.heads, d)
        k = b.heads(b.op("MatMul", normed, w[prefix + "self_attn.k_proj.weight"]), batch, length, shape.kv_heads, d)
        v = b.heads(b.op("MatMul", normed, w[prefix + "self_attn.v_proj.weight"]), batch, length, shape.kv_heads, d)
        q, k = b.rope(q, cos, sin, d), b.rope(k, cos, sin, d)
        if decode:
            cache_shape = [batch, shape.kv_heads, capacity, d]
            for name in (past_key(i), past_value(i)):
                inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, cache_shape))
            b.nodes.append(helper.make_node("TensorScatter", [past_key(i), k, CACHE_LENGTH], [present_key(i)], axis=2))
            b.nodes.append(
                helper.make_node("TensorScatter", [past_value(i), v, CACHE_LENGTH], [present_value(i)], axis=2)
            )
            attention_inputs = [q, present_key(i), present_value(i), "", "", "", valid]
        else:
            cache_shape = [batch, shape.kv_heads, prompt, d]
            b.nodes.append(helper.make_node("Identity", [k], [present_key(i)]))
            b.nodes.append(helper.make_node("Identity", [v], [present_value(i)]))
            attention_inputs = [q, k, v]
        for name in (present_key(i), present_value(i)):
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, cache_shape))
        b.count += 1
        attended = f"attention{b.count}"
        b.nodes.append(helper.make_node("Attention", attention_inputs, [attended], is_causal=1))
        merged = b.op("Reshape", b.op("Transpose", attended, perm=[0, 2, 1, 3]),
                      b.const(np.array([batch, length, shape.heads * d], np.int64)))  # fmt: skip
        x = b.op("Add", x, b.op("MatMul", merged, w[prefix + "self_attn.o_proj.weight"]))
        normed = b.rms_norm(x, w[prefix + "post_attention_layernorm.weight"], shape.eps)
        gate = b.op("MatMul", normed, w[prefix + "mlp.gate_proj.weight"])
        up = b.op("MatMul", normed, w[prefix + "mlp.up_proj.weight"])
        act = b.op("Mul", b.op("Mul", gate, b.op("Sigmoid", gate)), up)
        x = b.op("Add", x, b.op("MatMul", act, w[prefix + "mlp.down_proj.weight"]))
    final = b.rms_norm(x, b.const(weights["model.norm.weight"]), shape.eps)
    # SmolLM2 ties the output head to the embedding; a separate lm_head.weight is used where given.
    head_weight = weights.get("lm_head.weight", weights["model.embed_tokens.weight"])
    head = b.const(head_weight.T.copy(), "lm_head")
    b.nodes.append(helper.make_node("MatMul", [final, head], [LOGITS]))
    graph = helper.make_graph(b.nodes, "decode" if decode else "prefill", inputs, outputs, b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)
    return model


def onnxruntime_greedy(
    prefill: onnx.ModelProto, decode: onnx.ModelProto, prompt: np.ndarray, tokens: int
) -> np.ndarray:
    """The reference: the same graphs on onnxruntime, greedy, `tokens` new tokens per sample (``[M, tokens]``)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # TensorScatter warns on every run that it copies the cache
    first, step = (
        onnxruntime.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
        for graph in (prefill, decode)
    )
    names = [output.name for output in prefill.graph.output]
    results = dict(zip(names, first.run(None, {INPUT_IDS: prompt.reshape(1, -1).astype(np.int64)}), strict=True))
    cache_inputs = {value.name: value for value in decode.graph.input if value.name.startswith("past_")}
    samples = decode.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    length = prompt.size
    cache = {}
    for name, value in cache_inputs.items():
        dims = [dim.dim_value for dim in value.type.tensor_type.shape.dim]
        full = np.zeros(dims, np.float32)
        full[:, :, :length] = results[name.replace("past_", "present_")]
        cache[name] = full
    chosen = [np.repeat(np.argmax(results[LOGITS][:, -1], axis=-1), samples)]
    step_names = [output.name for output in decode.graph.output]
    while len(chosen) < tokens:
        feeds = {INPUT_IDS: chosen[-1][:, None], CACHE_LENGTH: np.full(samples, length, np.int64), **cache}
        out = dict(zip(step_names, step.run(None, feeds), strict=True))
        cache = {name: out[name.replace("past_", "present_")] for name in cache}
        chosen.append(np.argmax(out[LOGITS][:, -1], axis=-1))
        length += 1
    return np.stack(chosen, axis=1).astype(np.int64)
