"""Property tests of the whole compiler: random ONNX `Attention` layers through `compile_model`.

Each example draws heads, a GQA ratio, head dims, query and key lengths that
are rarely tile multiples, a mask (none, causal, a key-padding mask that the
tiling pass folds into Q and K, or a general 2-D boolean mask whose index lists
the host builds at launch), a KV tile, a keep ratio and a target (the paper's design, the half-size
one, or a 16-lane variant with small SRAMs). It is compiled, its kernels run on
the simulator and its host ops on numpy, and:

1. at keep 1.0 the outputs equal an independent fp64 numpy attention
   (`reference_attention`, rtol 1e-4: the kernels compute in fp32);
2. at every keep ratio the outputs equal the tiled `sofa` IR run by the
   dialect's interpreter (the golden semantics) bit for bit;
3. no NaN or Inf appears (the inputs have none).

CI budget: `COMPILED_EXAMPLES` (default 200) configurations. The causal tile-skipping
schedule for KV tiles as large as the lanes is also checked on fixed shapes.
"""

from __future__ import annotations

import math
import os
from functools import cache

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from test_properties import reference_attention
from xdsl.interpreter import Interpreter

from dialects import numerics
from sofa_compiler.context import sofa_context
from sofa_compiler.driver import compile_model
from sofa_compiler.interpreters import register_all
from sofa_compiler.parser import SofaParser
from sofa_compiler.sim.config import HardwareConfig, load_config
from tests.fp16_tolerance import assert_close_to_fp32_reference

COMPILED_EXAMPLES = int(os.environ.get("COMPILED_EXAMPLES", "200"))
CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


@cache
def targets() -> dict[str, HardwareConfig]:
    paper = load_config(os.path.join(CONFIGS, "sofa-28nm.toml"))
    small = load_config(os.path.join(CONFIGS, "sofa-small.toml"))
    narrow = small.with_values(
        {"target.lanes": 16, "target.token_sram": 16384, "target.weight_sram": 8192, "target.temp_sram": 8192}
    )
    return {"sofa-28nm": paper, "sofa-small": small, "narrow-16-lanes": narrow}


