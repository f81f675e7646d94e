"""sofa-dse's model mode: golden kernel calls equal the simulator's, the allocation, the loss, CLI errors."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import onnx
import pytest

from sofa_compiler.driver import compile_model
from sofa_compiler.dse.model import (
    GoldenRunner,
    KernelSpec,
    Selection,
    allocate,
    causal_lm_perplexity,
    kernel_spec,
    layer_errors,
)
from sofa_compiler.dse.problem import DseError
from sofa_compiler.isa.encoding import Instruction
from sofa_compiler.tools.sofa_dse import main as dse_main
from sofa_compiler.tuning import load_tuning
from sofa_compiler.workloads import attention_model
from tests.fp16_tolerance import FP16_MODEL_RTOL

SEQ, DEPTH, HEADS = 128, 32, 2


def attention_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    return {name: (2.0 * rng.standard_normal(shape)).astype(np.float32) for name, shape in shapes.items()}


def compiled(model: onnx.ModelProto, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_model(model, **options)


@pytest.fixture(scope="module")
def causal_model() -> onnx.ModelProto:
    return attention_model(HEADS, SEQ, DEPTH, True)


@pytest.mark.parametrize(("tile", "keep"), [(16, 0.25), (32, 0.1), (64, 0.5), (32, 1.0)])
def test_golden_kernel_calls_equal_the_simulator(causal_model, tile: int, keep: float) -> None:
    inputs = attention_inputs(causal_model)
    simulated, _ = compiled(causal_model, keep=keep, tile=tile).run(inputs)
    dense = compiled(causal_model, keep=1.0)
    runner = GoldenRunner(dense.programs, dense.config, selections=[Selection(tile, keep)], capture=True)
    golden, _ = dense.run(inputs, runner=runner)
    assert np.array_equal(next(iter(golden.values())), next(iter(simulated.values())))
    (call,) = runner.captured
    assert call.spec == KernelSpec(causal=True, scale=pytest.approx(1 / math.sqrt(DEPTH)))
    assert call.q.shape == (1, HEADS, SEQ, DEPTH)


def test_kernel_spec_needs_the_selection_and_sufa_instructions() -> None:
    with pytest.raises(DseError, match="causal flag and scale"):
        kernel_spec([Instruction("halt")])


def test_layer_errors_fall_with_keep_and_vanish_at_keep_one(causal_model) -> None:
    dense = compiled(causal_model, keep=1.0)
    runner = GoldenRunner(dense.programs, dense.config, capture=True)
    dense.run(attention_inputs(causal_model), runner=runner)
    (errors,) = layer_errors(runner.captured, [[(32, 0.1), (32, 0.25), (32, 0.5), (32, 1.0)]], row_step=4)
    assert errors[(32, 1.0)] < FP16_MODEL_RTOL  # keep 1.0: the 16-bit datapath's rounding only (was 1e-6 in fp32)
    assert errors[(32, 0.1)] > errors[(32, 0.25)] > errors[(32, 0.5)] > errors[(32, 1.0)]


def test_allocation_meets_the_budget_and_gives_keep_where_error_falls_most() -> None:
    flat = {(32, 0.25): 0.10, (32, 0.5): 0.09, (32, 1.0): 0.0}
    steep = {(32, 0.25): 0.90, (32, 0.5): 0.20, (32, 1.0): 0.0}
    choice = allocate([flat, steep, flat], mean_keep=0.5)
    assert sum(keep for _, keep in choice) / 3 <= 0.5 + 1e-12
    assert choice[1][1] > choice[0][1]
    assert allocate([flat], mean_keep=1.0) == [(32, 1.0)]
    with pytest.raises(DseError, match="below the smallest keep"):
        allocate([flat], mean_keep=0.1)


def test_perplexity_is_exp_of_the_next_token_cross_entropy() -> None:
    assert causal_lm_perplexity(np.zeros((1, 5, 10)), np.array([[3, 1, 4, 1, 5]])) == pytest.approx(10.0)
    with pytest.raises(DseError, match="causal LM"):
        causal_lm_perplexity(np.zeros((1, 5, 10)), np.array([[3, 1, 4]]))


def test_cli_tunes_an_attention_model_and_writes_a_tuning_file(tmp_path, causal_model, capsys) -> None:
    path, calib = tmp_path / "attention.onnx", tmp_path / "calib.npz"
    onnx.save(causal_model, path)
    np.savez(calib, **attention_inputs(causal_model))
    out = tmp_path / "out"
    argv = [str(path), "--inputs", str(calib), "--tiles", "32,64", "--keeps", "0.25,0.5", "--mean-keep", "0.25,0.5"]
    assert dse_main([*argv, "--row-step", "4", "-o", str(out), "--quiet"]) == 0
    tuning = load_tuning(out / "best.json")
    assert tuning.layers[0].keep == 0.25
    assert tuning.layers[0].tile in (32, 64)
    assert tuning == load_tuning(out / "best-keep0.25.json")
    assert load_tuning(out / "best-keep0.5.json").layers[0].keep == 0.5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objective"] == "attention"
    assert [b["mean_keep"] for b in summary["budgets"]] == [0.25, 0.5]
    assert "mean keep 0.25: 0:" in capsys.readouterr().out


def test_cli_errors_are_clear(tmp_path, causal_model, capsys) -> None:
    path, calib = tmp_path / "attention.onnx", tmp_path / "calib.npz"
    onnx.save(causal_model, path)
    np.savez(calib, nothing=np.zeros(3))
    out = str(tmp_path / "out")
    assert dse_main([str(path), "-o", out]) == 1
    assert "needs --inputs" in capsys.readouterr().err
    assert dse_main([str(path), "--inputs", str(calib), "-o", out]) == 1
    assert "no array for model input" in capsys.readouterr().err
    np.savez(calib, **attention_inputs(causal_model))
    assert dse_main([str(path), "--inputs", str(calib), "--objective", "perplexity", "-o", out]) == 1
    assert "token ids" in capsys.readouterr().err
    assert dse_main([str(path), "--workload", "bert-base-512", "-o", out]) == 1
    assert "not several" in capsys.readouterr().err
    assert dse_main([str(path), "--inputs", str(calib), "--mean-keep", "0.25,2", "-o", out]) == 1
    assert "--mean-keep must be keep ratios" in capsys.readouterr().err
    assert dse_main([str(path), "--inputs", str(calib), "--tiles", "4096", "-o", out]) == 1
    assert "tiles that fit at keep 0.1: 16, 32, 64" in capsys.readouterr().err
