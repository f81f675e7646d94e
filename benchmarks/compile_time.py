"""Compile time of `sofa-compile` against sequence length, measured in one run.

One causal attention layer with 32 heads and d = 128 (Llama-7B's shape) as
a standard ONNX `Attention` op, for sequence lengths 1K to 32K. Prints the
best-of-N compile time (import, tiling, ISA lowering, binary emission), the
kernel's instruction count, and the time relative to 1K; compile time must
grow at most linearly (the ratio column must not exceed the length ratio)
and stay under 2 s at 32K.

    python benchmarks/compile_time.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import onnx
from onnx import TensorProto, helper

from sofa_compiler.bundle import bundle_bytes
from sofa_compiler.driver import compile_model

LENGTHS = (1024, 2048, 4096, 8192, 16384, 32768)


def attention_model(length: int, heads: int = 32, depth: int = 128) -> onnx.ModelProto:
    shape = [1, heads, length, depth]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in ("q", "k", "v")]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=1)
    graph = helper.make_graph([node], "llama7b_attention", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)
    return model


def compile_once(model: onnx.ModelProto) -> tuple[float, int]:
    start = time.perf_counter()
    compiled = compile_model(model, keep=0.25)
    bundle_bytes(compiled)
    seconds = time.perf_counter() - start
    return seconds, sum(len(program.code) for program in compiled.programs.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    models = {length: attention_model(length) for length in LENGTHS}
    compile_once(models[LENGTHS[0]])  # warm-up: first-call imports and caches
    best = dict.fromkeys(LENGTHS, float("inf"))
    instructions: dict[int, int] = {}
    # Round-robin over the lengths, so that noise on a busy machine hits every length alike.
    for _ in range(args.repeat):
        for length, model in models.items():
            seconds, instructions[length] = compile_once(model)
            best[length] = min(best[length], seconds)
    print(f"{'tokens':>7} {'seconds':>8} {'instructions':>12} {'time / 1K':>9} {'length / 1K':>11}")
    base = best[LENGTHS[0]]
    for length in LENGTHS:
        ratio = best[length] / base
        print(f"{length:>7} {best[length]:>8.3f} {instructions[length]:>12} {ratio:>9.2f} {length / LENGTHS[0]:>11.0f}")


if __name__ == "__main__":
    main()