@st.composite
def layers(draw: st.DrawFn) -> dict:
    kv_heads = draw(st.integers(1, 2))
    return dict(
        batch=draw(st.integers(1, 2)),
        kv_heads=kv_heads,
        heads=kv_heads * draw(st.integers(1, 3)),
        sq=draw(st.sampled_from([1, 3, 7, 16, 17, 33])),
        skv=draw(st.sampled_from([1, 5, 9, 16, 23, 40])),
        depth=draw(st.sampled_from([4, 8, 12, 16])),
        vdepth=draw(st.sampled_from([4, 8, 12])),
        mask=draw(st.sampled_from(["none", "causal", "key-padding", "bool-2d"])),
        tile=draw(st.sampled_from([None, 2, 4, 8, 16])),
        keep=draw(st.sampled_from([1.0, 0.75, 0.5, 0.25, 0.1])),
        target=draw(st.sampled_from(sorted(targets()))),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def attention_layer(c: dict) -> onnx.ModelProto:
    """One opset-23 `Attention` node on 4-D Q/K/V, with the drawn mask."""
    inputs = [
        helper.make_tensor_value_info("q", TensorProto.FLOAT, [c["batch"], c["heads"], c["sq"], c["depth"]]),
        helper.make_tensor_value_info("k", TensorProto.FLOAT, [c["batch"], c["kv_heads"], c["skv"], c["depth"]]),
        helper.make_tensor_value_info("v", TensorProto.FLOAT, [c["batch"], c["kv_heads"], c["skv"], c["vdepth"]]),
    ]
    names = ["q", "k", "v"]
    if c["mask"] == "key-padding":
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.BOOL, [c["batch"], 1, 1, c["skv"]]))
        names.append("mask")
    elif c["mask"] == "bool-2d":
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.BOOL, [c["sq"], c["skv"]]))
        names.append("mask")
    node = helper.make_node("Attention", names, ["y"], is_causal=int(c["mask"] == "causal"))
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [c["batch"], c["heads"], c["sq"], c["vdepth"]])
    graph = helper.make_graph([node], "layer", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = onnx.helper.find_min_ir_version_for(model.opset_import)
    return model


def layer_inputs(c: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(c["seed"])
    inputs = {
        "q": rng.standard_normal((c["batch"], c["heads"], c["sq"], c["depth"])).astype(np.float32),
        "k": rng.standard_normal((c["batch"], c["kv_heads"], c["skv"], c["depth"])).astype(np.float32),
        "v": rng.standard_normal((c["batch"], c["kv_heads"], c["skv"], c["vdepth"])).astype(np.float32),
    }
    if c["mask"] == "key-padding":
        mask = rng.random((c["batch"], 1, 1, c["skv"])) < 0.7
        mask[..., 0] = True  # a padded batch row still has its first token
        inputs["mask"] = mask
    elif c["mask"] == "bool-2d":
        mask = rng.random((c["sq"], c["skv"])) < 0.7
        mask[:, 0] = True
        inputs["mask"] = mask
    return inputs


def tiled_ir_outputs(ir: str, args: tuple[np.ndarray, ...]) -> np.ndarray:
    interpreter = Interpreter(SofaParser(sofa_context(), ir).parse_module())
    register_all(interpreter)
    (result,) = interpreter.call_op("main", args)
    return np.asarray(result)


@settings(
    max_examples=COMPILED_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(layers())
def test_compiled_layer_matches_numpy_and_its_tiled_ir(c: dict) -> None:
    compiled = compile_model(attention_layer(c), target=targets()[c["target"]], keep=c["keep"], tile=c["tile"])
    inputs = layer_inputs(c)
    outputs, _ = compiled.run(inputs)
    (actual,) = outputs.values()
    assert actual.shape == (c["batch"], c["heads"], c["sq"], c["vdepth"])
    assert np.isfinite(actual).all()
    # Every layer reaches the accelerator (a run-time boolean mask too: its tables are built at launch).
    assert compiled.programs

    args = tuple(inputs[name] for name in compiled.input_names())
    np.testing.assert_array_equal(actual, tiled_ir_outputs(compiled.ir("tiled"), args))
    if c["keep"] < 1.0:
        return
    mask = inputs.get("mask")
    bias = numerics.mask_to_bias(mask, c["mask"] == "causal", c["sq"], c["skv"])
    expected = reference_attention(inputs["q"], inputs["k"], inputs["v"], bias, 1.0 / math.sqrt(c["depth"]))
    assert_close_to_fp32_reference(actual, expected)


@pytest.mark.parametrize(
    ("length", "tile", "target"),
    [(1100, 128, "sofa-28nm"), (700, 64, "sofa-small"), (900, 128, "sofa-small")],
    ids=["Bc=lanes", "Bc=lanes-small", "Bc=2*lanes"],
)
def test_causal_skipping_for_tiles_as_large_as_the_lanes(length: int, tile: int, target: str):
    """Bc >= lanes: the skip pattern repeats every 2 Bc / lanes query tiles; every query tile runs
    exactly the KV tiles that hold a visible key, and the result is still the tiled IR's."""
    layer = dict(batch=1, kv_heads=1, heads=2, sq=length, skv=length, depth=16, vdepth=8, mask="causal", seed=4)
    config = targets()[target]
    compiled = compile_model(attention_layer(layer), target=config, keep=0.5, tile=tile)
    inputs = layer_inputs(layer)
    outputs, report = compiled.run(inputs)
    expected = tiled_ir_outputs(compiled.ir("tiled"), tuple(inputs[name] for name in compiled.input_names()))
    np.testing.assert_array_equal(outputs["y"], expected)
    lanes = int(config.target["lanes"])
    query_tiles, kv_tiles = math.ceil(length / lanes), math.ceil(length / tile)
    steps = sum(min(math.ceil((qt + 1) * lanes / tile), kv_tiles) for qt in range(query_tiles))
    assert steps < query_tiles * kv_tiles
    # Per head: the tile steps plus sufa.init and sufa.norm per query tile.
    assert report.total.units["sufa"].instructions == layer["heads"] * (steps + 2 * query_tiles)
