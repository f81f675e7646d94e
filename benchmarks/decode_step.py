"""One decode step's attention compiled from ONNX: the prefill kernel against the decode kernel (issue 18).

A SmolLM2-135M attention layer (9 query heads over 3 KV heads, d = 64) decodes one token
over a fixed-capacity cache (``--capacity`` 544 rows, ``--length`` 513 of them valid, given as
opset 24's ``nonpad_kv_seqlen``), for M samples (``--samples``) that share the prompt's
``--prompt`` rows. The graph is compiled three ways by `sofa_compiler.compile_model`: decode
steps on the prefill kernel (``DecodeOptions(enabled=False)``, what the driver did before), on
the decode kernel with the standard lowering, and with the cost model's choice (``auto``, the
prompt as the shared prefix). Prints the simulated cycles, DRAM read and write bytes of the
step's attention, the K/V cache bytes (one read of the whole cache, as fp16) and the outputs'
largest difference from the prefill kernel's. Every figure is measured in the run.

    python benchmarks/decode_step.py [--samples 1] [--capacity 544] [--length 513] [--prompt 512]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from sofa_compiler.driver import DecodeOptions, compile_model  # noqa: E402

Q_HEADS, KV_HEADS, DEPTH = 9, 3, 64


def decode_step_model(samples: int, capacity: int) -> onnx.ModelProto:
    """One `Attention` (opset 24) with a single query per sample over an external cache of `capacity` rows."""
    inputs = [
        helper.make_tensor_value_info("Q", TensorProto.FLOAT, [samples, Q_HEADS, 1, DEPTH]),
        helper.make_tensor_value_info("K", TensorProto.FLOAT, [samples, KV_HEADS, capacity, DEPTH]),
        helper.make_tensor_value_info("V", TensorProto.FLOAT, [samples, KV_HEADS, capacity, DEPTH]),
        helper.make_tensor_value_info("lengths", TensorProto.INT64, [samples]),
    ]
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [samples, Q_HEADS, 1, DEPTH])]
    node = helper.make_node("Attention", ["Q", "K", "V", "", "", "", "lengths"], ["Y"], is_causal=1)
    graph = helper.make_graph([node], "decode_step", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)], ir_version=10)


def feeds(samples: int, capacity: int, length: int, prompt: int) -> dict[str, np.ndarray]:
    """Random Q and caches; every sample's first `prompt` rows are one cache, rows past `length` empty."""
    rng = np.random.default_rng(0)
    k, v = (rng.standard_normal((samples, KV_HEADS, capacity, DEPTH)).astype(np.float32) for _ in range(2))
    for cache in (k, v):
        cache[1:, :, :prompt] = cache[0, :, :prompt]
        cache[:, :, length:] = 0
    q = rng.standard_normal((samples, Q_HEADS, 1, DEPTH)).astype(np.float32)
    return {"Q": q, "K": k, "V": v, "lengths": np.full(samples, length, np.int64)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--capacity", type=int, default=544)
    parser.add_argument("--length", type=int, default=513)
    parser.add_argument("--prompt", type=int, default=512)
    args = parser.parse_args()
    model = decode_step_model(args.samples, args.capacity)
    inputs = feeds(args.samples, args.capacity, args.length, args.prompt)
    cache_bytes = args.samples * KV_HEADS * args.capacity * DEPTH * 2 * 2
    print(f"SmolLM2-135M decode-step attention: M = {args.samples}, cache {args.length}/{args.capacity} rows")
    print(f"K/V cache (fp16, whole capacity, every sample): {cache_bytes:,} bytes")
    ways = {
        "prefill kernel": DecodeOptions(enabled=False),
        "decode kernel, standard": DecodeOptions(enabled=True),
        "decode kernel, auto": DecodeOptions(True, "auto", args.prompt),
    }
    reference = None
    for name, decode in ways.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = compile_model(model, keep=1.0, decode=decode)
        outputs, report = compiled.run(inputs)
        kernels = [kernel for _, kernel in report.kernels]
        reads, writes = sum(k.dram_read_bytes for k in kernels), sum(k.dram_write_bytes for k in kernels)
        cycles = sum(k.total_cycles for k in kernels)
        reference = outputs["Y"] if reference is None else reference
        difference = float(np.max(np.abs(outputs["Y"] - reference)))
        choices = compiled.options.get("decode", {}).get("choices") or []
        chosen = f"  chose {choices[0]['lowering']} {choices[0]['predicted']}" if choices else ""
        print(
            f"{name:26s} cycles {cycles:>9,}  DRAM read {reads:>11,} ({reads / cache_bytes:.2f}x cache)"
            f"  write {writes:>9,}  max |dY| {difference:.2e}{chosen}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
