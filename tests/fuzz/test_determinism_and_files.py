"""Determinism run to run, and output files that are never left half-written.

Determinism is checked across separate processes with different hash seeds
(set iteration order and object addresses change between them), not only
within one process: the bundle bytes, every IR dump and the simulator's JSON
report must be identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fuzzlib import FIXTURES, call_main

from sofa_compiler import bundle
from sofa_compiler.cli import INTERRUPTED_STATUS
from sofa_compiler.tools import sofa_compile, sofa_sim

BIN = Path(sys.executable).parent


def tool(name: str, *args: str | Path, hash_seed: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    command = [str(BIN / name), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def compile_and_simulate(workdir: Path, hash_seed: int) -> tuple[bytes, dict[str, str], str]:
    workdir.mkdir()
    bundle, dumps = workdir / "model.sofa", workdir / "dumps"
    model = FIXTURES / "torch_bert.onnx"
    compiled = tool("sofa-compile", model, "--keep", "0.5", "-o", bundle, "--dump-ir-dir", dumps, hash_seed=hash_seed)
    assert compiled.returncode == 0, compiled.stderr
    report = tool("sofa-sim", bundle, "--random-inputs", "7", "--json", hash_seed=hash_seed)
    assert report.returncode == 0, report.stderr
    return bundle.read_bytes(), {p.name: p.read_text() for p in sorted(dumps.iterdir())}, report.stdout


def test_compile_and_simulate_are_identical_across_processes(tmp_path: Path) -> None:
    first = compile_and_simulate(tmp_path / "a", hash_seed=1)
    second = compile_and_simulate(tmp_path / "b", hash_seed=2)
    assert first[0] == second[0], "bundle bytes differ"
    assert list(first[1]) == list(second[1])
    for name in first[1]:
        assert first[1][name] == second[1][name], f"IR dump {name} differs"
    assert first[2] == second[2], "simulator reports differ"
    assert '"total_cycles"' in first[2]


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_interrupted_compile_leaves_only_whole_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after two IR dumps: exit 130, one message, no output, no temporary files, whole dumps."""
    written: list[int] = []
    original = sofa_compile.dump_stage

    def dump_then_interrupt(directory: Path, stage: sofa_compile.Stage, elide_larger_than: int | None) -> None:
        if len(written) == 2:
            raise KeyboardInterrupt
        original(directory, stage, elide_larger_than)
        written.append(stage.record.applied)

    monkeypatch.setattr(sofa_compile, "dump_stage", dump_then_interrupt)
    output, dumps = tmp_path / "model.sofa", tmp_path / "dumps"
    argv = [str(FIXTURES / "torch_gpt2.onnx"), "-o", str(output), "--dump-ir-dir", str(dumps)]
    outcome = call_main(sofa_compile.main, argv)
    assert outcome.rc == INTERRUPTED_STATUS
    assert outcome.stderr.strip() == "sofa-compile: interrupted"
    assert listing(tmp_path) == ["dumps"]
    assert listing(dumps) == ["00-import.mlir", "01-sofa-bind-target.mlir"]
    for dump in dumps.iterdir():
        assert dump.read_text().rstrip().endswith("#-}"), f"{dump.name} is cut short (no reproducer record)"


def test_interrupted_output_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt in the middle of writing the bundle leaves the previous bundle as it was."""
    output = tmp_path / "model.sofa"
    output.write_bytes(b"previous bundle")

    def interrupt(model: object) -> bytes:
        raise KeyboardInterrupt

    # sofa-compile imports bundle_bytes when it runs (so that --help stays fast): patch it at its source.
    monkeypatch.setattr(bundle, "bundle_bytes", interrupt)
    outcome = call_main(sofa_compile.main, [str(FIXTURES / "torch_sdpa.onnx"), "-o", str(output)])
    assert outcome.rc == INTERRUPTED_STATUS
    assert output.read_bytes() == b"previous bundle"
    assert listing(tmp_path) == ["model.sofa"]


def test_atomic_write_removes_its_temporary_on_interrupt(tmp_path: Path) -> None:
    from sofa_compiler.files import atomic_write

    target = tmp_path / "out.npz"

    def write_half(stream) -> None:  # type: ignore[no-untyped-def]
        stream.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, write_half)
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.onnx", "-o", "{tmp}/model.sofa"], "missing.onnx"),
        ([str(FIXTURES / "torch_sdpa.onnx"), "-o", "{tmp}/no/such/dir/model.sofa"], "No such file or directory"),
    ],
    ids=["missing-input", "unwritable-output"],
)
def test_compile_file_errors_leave_nothing(tmp_path: Path, argv: list[str], message: str) -> None:
    outcome = call_main(sofa_compile.main, [arg.format(tmp=tmp_path) for arg in argv])
    assert outcome.rc == 1
    assert message in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert listing(tmp_path) == []


def test_sim_unwritable_output_is_a_clean_error(tmp_path: Path) -> None:
    from fuzzlib import small_attention

    program = tmp_path / "p.sofa"
    program.write_bytes(small_attention()[1].to_bytes())
    before = listing(tmp_path)
    outcome = call_main(
        sofa_sim.main, [str(program), "--random-inputs", "0", "--output", str(tmp_path / "x" / "o.npz")]
    )
    assert outcome.rc != 0
    assert f"{tmp_path / 'x' / 'o.npz'}: No such file or directory" in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert listing(tmp_path) == before


def test_same_inputs_give_identical_reports_in_process() -> None:
    from sofa_compiler.driver import compile_model
    from sofa_compiler.sim.inputs import random_model_inputs

    model = compile_model(FIXTURES / "torch_sdpa_causal.onnx", keep=0.25)
    inputs = random_model_inputs(model, seed=5)
    first_out, first = model.run(inputs)
    second_out, second = model.run(inputs)
    for name in first_out:
        np.testing.assert_array_equal(first_out[name], second_out[name])
    assert first.total.to_json() == second.total.to_json()
