"""Decode steps from ONNX graphs on the decode kernel (issue 18): `#sofa.decode` in the IR, the same
numbers as the prefill kernel within the fp16 datapath's tolerance, and the cache streamed once."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from xdsl.utils.exceptions import DiagnosticException

from passes.coordinated_tiling import CoordinatedTilingPass
from passes.lower_to_isa.decode import DecodeStep
from sofa_compiler.decode_cost import choose_lowering
from sofa_compiler.driver import CompiledModel, CompileError, DecodeOptions, compile_model
from sofa_compiler.runtime import KernelError, is_decode_kernel, is_sparse_decode_kernel
from tests.fp16_tolerance import fp16_attention_atol
from tests.frontend.test_kv_cache import BATCH, DEPTH, HEADS, KV_HEADS, attention_model, feeds_for

LENGTHS = np.array([3, 6, 5, 1], np.int64)


ON = DecodeOptions(enabled=True)


def compiled(model: onnx.ModelProto, keep: float = 1.0, decode: DecodeOptions = ON) -> CompiledModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_model(model, keep=keep, decode=decode)


def run(model: CompiledModel, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """The output Y and the kernels' DRAM read bytes."""
    outputs, report = model.run(feeds)
    return outputs["Y"], sum(kernel.dram_read_bytes for _, kernel in report.kernels)


@pytest.mark.parametrize("nonpad", [False, True])
def test_a_decode_step_runs_on_the_decode_kernel_with_the_prefill_kernels_numbers(nonpad: bool) -> None:
    model = attention_model(1, 6, 0, nonpad=nonpad, causal=nonpad)
    feeds = feeds_for(model) | ({"lengths": LENGTHS} if nonpad else {})
    decode, prefill = compiled(model), compiled(model, decode=DecodeOptions(enabled=False))
    assert [is_decode_kernel(p) for p in decode.programs.values()] == [True]
    assert not any(is_decode_kernel(p) for p in prefill.programs.values())
    assert '#sofa.decode<lowering = "standard", prefix = 0, tile = 64>' in decode.ir("tiled")
    assert "sofa.decode" not in prefill.ir("tiled")
    got, decode_bytes = run(decode, feeds)
    expected, prefill_bytes = run(prefill, feeds)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2 * fp16_attention_atol(feeds["V"]))
    assert decode_bytes < prefill_bytes


def test_several_queries_keep_the_prefill_kernel() -> None:
    model = attention_model(3, 64, 0, nonpad=False, causal=False)
    assert not any(is_decode_kernel(p) for p in compiled(model).programs.values())


@pytest.mark.parametrize("nonpad", [False, True])
def test_a_sparse_decode_step_runs_on_the_sparse_decode_kernel(nonpad: bool) -> None:
    model = attention_model(1, 130, 0, nonpad=nonpad, causal=nonpad)
    feeds = feeds_for(model, seed=5) | ({"lengths": np.array([130, 70, 129, 1], np.int64)} if nonpad else {})
    sparse, dense = compiled(model, keep=0.25), compiled(model)
    assert [is_sparse_decode_kernel(p) for p in sparse.programs.values()] == [True]
    assert '#sofa.decode<lowering = "sparse", prefix = 0, tile = 64>' in sparse.ir("tiled")
    got, sparse_bytes = run(sparse, feeds)
    expected, dense_bytes = run(dense, feeds)
    assert np.isfinite(got).all()
    assert sparse_bytes < 0.7 * dense_bytes
    # Every query attends over a subset of its own keys: the output is a convex mix of V's rows.
    assert (np.abs(got) <= np.abs(feeds["V"]).max() * 1.01).all()
    assert not np.array_equal(got, expected)


def test_a_shared_prefix_lowers_bifurcated_with_the_standard_numbers() -> None:
    model = attention_model(1, 70, 0, nonpad=False, causal=False)
    feeds = feeds_for(model, seed=3)
    for name in ("K", "V"):
        feeds[name][1:, :, :64] = feeds[name][0, :, :64]  # every sample shares its first 64 rows
    standard = compiled(model)
    bifurcated = compiled(model, decode=DecodeOptions(True, "bifurcated", 64))
    assert '#sofa.decode<lowering = "bifurcated", prefix = 64, tile = 64>' in bifurcated.ir("tiled")
    got, bifurcated_bytes = run(bifurcated, feeds)
    expected, standard_bytes = run(standard, feeds)
    assert np.array_equal(got, expected)
    assert bifurcated_bytes < standard_bytes


def test_a_prefix_the_samples_do_not_share_is_a_clear_error() -> None:
    model = attention_model(1, 70, 0, nonpad=False, causal=False)
    bifurcated = compiled(model, decode=DecodeOptions(True, "bifurcated", 64))
    with pytest.raises(KernelError, match="the samples' rows differ"):
        bifurcated.run(feeds_for(model))


@pytest.mark.parametrize("prefix", [64, 0])
def test_auto_takes_the_cost_models_choice_per_step(prefix: int) -> None:
    model = attention_model(1, 70, 0, nonpad=False, causal=False)
    auto = compiled(model, decode=DecodeOptions(True, "auto", prefix))
    step = DecodeStep(BATCH, HEADS, KV_HEADS, DEPTH, (70,) * BATCH, prefix, DEPTH, DEPTH**-0.5)
    best = choose_lowering(step, auto.config)
    (choice,) = auto.options["decode"]["choices"]
    assert choice["lowering"] == best.lowering.value
    assert set(choice["predicted"]) == {"standard", "bifurcated"}
    assert f'#sofa.decode<lowering = "{best.lowering.value}", prefix = {prefix}, tile = 64>' in auto.ir("tiled")


@pytest.mark.parametrize(
    ("options", "message"),
    [({"decode_lowering": "cascade"}, "decode_lowering must be one of standard, bifurcated, sparse"),
     ({"decode_tile": 0}, "decode_tile 1 to 65535")],
)  # fmt: skip
def test_bad_decode_options_are_clear_errors(options: dict, message: str) -> None:
    with pytest.raises(DiagnosticException, match=message):
        CoordinatedTilingPass(decode=True, **options).decode_attr()


def test_sparse_decode_with_a_shared_prefix_is_a_clear_error() -> None:
    model = attention_model(1, 70, 0, nonpad=False, causal=False)
    with pytest.raises(CompileError, match="sparse decode reads each sample's cache whole"):
        compiled(model, decode=DecodeOptions(True, "sparse", 64))
