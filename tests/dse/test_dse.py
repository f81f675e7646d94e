"""sofa-dse: search determinism across Dask worker counts, resume, pruning, tuning files, CLI errors.

Real `LocalCluster`s (processes), small layers (S = 128, d = 32) so the whole file stays well under a minute.
"""

from __future__ import annotations

import argparse
import json

import optuna
import pytest
from optuna.trial import TrialState

from sofa_compiler.driver import CompileError, compile_model
from sofa_compiler.dse.cluster import executor
from sofa_compiler.dse.objective import Weights
from sofa_compiler.dse.plots import sweep_figure
from sofa_compiler.dse.problem import Layer, Problem, synthetic_inputs
from sofa_compiler.dse.search import Evaluator, SearchSpace, global_baseline, run_search
from sofa_compiler.dse.sweep import SweepPoint, run_sweep, sweep_key
from sofa_compiler.sim.config import load_config
from sofa_compiler.tools.sofa_dse import main as dse_main
from sofa_compiler.tools.sofa_dse import warn_uncovered_initial_design
from sofa_compiler.tuning import TuningError, parse_tuning
from sofa_compiler.workloads import attention_model

LAYER = Layer(heads=4, seq=128, depth=32)
SPACE = SearchSpace((16, 32, 64), (0.1, 0.25, 0.5), per_layer_keep=True)
WEIGHTS = Weights(cycles=0.5)


def make_problem(layers: int = 3, config=None) -> Problem:
    config = config or load_config(None)
    inputs = [synthetic_inputs(LAYER, index, 1, seed=0) for index in range(layers)]
    return Problem("test", [LAYER] * layers, config, inputs, simulated_heads=1)


@pytest.fixture(scope="module")
def two_workers():
    with executor(workers=2) as ex:
        yield ex


@pytest.fixture(scope="module")
def one_worker():
    with executor(workers=1) as ex:
        yield ex


def search(
    ex,
    trials: int,
    storage: str | None = None,
    name: str = "s",
    problem: Problem | None = None,
    initial: str = "random",
    weights: Weights = WEIGHTS,
):
    problem = problem or make_problem()
    evaluator = Evaluator(problem, weights, ex)
    return run_search(problem, SPACE, weights, evaluator, trials, storage, name, seed=3, batch=4, initial=initial)


def trial_summary(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state, tuple(sorted(t.params.items())), t.value) for t in study.trials]


def test_two_workers_are_real(two_workers):
    assert two_workers.workers == 2


def test_same_results_on_one_and_two_workers(one_worker, two_workers):
    a = search(one_worker, 8)
    b = search(two_workers, 8)
    assert trial_summary(a.study) == trial_summary(b.study)
    assert a.tuning is not None
    assert b.tuning is not None
    assert a.tuning.to_dict() == b.tuning.to_dict()


@pytest.mark.parametrize("initial", ["random", "global"])
def test_interrupted_search_resumes_from_storage(two_workers, tmp_path, initial):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = search(two_workers, 4, storage, "resume", initial=initial)
    assert len(first.study.trials) == 4
    # An interrupted run leaves a trial asked but never told: resume marks it failed and goes on.
    study = optuna.load_study(study_name="resume", storage=storage)
    study.ask()
    if initial == "global":
        study.enqueue_trial(first.study.trials[0].params)  # as if cut off while queueing initial samples
    resumed = search(two_workers, 8, storage, "resume", initial=initial)
    assert resumed.new_trials == 4
    states = [t.state for t in resumed.study.trials]
    assert states.count(TrialState.FAIL) == (2 if initial == "global" else 1)
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == 8
    # Re-seeding per batch makes the resumed study replay an uninterrupted one.
    whole = search(two_workers, 8, f"sqlite:///{tmp_path / 'whole.db'}", "resume", initial=initial)
    finished = [row for row in trial_summary(resumed.study) if row[1] != TrialState.FAIL]
    expected = trial_summary(whole.study)
    assert [row[2:] for row in finished] == [row[2:] for row in expected]
    # A different problem under the same name is refused.
    with pytest.raises(Exception, match="different problem"):
        search(two_workers, 9, storage, "resume", make_problem(layers=2))


