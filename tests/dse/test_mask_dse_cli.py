"""`sofa-dse --mask`: stage one (the analytical model) prunes, stage two (the Optuna search) tunes Bc and keep."""

from __future__ import annotations

import json

import optuna
import pytest

from sofa_compiler.tools.sofa_dse import main as dse_main

ARGV = ["--mask", "mistral", "--seq", "512", "--depth", "32", "--mask-param", "window=128", "--workers", "1"]


def test_the_search_runs_only_stage_ones_survivors(capsys, tmp_path) -> None:
    status = dse_main(
        [*ARGV, "--threads", "--keeps", "1,0.5", "--margin", "1.05", "--trials", "12", "--json", "-o", str(tmp_path)]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "stage one:" in captured.err
    assert "survivors:" in captured.err
    summary = json.loads(captured.out)
    mask = summary["mask"]
    assert mask["workload"] == "mistral-512-window128"
    measured = mask["measured"]
    assert measured
    assert {row["keep"] for row in measured} == {1.0, 0.5}
    for row in measured:
        assert 0.3 < row["model_over_simulator"] < 3
        assert row["format"] == "closed"  # a band: the model prices no mask bytes
    for row in mask["per_keep"]:
        at_keep = [m for m in measured if m["keep"] == row["keep"]]
        assert row["fastest"]["cycles"] == min(m["cycles"] for m in at_keep)
        assert row["model_first"] in at_keep  # the model's first choice is always simulated
    assert mask["model_over_simulator"]["min"] == min(m["model_over_simulator"] for m in measured)
    study = optuna.load_study(study_name=summary["study"], storage=summary["storage"])
    simulated = {(m["tile"], m["keep"]) for m in measured}
    space = study.user_attrs["space"]
    for trial in study.trials:
        pair = (space["tiles"][trial.params["tile0"]], space["keeps"][trial.params["keep"]])
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert "stage one" in trial.user_attrs["pruned"] or "SRAM" in trial.user_attrs["pruned"]
        else:
            assert pair in simulated  # a completed trial ran a survivor
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    best = json.loads((tmp_path / "best.json").read_text())
    best_layer = best["layers"]["0"]
    assert (best_layer["tile"], best_layer["keep"]) in simulated


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mask-param", "width=3"], "mistral has no parameter width (it takes window)"),
        (["--mask-param", "window"], "--mask-param: expected KEY=NUMBER"),
        (["--margin", "0.5"], "margin must be >= 1"),
        (["--workload", "bert-base-512"], "give MODEL.onnx --inputs X.npz, --workload or --mask"),
        (["--mask-param", "window=0"], "window must be >= 1"),
    ],
)
def test_bad_mask_options_are_one_line(argv, message, capsys, tmp_path) -> None:
    status = dse_main([*ARGV, "--threads", *argv, "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 1
    assert message in err
    assert "Traceback" not in err
