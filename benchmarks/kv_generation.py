"""On-chip K/V generation against host-computed K/V, side by side in one run.

One projected attention layer (K = X W_k + b_k, V = X W_v + b_v, Q = X W_q;
default BERT-base widths: hidden 768, d = 64, 2 heads, S = 1024) is compiled
twice per keep ratio: generating only the selected K/V rows on the
K/V-generation array (the default), and reading K/V rows the host computed
for every token (``kv_generation=False``). Prints the fraction of K/V rows
generated, the K/V-generation MACs against a dense projection, and the
simulated cycles, DRAM bytes and energy of both kernels.

The host variant's figures leave out the projection itself (the host does it
for free in the simulator), so its cycles and bytes are a lower bound.

    python benchmarks/kv_generation.py [--seq 1024] [--hidden 768] [--heads 2] [--depth 64]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sofa_compiler.driver import compile_model
from sofa_compiler.runtime import stage_attention_inputs
from sofa_compiler.sim.functional import Machine


def projected_layer(seq: int, hidden: int, heads: int, depth: int) -> tuple[onnx.ModelProto, np.ndarray]:
    rng = np.random.default_rng(0)
    scale = 1.0 / np.sqrt(hidden)
    weights = {name: rng.standard_normal((hidden, heads * depth)) * scale for name in ("W_q", "W_k", "W_v")}
    weights |= {name: rng.standard_normal(heads * depth) * 0.1 for name in ("b_k", "b_v")}
    nodes = [
        helper.make_node("MatMul", ["X", "W_q"], ["Q"]),
        helper.make_node("MatMul", ["X", "W_k"], ["K0"]),
        helper.make_node("Add", ["K0", "b_k"], ["K"]),
        helper.make_node("MatMul", ["X", "W_v"], ["V0"]),
        helper.make_node("Add", ["V0", "b_v"], ["V"]),
        helper.make_node("Attention", ["Q", "K", "V"], ["Y"], q_num_heads=heads, kv_num_heads=heads),
    ]
    graph = helper.make_graph(
        nodes,
        "layer",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, seq, hidden])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, seq, heads * depth])],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = onnx.helper.find_min_ir_version_for(model.opset_import)
    x = rng.standard_normal((1, seq, hidden)).astype(np.float32)
    return model, x


def generated_rows(compiled, x: np.ndarray, q: np.ndarray, hidden: int, width: int) -> int:
    (program,) = compiled.programs.values()
    result = Machine(None, program.dram_bytes).run(program, stage_attention_inputs(program, q, None, None, x))
    return sum(e.work.macs for e in result.events if e.opcode == "kvgen") // (2 * hidden * width)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--keep", type=float, nargs="+", default=[1.0, 0.25, 0.1])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model, x = projected_layer(args.seq, args.hidden, args.heads, args.depth)
    w_q = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "W_q")
    q = (x @ w_q).reshape(1, args.seq, args.heads, args.depth).transpose(0, 2, 1, 3)
    rows_total = args.heads * args.seq
    print(f"layer: S={args.seq} hidden={args.hidden} heads={args.heads} d={args.depth} (random tokens)")
    columns = ["keep", "rows generated", "kvgen MACs / dense projection", "cycles", "DRAM bytes", "energy"]
    print(" | ".join(columns) + "  (generated / host)")
    for keep in args.keep:
        generating = compile_model(model, keep=keep)
        host = compile_model(model, keep=keep, kv_generation=False)
        if not generating.programs or not next(iter(generating.programs.values())).symbol("k").kind == "scratch":
            print(f"{keep}: the layer does not generate K/V on chip for this target", file=sys.stderr)
            return 1
        outputs, gen_report = generating.run({"X": x})
        host_outputs, host_report = host.run({"X": x})
        if not np.array_equal(outputs["Y"], host_outputs["Y"]):
            print("error: generated and host K/V give different outputs", file=sys.stderr)
            return 1
        rows = generated_rows(generating, x, q, args.hidden, args.depth)
        g, h = gen_report.total, host_report.total
        g_bytes, h_bytes = g.dram_read_bytes + g.dram_write_bytes, h.dram_read_bytes + h.dram_write_bytes
        g_energy, h_energy = sum(g.energy_pj.values()), sum(h.energy_pj.values())
        print(
            f"{keep:4} | {rows}/{rows_total} ({rows / rows_total:.1%}) | {rows / rows_total:.3f}"
            f" | {g.total_cycles}/{h.total_cycles} ({g.total_cycles / h.total_cycles:.2f}x)"
            f" | {g_bytes}/{h_bytes} ({g_bytes / h_bytes:.2f}x)"
            f" | {g_energy / 1e6:.1f}/{h_energy / 1e6:.1f} uJ ({g_energy / h_energy:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
