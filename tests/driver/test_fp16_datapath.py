"""The paper's 16-bit datapath: Q, K, V and O are fp16 (`numerics.DATAPATH`) in DRAM and SRAM.

Relations rather than pinned figures: the element width is what moves the
byte counts and what lets the cost model pick a larger KV tile at d = 128.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dialects import numerics
from dialects.sofa import TargetAttr
from passes.kernel_interface import KernelInterface, KernelKind, Symbol
from passes.tile_plan import AttentionShape, PlanError, choose_tile, plan_sram
from sofa_compiler.driver import compile_model
from sofa_compiler.runtime import stage_attention_inputs, unstage_attention_output
from sofa_compiler.sim.config import load_config
from sofa_compiler.tools import sofa_run
from sofa_compiler.workloads import attention_model

REPO = Path(__file__).resolve().parents[2]
LLAMA = REPO / "examples" / "llama_attention.onnx"
LLAMA_LAYER = AttentionShape(1, 1, 1, 2048, 2048, 128, 128, 0.25, True)
"""One head of a Llama-7B layer (d = 128, causal) at S = 2048, keep 0.25."""


def default_target() -> TargetAttr:
    return TargetAttr(load_config().as_target_dict())


@pytest.mark.parametrize("kind", list(KernelKind))
def test_q_k_v_and_o_are_the_datapath_element(kind: KernelKind):
    dtypes = {spec.name: spec.dtype for spec in KernelInterface(kind).symbols()}
    for symbol in (Symbol.Q, Symbol.K, Symbol.V, Symbol.OUT):
        assert dtypes[symbol] == numerics.DATAPATH.name == "f16"


def test_llama_layer_is_no_longer_held_to_bc_32_by_sram():
    target = default_target()
    tile, costs = choose_tile(target, LLAMA_LAYER)
    assert tile > 32  # fp32 K/V rows fitted only Bc <= 32 at d = 128
    assert 64 in costs  # Bc = 64 fits the paper's SRAM now
    plan_sram(target, LLAMA_LAYER, 64)
    with pytest.raises(PlanError):  # and Bc = 128 still does not: the plan is honest about SRAM
        plan_sram(target, LLAMA_LAYER, 128)


def test_kv_rows_take_half_the_sram_of_fp32_rows():
    plan = plan_sram(default_target(), LLAMA_LAYER, 32)
    k_region = next(region for key, region in plan.regions.items() if key.kind.value == "k")
    assert k_region.size == 32 * 128 * numerics.DATAPATH.nbytes == 32 * 128 * 2


def test_host_stages_fp16_saturating_and_keeps_non_finite_values():
    model = compile_model(attention_model(1, 16, 8, False), keep=1.0)
    (program,) = model.programs.values()
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, 16, 8)).astype(np.float32) for _ in range(3))
    q[0, 0, 0, :4] = [1e6, -1e6, np.inf, np.nan]
    staged = stage_attention_inputs(program, q, k, v)
    for name in ("q", "k", "v"):
        assert staged[name].dtype == np.float16
    row = staged["q"][0]
    assert row[0] == numerics.FP16_MAX  # finite values saturate
    assert row[1] == -numerics.FP16_MAX
    assert row[2] == np.inf  # IEEE values are kept
    assert np.isnan(row[3])
    np.testing.assert_array_equal(staged["k"][:16], k[0, 0].astype(np.float16))


def test_bf16_inputs_round_once_to_fp16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    model = compile_model(attention_model(1, 16, 8, False), keep=1.0)
    (program,) = model.programs.values()
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 1, 16, 8)).astype(ml_dtypes.bfloat16) for _ in range(3))
    staged = stage_attention_inputs(program, q, k, v)
    # bf16's 8-bit mantissa fits fp16's 11: values in fp16's normal range are unchanged.
    np.testing.assert_array_equal(staged["v"][:16].astype(np.float32), v[0, 0].astype(np.float32))


def test_output_is_fp16_widened_to_fp32():
    model = compile_model(attention_model(1, 16, 8, False), keep=1.0)
    (program,) = model.programs.values()
    o16 = np.arange(program.symbol("o").shape[0] * 8, dtype=np.float16).reshape(-1, 8) / 7
    out = unstage_attention_output(program, o16, (1, 1, 16, 8))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0], o16[:16].astype(np.float32))


def test_sofa_run_reports_the_tiling_it_ran(capsys):
    assert sofa_run.main([str(LLAMA), "--keep", "0.25", "--tile", "32", "--json", "--no-reference"]) == 0
    document = json.loads(capsys.readouterr().out)
    tiling = document["kernels"][0]["tiling"]
    assert tiling["bc"] == 32
    assert tiling["tc"] * tiling["bc"] >= 512 > (tiling["tc"] - 1) * tiling["bc"]  # Tc = ceil(S / Bc)
    assert tiling["n"] == tiling["tc"]  # SADS sorts one sub-segment per KV tile
    assert tiling["m"] == 8  # ceil(0.25 * 32)
