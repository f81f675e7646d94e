"""End to end: ONNX -> sofa-compile -> simulator, checked against onnxruntime and the IR semantics."""

from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import DiagnosticException

from passes.coordinated_tiling import CoordinatedTilingPass, SeparateStageTilingPass
from sofa_compiler.accuracy import relative_error
from sofa_compiler.bundle import bundle_bytes, load_bundle
from sofa_compiler.context import sofa_context
from sofa_compiler.driver import CompileError, compile_model
from sofa_compiler.parser import SofaParser
from sofa_compiler.sim.inputs import random_model_inputs
from tests.fp16_tolerance import FP16_MODEL_RTOL

FIXTURES = Path(__file__).parent.parent / "fixtures"
# Fixtures the importer rejects on purpose.
SKIPPED = {
    "bad_dynamic",
    "bad_int_attention",
    "bad_opset12",
    "bad_unsupported_ops",
}
RUNNABLE = sorted(p for p in FIXTURES.glob("*.onnx") if p.stem not in SKIPPED and p.stem != "attn24_short_mask")


def reference(path: Path, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: p.stem)
def test_keep_one_matches_onnxruntime(path: Path):
    model = compile_model(path, keep=1.0)
    inputs = random_model_inputs(model, seed=0)
    outputs, _ = model.run(inputs)
    for actual, expected in zip(outputs.values(), reference(path, inputs), strict=True):
        assert relative_error(actual, expected) < FP16_MODEL_RTOL


def test_accelerated_fixtures_really_use_the_accelerator():
    # A check that the comparison above is not all host fallback.
    used = [p.stem for p in RUNNABLE if compile_model(p).programs]
    assert {"torch_gpt2", "torch_sdpa", "torch_sdpa_causal", "torch_mha", "attn23_gqa_3d_causal"} <= set(used)
    # BERT's key-padding mask is folded into Q and K, so it runs on the accelerator too.
    assert "torch_bert" in used


@pytest.mark.parametrize("keep", [0.5, 0.25])
@pytest.mark.parametrize("fixture", ["torch_sdpa_causal", "torch_gpt2"])
def test_sparse_kernel_equals_tiled_ir_semantics(keep: float, fixture: str):
    """At keep < 1 the simulator computes exactly what the tiled `sofa` IR says.

    torch_sdpa_causal predicts from K; torch_gpt2 predicts on chip from X and LZ(W_k).
    """
    from xdsl.interpreter import Interpreter

    from sofa_compiler.interpreters import register_all

    path = FIXTURES / f"{fixture}.onnx"
    model = compile_model(path, keep=keep, tile=16)
    inputs = random_model_inputs(model, seed=3)
    outputs, report = model.run(inputs)
    tiled = SofaParser(sofa_context(), model.ir("tiled")).parse_module()
    interpreter = Interpreter(tiled)
    register_all(interpreter)
    args = tuple(inputs[name] for name in model.input_names())
    (expected,) = interpreter.call_op("main", args)
    (actual,) = outputs.values()
    np.testing.assert_array_equal(actual, expected)
    assert report.total is not None
    assert report.total.total_cycles > 0


def test_bundle_round_trip_is_deterministic_and_runs_the_same():
    path = FIXTURES / "torch_gpt2.onnx"
    first = bundle_bytes(compile_model(path, keep=0.5))
    second = bundle_bytes(compile_model(path, keep=0.5))
    assert first == second
    loaded = load_bundle(first)
    original = compile_model(path, keep=0.5)
    inputs = random_model_inputs(original, seed=1)
    expected, expected_report = original.run(inputs)
    actual, actual_report = loaded.run(inputs)
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name])
    assert actual_report.total.to_json() == expected_report.total.to_json()


def test_smaller_sram_changes_the_tiling_and_the_cycles():
    from sofa_compiler.sim.config import load_config

    path = FIXTURES / "torch_sdpa.onnx"
    paper = compile_model(path, keep=0.5)
    small = compile_model(path, keep=0.5, target=load_config(None).with_values({"target.temp_sram": 4096}))
    assert "tile = 16" not in paper.ir("tiled") or "tile = 16" in small.ir("tiled")
    inputs = random_model_inputs(paper, seed=0)
    assert (
        paper.run(inputs)[1].total.sram["temp"].capacity_bytes != small.run(inputs)[1].total.sram["temp"].capacity_bytes
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keep": 0.0}, "--keep must satisfy 0 < keep <= 1"),
        ({"keep": 1.01}, "--keep must satisfy 0 < keep <= 1"),
        ({"tile": 0}, "--tile must be at least 1, got 0"),
        ({"radius": 0.0}, r"--radius must be positive \(or inf\), got 0.0"),
        ({"pipeline": "fused"}, "unknown pipeline 'fused'"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(CompileError, match=message):
        compile_model(FIXTURES / "torch_gpt2.onnx", **options)


def test_missing_and_misshaped_inputs():
    model = compile_model(FIXTURES / "torch_gpt2.onnx")
    with pytest.raises(CompileError, match="missing input 'x'"):
        model.run({})
    with pytest.raises(CompileError, match="input 'x' has shape"):
        model.run({"x": np.zeros((2, 2), np.float32)})


def test_bfloat16_inputs_from_npz_and_unreadable_inputs(tmp_path: Path):
    """.npz keeps bfloat16 as raw 2-byte void: such inputs are read as bf16; an input of no numeric type is an error."""
    shape = [1, 2, 5, 8]
    node = onnx.helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=1)
    values = [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.BFLOAT16, shape) for name in "qkvy"]
    graph = onnx.helper.make_graph([node], "bf16", values[:3], values[3:])
    model = compile_model(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 23)]))
    rng = np.random.default_rng(0)
    inputs = {name: rng.random(shape).astype(ml_dtypes.bfloat16) for name in "qkv"}
    np.savez(tmp_path / "inputs.npz", **inputs)
    loaded = dict(np.load(tmp_path / "inputs.npz"))
    assert loaded["q"].dtype.kind == "V"
    direct, _ = model.run(inputs)
    from_npz, _ = model.run(loaded)
    assert direct["y"].dtype == from_npz["y"].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(direct["y"].view(np.uint16), from_npz["y"].view(np.uint16))
    with pytest.raises(CompileError, match="input 'q' of type <U1 cannot be read as bfloat16"):
        model.run({**inputs, "q": np.full(shape, "a")})


