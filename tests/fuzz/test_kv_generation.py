"""On-chip K/V generation (paper §2.1): only the selected K/V rows are computed, on the K/V-generation array.

Random layers whose K and V are constant projections of one token tensor X
(``K = X W_k + b_k``, ``V = X W_v + b_v``, as exporters write them) are
compiled with and without generation. For each:

1. the generating kernel takes Q and X only, keeps K/V as scratch DRAM and
   runs `kvgen` (hidden sizes above, below and between multiples of the
   64-wide accumulation step, so chunking and partial chunks are covered);
2. its outputs equal the tiled `sofa` IR run by the dialect's interpreter bit
   for bit, and equal the kernel that reads host-computed K/V bit for bit;
3. `kvgen` computes exactly the rows some query selected: at keep 1.0 every
   valid key once per KV head, below it no more (usually fewer);
4. at keep 1.0 the outputs match onnxruntime within 1e-4.
"""

from __future__ import annotations

import os
import re

import numpy as np
import onnx
import onnxruntime
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from test_compiled_properties import targets, tiled_ir_outputs

from sofa_compiler.accuracy import relative_error
from sofa_compiler.driver import compile_model
from sofa_compiler.isa.container import Program
from sofa_compiler.runtime import generates_kv, stage_attention_inputs
from sofa_compiler.sim.functional import Machine
from tests.fp16_tolerance import FP16_MODEL_RTOL

GENERATION_EXAMPLES = int(os.environ.get("GENERATION_EXAMPLES", "40"))


@st.composite
def projected_layers(draw: st.DrawFn) -> dict:
    kv_heads = draw(st.integers(1, 2))
    return dict(
        batch=draw(st.integers(1, 2)),
        kv_heads=kv_heads,
        heads=kv_heads * draw(st.integers(1, 2)),
        length=draw(st.sampled_from([3, 9, 17, 40])),
        hidden=draw(st.sampled_from([8, 64, 70, 130, 200])),
        depth=draw(st.sampled_from([4, 8, 16])),
        causal=draw(st.booleans()),
        bias=draw(st.booleans()),
        tile=draw(st.sampled_from([None, 4, 8, 16])),
        keep=draw(st.sampled_from([1.0, 0.5, 0.25])),
        target=draw(st.sampled_from(["sofa-28nm", "sofa-small"])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def projected_model(c: dict) -> onnx.ModelProto:
    """Q, K, V projected from one X by constant MatMuls (K/V with optional biases), then `Attention`."""
    rng = np.random.default_rng(c["seed"])
    hidden, depth = c["hidden"], c["depth"]
    scale = 1.0 / np.sqrt(hidden)
    weights = {
        "W_q": rng.standard_normal((hidden, c["heads"] * depth)) * scale,
        "W_k": rng.standard_normal((hidden, c["kv_heads"] * depth)) * scale,
        "W_v": rng.standard_normal((hidden, c["kv_heads"] * depth)) * scale,
    }
    nodes = [helper.make_node("MatMul", ["X", "W_q"], ["Q"])]
    for name in ("k", "v"):
        projected = name.upper() if not c["bias"] else f"{name.upper()}0"
        nodes.append(helper.make_node("MatMul", ["X", f"W_{name}"], [projected]))
        if c["bias"]:
            weights[f"b_{name}"] = rng.standard_normal(c["kv_heads"] * depth) * 0.5
            nodes.append(helper.make_node("Add", [projected, f"b_{name}"], [name.upper()]))
    nodes.append(
        helper.make_node(
            "Attention",
            ["Q", "K", "V"],
            ["Y"],
            q_num_heads=c["heads"],
            kv_num_heads=c["kv_heads"],
            is_causal=int(c["causal"]),
        )
    )
    shape = [c["batch"], c["length"]]
    graph = helper.make_graph(
        nodes,
        "projected",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [*shape, hidden])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [*shape, c["heads"] * depth])],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = onnx.helper.find_min_ir_version_for(model.opset_import)
    return model


def kvgen_macs(program: Program, x: np.ndarray, q: np.ndarray) -> int:
    """The `kvgen` MACs of one run of the kernel (K and V: 2 * rows * H * d)."""
    result = Machine(None, program.dram_bytes).run(program, stage_attention_inputs(program, q, None, None, x))
    macs = sum(e.work.macs for e in result.events if e.opcode == "kvgen")
    return macs