def test_max_error_is_a_constraint(two_workers):
    limit = 0.3
    result = search(two_workers, 12, weights=Weights(cycles=0.5, max_error=limit), initial="global")
    constraints = [t.user_attrs["constraint"] for t in result.study.trials if t.state == TrialState.COMPLETE]
    assert any(c > 0 for c in constraints)  # some trials violate it, and they are recorded as such
    assert result.best_trial is not None
    assert result.best_trial.user_attrs["error"] <= limit


def test_misfits_are_pruned_with_a_reason(two_workers):
    # Small SRAM: Bc = 64 does not fit at keep 0.5 (the SADS index buffers grow with keep).
    sizes = {"target.token_sram": 57344, "target.weight_sram": 24576, "target.temp_sram": 24576}
    config = load_config(None).with_values(sizes)
    problem = make_problem(2, config)
    assert problem.fit_problem(0, 64, 0.5) is not None
    assert problem.fit_problem(0, 64, 0.1) is None
    result = search(two_workers, 12, problem=problem)
    pruned = [t for t in result.study.trials if t.state == TrialState.PRUNED]
    assert pruned
    assert all("does not fit" in t.user_attrs["pruned"] for t in pruned)


def test_search_beats_or_ties_global_baseline_and_tuning_compiles(two_workers, tmp_path):
    problem = make_problem()
    evaluator = Evaluator(problem, WEIGHTS, two_workers)
    result = run_search(problem, SPACE, WEIGHTS, evaluator, 16, None, "g", seed=0, batch=8)
    _, best_global = global_baseline(evaluator, SPACE)
    assert best_global is not None
    assert best_global.score is not None
    assert result.best_trial is not None
    assert result.best_trial.value <= best_global.score.value + 1e-12  # the global grid is the initial sample
    # The best configuration is a tuning file sofa-compile accepts.
    path = tmp_path / "best.json"
    path.write_text(result.tuning.to_json())
    model = attention_model(1, LAYER.seq, LAYER.depth, False)
    compiled = compile_model(
        model, tuning=json.loads(path.read_text()) | {"layers": {"0": result.tuning.to_dict()["layers"]["0"]}}
    )
    assert compiled.options["tuning"]["layers"]["0"] == result.tuning.to_dict()["layers"]["0"]


def test_sweep_same_on_one_and_two_workers(one_worker, two_workers):
    paths = ["configs/sofa-28nm.toml", "configs/sofa-small.toml"]
    a = run_sweep(one_worker, paths, ["bert-large-384"], keep=0.25)
    b = run_sweep(two_workers, paths, ["bert-large-384"], keep=0.25)
    assert sweep_key(a) == sweep_key(b)
    assert a[0].area_mm2 == pytest.approx(load_config(paths[0]).total_area_mm2())
    assert a[0].gops_per_watt > 0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"layers": {"0": {"keep": 0}}}, "layers.0.keep: must satisfy 0 < keep <= 1"),
        ({"layers": {"0": {"keep": 1.5}}}, "layers.0.keep"),
        ({"layers": {"0": {"tile": 0}}}, "layers.0.tile: must be at least 1, got 0"),
        ({"layers": {"0": {"bc": 64}}}, "layers.0.bc: unknown key"),
        ({"layers": {"first": {"tile": 64}}}, "layers.first: a layer key is an attention-op index"),
        ({"tiles": {}}, "unknown key 'tiles'"),
    ],
)
def test_bad_tuning_documents_name_the_key(document, message):
    with pytest.raises(TuningError, match=message):
        parse_tuning(document)


