"""`sofa-generate` on a small random-weight Llama: the JSON report, the table, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from benchmarks.smollm2.cached_graphs import LlamaShape, build, onnxruntime_greedy, random_weights
from sofa_compiler.tools.sofa_generate import main

SHAPE = LlamaShape(hidden=32, layers=2, heads=4, kv_heads=2, head_dim=8, intermediate=64, vocab=50)
PROMPT = "3,1,4,1,5,9,2,6"


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("graphs")
    weights = random_weights(SHAPE, seed=1)
    paths = folder / "prefill.onnx", folder / "decode.onnx"
    for decode, path in zip((False, True), paths, strict=True):
        onnx.save(build(weights, SHAPE, prompt=8, capacity=16, samples=2, decode=decode), str(path))
    return paths


def test_json_report_has_every_step_and_greedy_tokens(graphs, capsys) -> None:
    prefill, decode = graphs
    assert main([str(prefill), str(decode), "--prompt", PROMPT, "--tokens", "5", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    expected = onnxruntime_greedy(
        onnx.load(str(prefill)), onnx.load(str(decode)), np.array([3, 1, 4, 1, 5, 9, 2, 6]), 5
    )
    assert document["tokens"] == expected.tolist()
    steps = document["steps"]
    assert [step["step"] for step in steps] == [0, 1, 2, 3, 4]
    assert [step["cache_length"] for step in steps] == [8, 9, 10, 11, 12]
    assert document["total"]["cycles"] == sum(step["cycles"] for step in steps) > 0
    assert document["total"]["energy_pj"] == pytest.approx(sum(step["energy_pj"] for step in steps))
    for step in steps:
        assert step["latency_us"] == pytest.approx(step["cycles"] / document["clock_mhz"])


def test_decode_keep_runs_the_sparse_decode_kernel(graphs, capsys) -> None:
    prefill, decode = graphs
    args = [str(prefill), str(decode), "--prompt", PROMPT, "--tokens", "4", "--decode-keep", "0.25"]
    assert main([*args, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["decode_keep"], document["sparse_decode_layers"]) == (0.25, SHAPE.layers)
    # A 16-row cache is less than one 64-key tile, whose 16 kept keys are then all of them: dense tokens.
    expected = onnxruntime_greedy(
        onnx.load(str(prefill)), onnx.load(str(decode)), np.array([3, 1, 4, 1, 5, 9, 2, 6]), 4
    )
    assert document["tokens"] == expected.tolist()
    assert main(args) == 0
    assert "sparse decode kernel at keep 0.25 on 2 layers (each query keeps 16 of every 64" in capsys.readouterr().out


def test_table_and_seeded_samples(graphs, capsys) -> None:
    prefill, decode = graphs
    args = [str(prefill), str(decode), "--prompt", PROMPT, "--tokens", "3", "--temperature", "1.5", "--seed", "4"]
    assert main(args) == 0
    first = capsys.readouterr().out
    for text in ("prefill", "total", "sample 1:"):
        assert text in first
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == first.splitlines()[-2:]  # the same seed, the same tokens


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prompt", "1,2,3", "--tokens", "2"], "the prompt must be 8 integer token ids"),
        (["--prompt", "a,b"], "neither comma-separated token ids nor a .npy/.npz file"),
        (["--prompt", "/nonexistent/p.npy"], "cannot read /nonexistent/p.npy"),
        (["--prompt", PROMPT, "--tokens", "12"], "12 new tokens do not fit"),
        (["--prompt", PROMPT, "--tokens", "2", "--temperature", "-1"], "temperature must be a finite number >= 0"),
        (["--prompt", PROMPT, "--tokens", "2", "--keep", "0"], "keep"),
    ],
)
def test_bad_input_is_one_clear_error(graphs, capsys, extra: list[str], message: str) -> None:
    prefill, decode = graphs
    assert main([str(prefill), str(decode), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sofa-generate: error:")
    assert message in err
    assert "Traceback" not in err


def test_swapped_graphs_are_refused(graphs, capsys) -> None:
    prefill, decode = graphs
    assert main([str(decode), str(prefill), "--prompt", PROMPT, "--tokens", "2"]) == 1
    assert "sofa-generate: error:" in capsys.readouterr().err


def run_json(graphs, capsys, *options: str) -> dict:
    prefill, decode = graphs
    assert main([str(prefill), str(decode), "--prompt", PROMPT, "--tokens", "4", "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)


def test_samples_decode_bifurcated_over_the_prompts_cache_with_the_same_tokens(graphs, capsys) -> None:
    runs = {choice: run_json(graphs, capsys, "--decode", choice) for choice in ("prefill", "standard", "bifurcated")}
    assert runs["prefill"]["decode"] == {"enabled": False, "lowering": "auto", "prefix": 8, "choices": []}
    assert runs["bifurcated"]["decode"]["prefix"] == 8  # the prompt's cache is the shared prefix
    assert runs["prefill"]["tokens"] == runs["standard"]["tokens"] == runs["bifurcated"]["tokens"]

    def decode_bytes(run: dict) -> int:
        return sum(step["dram_read_bytes"] for step in run["steps"][1:])

    assert decode_bytes(runs["bifurcated"]) < decode_bytes(runs["standard"]) < decode_bytes(runs["prefill"])


def test_auto_prints_the_cost_models_choice(graphs, capsys) -> None:
    prefill, decode = graphs
    assert main([str(prefill), str(decode), "--prompt", PROMPT, "--tokens", "2"]) == 0
    out = capsys.readouterr().out
    assert "decode steps: decode kernel, auto, shared prefix 8 rows; cost model chose" in out
    assert "standard" in out
    assert "bifurcated" in out