@settings(
    max_examples=GENERATION_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(projected_layers())
def test_generated_kv_equals_the_tiled_ir_and_host_kv(c: dict) -> None:
    model = projected_model(c)
    options = dict(target=targets()[c["target"]], keep=c["keep"], tile=c["tile"])
    generated = compile_model(model, **options)
    host = compile_model(model, kv_generation=False, **options)
    (program,) = generated.programs.values()
    assert generates_kv(program)
    assert not generates_kv(next(iter(host.programs.values())))
    assert "sofa.kv_projection" not in generated.ir("isa")

    x = np.random.default_rng(c["seed"] + 1).standard_normal((c["batch"], c["length"], c["hidden"]))
    inputs = {"X": x.astype(np.float32)}
    outputs, report = generated.run(inputs)
    host_outputs, _ = host.run(inputs)
    np.testing.assert_array_equal(outputs["Y"], tiled_ir_outputs(generated.ir("tiled"), (inputs["X"],)))
    np.testing.assert_array_equal(outputs["Y"], host_outputs["Y"])

    kvgen = report.total.units["kvgen"]
    assert kvgen.instructions > 0
    if c["keep"] == 1.0:
        (expected,) = onnxruntime.InferenceSession(model.SerializeToString()).run(None, inputs)
        assert relative_error(outputs["Y"], expected) < FP16_MODEL_RTOL


def test_keep_one_generates_every_key_once_and_sparsity_generates_fewer():
    c = dict(batch=1, kv_heads=2, heads=4, length=256, hidden=130, depth=16, causal=False, bias=True, seed=5)
    model = projected_model(c)
    x = np.random.default_rng(6).standard_normal((1, 256, 130)).astype(np.float32)
    generated_rows = {}
    for keep in (1.0, 0.1):
        compiled = compile_model(model, keep=keep, tile=64)
        (program,) = compiled.programs.values()
        q = np.zeros((1, 4, 256, 16), np.float32)
        # K and V chunks each count rows * hidden * depth MACs.
        generated_rows[keep] = kvgen_macs(program, x, q) // (2 * 130 * 16)
    assert generated_rows[1.0] == 2 * 256  # every key of both KV heads, once
    # With Q = 0 every score ties, so the same first keys win in every lane: few rows are needed.
    assert generated_rows[0.1] < generated_rows[1.0] // 4


@pytest.mark.parametrize("length", [20, 200], ids=["one-window", "many-windows"])
@pytest.mark.parametrize("hidden", [200, 330])
def test_generation_chunks_over_hidden(hidden: int, length: int):
    """A hidden size beyond one chunk is accumulated over several `kvgen` steps (first one with the bias).

    On the small-SRAM target, 20 keys fit one generation window (narrow chunks),
    200 keys take one window per KV tile (wider chunks).
    """
    c = dict(batch=1, kv_heads=1, heads=1, length=length, hidden=hidden, depth=8, causal=True, bias=True, seed=3)
    compiled = compile_model(projected_model(c), target=targets()["narrow-16-lanes"], tile=16, keep=0.5)
    text = compiled.ir("isa")
    for mnemonic in ("sofa_isa.kvmark", "sofa_isa.kvlist", "sofa_isa.dma_scatter"):
        assert mnemonic in text
    steps = [(int(width), int(mode)) for width, mode in re.findall(r"kvgen .*hidden = (\d+), .*mode = (\d)", text)]
    # K and V per chunk; the first chunk starts from the bias, later ones accumulate.
    assert steps[0][1] == steps[1][1] == 2
    assert all(mode == 1 for _, mode in steps[2:])
    assert len(steps) > 2
    # Every chunk but the last is a whole number of 64-wide accumulation steps.
    assert all(width % 64 == 0 for width, _ in steps[:-2])
    # Chunked generation gives the bits of one pass over H (the tiled IR's kv_projection).
    windows = [int(w) for w in re.findall(r"kvlist .*window = (\d+)", text)]
    assert windows == [32 if length == 20 else 16]
    x = np.random.default_rng(4).standard_normal((1, length, hidden)).astype(np.float32)
    outputs, _ = compiled.run({"X": x})
    np.testing.assert_array_equal(outputs["Y"], tiled_ir_outputs(compiled.ir("tiled"), (x,)))


def test_generating_kernel_size_does_not_grow_with_length():
    """The marking and generation passes are hardware loops: 4x the keys, the same instruction count.

    (Both lengths are long enough that SRAM, not the length, bounds the generation window.)
    """
    sizes = []
    for length in (2048, 8192):
        c = dict(batch=1, kv_heads=2, heads=2, length=length, hidden=130, depth=16, causal=False, bias=True, seed=1)
        compiled = compile_model(projected_model(c), keep=0.25, tile=64)
        (program,) = compiled.programs.values()
        assert generates_kv(program)
        sizes.append(len(program.code))
    assert sizes[0] == sizes[1]


def test_k_hat_is_predicted_once_per_kv_tile():
    """On demand, `dlzs.key` runs once per KV tile of each KV head, not once per query tile."""
    c = dict(batch=2, kv_heads=2, heads=4, length=300, hidden=70, depth=8, causal=False, bias=False, seed=2)
    for generate in (True, False):
        compiled = compile_model(projected_model(c), keep=0.5, tile=32, kv_generation=generate)
        (program,) = compiled.programs.values()
        x = np.random.default_rng(0).standard_normal((2, 300, 70)).astype(np.float32)
        q = np.random.default_rng(1).standard_normal((2, 4, 300, 8)).astype(np.float32)
        k = v = np.zeros((2, 2, 300, 8), np.float32)
        staged = stage_attention_inputs(program, q, *((None, None) if generate else (k, v)), x)
        result = Machine(None, program.dram_bytes).run(program, staged)
        key_steps = sum(1 for e in result.events if e.opcode == "dlzs.key")
        assert key_steps == 2 * 2 * 10  # batch x KV heads x ceil(300 / 32) tiles


@pytest.mark.parametrize("causal", [False, True])
def test_keep_one_loads_the_known_bitmap_instead_of_marking(causal: bool):
    """At keep 1.0 without a sphere clip every valid key is selected: no marking pass, same numbers."""
    c = dict(batch=2, kv_heads=1, heads=2, length=40, hidden=70, depth=8, causal=causal, bias=True, seed=8)
    compiled = compile_model(projected_model(c), keep=1.0, tile=16)
    (program,) = compiled.programs.values()
    text = compiled.ir("isa")
    assert "sofa_isa.kvmark" not in text
    assert program.symbol("needed").kind == "const"
    x = np.random.default_rng(9).standard_normal((2, 40, 70)).astype(np.float32)
    outputs, _ = compiled.run({"X": x})
    np.testing.assert_array_equal(outputs["Y"], tiled_ir_outputs(compiled.ir("tiled"), (x,)))
    marked = compile_model(projected_model(c), keep=1.0, tile=16, radius=1e30)
    assert "sofa_isa.kvmark" in marked.ir("isa")
    np.testing.assert_array_equal(outputs["Y"], marked.run({"X": x})[0]["Y"])