def test_tuning_names_the_layer_that_does_not_fit():
    model = attention_model(1, 512, 64, False)
    with pytest.raises(Exception, match="tuning layer 0: tile 256 does not fit"):
        compile_model(model, tuning={"defaults": {"keep": 0.25}, "layers": {"0": {"tile": 256}}})
    with pytest.raises(CompileError, match=r"layers\.0\.keep"):
        compile_model(model, tuning={"layers": {"0": {"keep": -1}}})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give MODEL.onnx --inputs X.npz, --workload"),
        (["--workload", "nope"], "unknown workload 'nope'"),
        (["--workload", "bert-base-512", "--keeps", "0.2,x"], "--keeps: cannot read"),
        (["--workload", "bert-base-512", "--keeps", "0,0.5"], "--keeps must lie in (0, 1]"),
        (["--workload", "bert-base-512", "--heads", "99"], "--heads must be between 1 and 12"),
        (["--sweep", "missing.toml"], "missing.toml"),
        (["--workload", "bert-base-512", "--sampler", "grid", "--trials", "1"], "unknown sampler 'grid'"),
    ],
)
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path):
    status = dse_main([*argv, "-o", str(tmp_path), "--workers", "1", "--threads"])
    err = capsys.readouterr().err
    assert status == 1
    assert message in err
    assert "Traceback" not in err


def test_cli_on_an_existing_scheduler(two_workers, tmp_path, capsys):
    address = two_workers.client.scheduler.address
    argv = ["--workload", "bert-base-512", "--layers", "2", "--trials", "4", "--keeps", "0.25,0.5", "--tiles", "32,64"]
    status = dse_main([*argv, "--scheduler", address, "-o", str(tmp_path), "--quiet"])
    assert status == 0, capsys.readouterr().err
    best = json.loads((tmp_path / "best.json").read_text())
    assert set(best["layers"]) == {"0", "1"}
    assert (tmp_path / "pareto.png").stat().st_size > 0
    # Resume the same study to more trials.
    status = dse_main([*argv[:5], "6", *argv[6:], "--scheduler", address, "-o", str(tmp_path), "--quiet"])
    assert status == 0
    study = optuna.load_study(study_name="bert-base-512x2-sofa-28nm", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) >= 6


@pytest.mark.parametrize("flag", ["--trials", "--batch"])
def test_zero_trials_are_rejected_before_anything_is_made(flag, capsys, tmp_path):
    out = tmp_path / "out"
    status = dse_main(["--workload", "bert-base-512", flag, "0", "-o", str(out), "--workers", "1", "--threads"])
    assert status == 1
    assert "--trials and --batch must be at least 1" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(("trials", "warns"), [(4, True), (30, False)])
def test_too_few_trials_warn_that_the_initial_design_is_not_covered(trials, warns, capsys):
    args = argparse.Namespace(initial="global", trials=trials)
    warn_uncovered_initial_design(args, 30)
    err = capsys.readouterr().err
    expected = "sofa-dse: warning: --trials 4 covers only 4 of the 30 initial global (Bc, keep) points"
    assert (expected in err) is warns
    assert not warns or "use --trials 30 or more" in err


def test_sweep_plot_labels_clear_their_ticks_and_the_next_panel():
    """Each panel's y-label sits left of its own tick labels and right of the panel before it."""
    points = [
        SweepPoint(target, target, workload, area, cycles * scale, 0.0, energy * scale, 1200 / scale)
        for target, area, scale in (("a", 4.2, 1.0), ("b", 2.1, 1.7))
        for workload, cycles, energy in (("w1", 2.1e6, 310.0), ("w2", 9.9e6, 1300.0))
    ]
    figure = sweep_figure(points)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axes = figure.axes
    for index, axis in enumerate(axes):
        label = axis.yaxis.label.get_window_extent(renderer)
        ticks = [t.get_window_extent(renderer) for t in axis.get_yticklabels() if t.get_text()]
        assert label.x1 <= min(t.x0 for t in ticks), f"panel {index}: y-label overlaps its tick labels"
        if index:
            assert label.x0 >= axes[index - 1].get_window_extent(renderer).x1, (
                f"panel {index} overlaps panel {index - 1}"
            )
    import matplotlib.pyplot as plt  # after sweep_figure chose the Agg backend

    plt.close(figure)