def test_separate_pipeline_matches_onnxruntime_at_keep_one_and_costs_more():
    path = Path(__file__).parent.parent.parent / "examples" / "llama_attention.onnx"
    coordinated = compile_model(path, keep=0.25)
    separate = compile_model(path, keep=0.25, pipeline="separate")
    inputs = random_model_inputs(coordinated, seed=0)
    _, ours = coordinated.run(inputs)
    _, theirs = separate.run(inputs)
    ours_bytes = ours.total.dram_read_bytes + ours.total.dram_write_bytes
    theirs_bytes = theirs.total.dram_read_bytes + theirs.total.dram_write_bytes
    assert ours_bytes < 0.5 * theirs_bytes
    assert ours.total.total_cycles < theirs.total.total_cycles
    exact = compile_model(path, keep=1.0, pipeline="separate")
    outputs, _ = exact.run(inputs)
    (expected,) = reference(path, inputs)
    assert relative_error(outputs["y"], expected) < FP16_MODEL_RTOL


ABLATION = [
    {"pipeline": "separate", "predictor": "mul4"},
    {"pipeline": "separate"},
    {"pipeline": "separate", "selection": "sads"},
    {"pipeline": "separate", "selection": "sads", "attention": "sufa"},
    {"pipeline": "separate", "selection": "sads", "attention": "sufa", "rass": True},
    {"rass": False},
    {"attention": "fa2"},
    {"predictor": "mul4"},
]


@pytest.mark.parametrize("knobs", ABLATION, ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()) or "sofa")
def test_every_ablation_step_computes_its_tiled_ir(knobs):
    """Each feature mix runs on the simulator and gives its own tiled IR's numbers (to fp32 rounding)."""
    from xdsl.interpreter import Interpreter

    from sofa_compiler.interpreters import register_all

    model = compile_model(FIXTURES / "torch_sdpa_causal.onnx", keep=0.5, tile=16, **knobs)
    inputs = random_model_inputs(model, seed=5)
    outputs, report = model.run(inputs)
    tiled = SofaParser(sofa_context(), model.ir("tiled")).parse_module()
    interpreter = Interpreter(tiled)
    register_all(interpreter)
    (expected,) = interpreter.call_op("main", tuple(inputs[name] for name in model.input_names()))
    (actual,) = outputs.values()
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)
    assert len(report.kernels) == 1


def test_impossible_feature_mix_is_refused():
    with pytest.raises(CompileError, match="whole-row selection needs every A-hat tile"):
        compile_model(FIXTURES / "torch_gpt2.onnx", selection="row")
    with pytest.raises(CompileError, match="predictor must be one of dlzs, mul4"):
        compile_model(FIXTURES / "torch_gpt2.onnx", predictor="magic")


def test_causal_kernels_skip_masked_tiles_and_stay_exact():
    """Bc = 32 divides half of the 128 lanes: the kernel loops over a run-time count of KV-tile
    pairs (`loopr`), skipping tiles above the diagonal, and still computes its tiled IR exactly."""
    from xdsl.interpreter import Interpreter

    from sofa_compiler.interpreters import register_all

    path = Path(__file__).parent.parent.parent / "examples" / "llama_attention.onnx"
    skipping = compile_model(path, keep=0.5, tile=32)
    assert "sofa_isa.loopr" in skipping.ir("isa")
    inputs = random_model_inputs(skipping, seed=2)
    outputs, report = skipping.run(inputs)
    tiled = SofaParser(sofa_context(), skipping.ir("tiled")).parse_module()
    interpreter = Interpreter(tiled)
    register_all(interpreter)
    (expected,) = interpreter.call_op("main", tuple(inputs[name] for name in skipping.input_names()))
    np.testing.assert_array_equal(outputs["y"], expected)
    # Per head, query tiles 0..3 need 4, 8, 12, 16 of the 16 KV tiles: 40 steps, plus
    # sufa.init and sufa.norm per query tile; 8 heads. Without skipping it would be 8 * (64 + 8).
    assert report.total.units["sufa"].instructions == 8 * (40 + 2 * 4)
    exact, _ = compile_model(path, keep=1.0, tile=32).run(inputs)
    (onnx_reference,) = reference(path, inputs)
    assert relative_error(exact["y"], onnx_reference) < FP16_MODEL_RTOL


@pytest.mark.parametrize("tiling_pass", [CoordinatedTilingPass, SeparateStageTilingPass])
def test_tiling_passes_take_no_radius_as_no_clip_and_reject_a_nonpositive_one(tiling_pass):
    module = ModuleOp([])
    tiling_pass().apply(Context(), module)  # radius left out: no clip, no error
    with pytest.raises(DiagnosticException, match=r"radius must be positive \(or inf\), got 0.0"):
        tiling_pass(radius=0.0).apply(Context(), module)
