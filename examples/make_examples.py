"""Regenerate the example models in this folder (plain `onnx.helper`, no weights).

    python examples/make_examples.py

`llama_attention.onnx`: one Llama-style attention core as the standard ONNX
`Attention` op (opset 23): grouped-query attention with 8 query heads on 2 KV
heads, head dim 64, 512 tokens, causal.
"""

from pathlib import Path

from onnx import TensorProto, helper, save


def llama_attention(tokens: int = 512, q_heads: int = 8, kv_heads: int = 2, depth: int = 64):
    q = helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, q_heads, tokens, depth])
    k = helper.make_tensor_value_info("k", TensorProto.FLOAT, [1, kv_heads, tokens, depth])
    v = helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, kv_heads, tokens, depth])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, q_heads, tokens, depth])
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=1, name="self_attention")
    graph = helper.make_graph([node], "llama_attention", [q, k, v], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], producer_name="sofa-examples")
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)
    return model


if __name__ == "__main__":
    save(llama_attention(), Path(__file__).parent / "llama_attention.onnx")
