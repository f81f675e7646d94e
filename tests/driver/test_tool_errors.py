"""Errors checked early: bad options and unwritable outputs fail before any work, naming the user's path."""

from pathlib import Path

import numpy as np
import pytest

from sofa_compiler.accuracy import METRICS_LEGEND, OutputAccuracy
from sofa_compiler.cli import exit_statuses
from sofa_compiler.interpreters.host import onnxruntime_session
from sofa_compiler.tools import sofa_as, sofa_compile, sofa_opt, sofa_run, sofa_sim

ROOT = Path(__file__).parent.parent.parent
SDPA = str(ROOT / "tests" / "fixtures" / "torch_sdpa.onnx")
ASM = "halt\n"


def error_of(main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "[Errno" not in err
    return err


@pytest.mark.parametrize("tile", ["7", "1", "48"])
def test_tile_must_be_a_power_of_two(tile: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(sofa_compile.main, [SDPA, "--tile", tile, "--emit", "isa"], capsys)
    assert (
        err
        == f"sofa-compile: error: --tile must be a power of two of at least 2 (SADS sorts tiles bitonically), got {tile}\n"
    )


def test_the_pipeline_is_checked_before_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(sofa_compile.main, [SDPA, "--pipeline", "foo"], capsys)
    assert err == "sofa-compile: error: unknown pipeline 'foo' (choose from coordinated, separate)\n"


@pytest.mark.parametrize(
    ("tool", "argv"),
    [
        ("sofa-compile", [SDPA, "-o", "{missing}/model.sofa"]),
        ("sofa-run", [SDPA, "--output", "{missing}/out.npz"]),
        ("sofa-sim", ["{program}", "--trace", "{missing}/trace.json"]),
        ("sofa-sim", ["{program}", "--output", "{missing}/out.npz"]),
        ("sofa-as", ["{source}", "-o", "{missing}/prog.sofa"]),
    ],
)
def test_an_output_in_a_missing_directory_fails_first_naming_it(
    tool: str, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "prog.s"
    source.write_text(ASM)
    program = tmp_path / "prog.sofa"
    assert sofa_as.main([str(source), "-o", str(program)]) == 0
    missing = tmp_path / "no-such-dir"
    paths = {"missing": str(missing), "program": str(program), "source": str(source)}
    mains = {"sofa-compile": sofa_compile.main, "sofa-run": sofa_run.main, "sofa-sim": sofa_sim.main}
    err = error_of(mains.get(tool, sofa_as.main), [arg.format(**paths) for arg in argv], capsys)
    assert err.startswith(f"{tool}: error: {missing}/")
    assert f"No such file or directory (no directory '{missing}')" in err


def test_an_output_that_is_a_directory_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(sofa_compile.main, [SDPA, "-o", str(tmp_path)], capsys)
    assert err == f"sofa-compile: error: {tmp_path}: is a directory, not a file\n"


@pytest.mark.parametrize("main", [sofa_as.main, sofa_opt.main])
def test_a_missing_input_is_file_colon_reason(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.s"
    argv = [str(missing), "-o", str(tmp_path / "x.sofa")] if main is sofa_as.main else [str(missing)]
    err = error_of(main, argv, capsys)
    assert err.endswith(f": error: {missing}: No such file or directory\n")


def test_a_numpy_overflow_is_one_warning_line_without_internal_paths(capsys: pytest.CaptureFixture[str]) -> None:
    @exit_statuses("sofa-x")
    def main() -> int:
        for _ in range(3):  # once per tile, say: printed once
            np.array([60000.0, 70000.0], np.float32).astype(np.float16)
        return 0

    assert main() == 0
    err = capsys.readouterr().err
    assert err == ("sofa-x: warning: numpy: overflow encountered in cast (a value left its number format's range)\n")


def test_onnxruntime_sessions_log_errors_only() -> None:
    session = onnxruntime_session(SDPA)
    assert session.get_session_options().log_severity_level == 3


def test_accuracy_defines_its_metrics() -> None:
    reference = np.array([[1.0, -2.0], [0.5, 4.0]])
    figures = OutputAccuracy.of(reference + np.array([[0.0, 0.0], [0.0, 1.0]]), reference)
    assert figures.relative_error == pytest.approx(0.25)  # max|d| / max|ref| = 1 / 4
    assert figures.cosine == pytest.approx(
        float(
            np.dot([1, -2, 0.5, 5], [1, -2, 0.5, 4])
            / (np.linalg.norm([1, -2, 0.5, 5]) * np.linalg.norm([1, -2, 0.5, 4]))
        )
    )
    assert figures.line("y", "onnxruntime") == (
        f"output y: max relative error vs onnxruntime 2.500e-01, cosine similarity {figures.cosine:.6f}"
    )
    assert "max|out - ref| / max|ref|" in METRICS_LEGEND


def test_sofa_run_prints_cosine_and_the_metric_definition(capsys: pytest.CaptureFixture[str]) -> None:
    assert sofa_run.main([SDPA, "--keep", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "max relative error vs onnxruntime" in out
    assert "cosine similarity" in out
    assert METRICS_LEGEND in out
