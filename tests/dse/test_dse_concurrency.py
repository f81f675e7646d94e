"""Two sofa-dse runs on one SQLite storage (issue 20, finding 5): the study is created once, and the run that
cannot proceed stops before it touches the study (no "table trials already exists", no failed trials)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading

import optuna
import pytest
from optuna.trial import TrialState
from test_dse import search

from sofa_compiler.dse.cluster import executor
from sofa_compiler.dse.problem import DseError


@pytest.fixture(scope="module")
def one_worker():
    with executor(workers=1) as ex:
        yield ex


def tables(path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return sorted(row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'"))


def test_a_run_while_another_holds_the_storage_leaves_it_as_it_was(one_worker, tmp_path):
    database = tmp_path / "study.db"
    storage = f"sqlite:///{database}"
    search(one_worker, 4, storage, "shared")
    before = [(t.number, t.state, t.params) for t in optuna.load_study(study_name="shared", storage=storage).trials]
    handle = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(handle, fcntl.LOCK_EX)  # another run is going on
    try:
        with pytest.raises(DseError, match="in use by another sofa-dse run"):
            search(one_worker, 8, storage, "shared")
    finally:
        os.close(handle)
    after = [(t.number, t.state, t.params) for t in optuna.load_study(study_name="shared", storage=storage).trials]
    assert after == before
    assert not any(state == TrialState.FAIL for _, state, _ in after)


def test_two_runs_at_once_on_a_fresh_storage_create_the_study_once(one_worker, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    outcomes: list[object] = []

    def run() -> None:
        try:
            outcomes.append(search(one_worker, 4, storage, "race"))
        except DseError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(outcomes) == 2
    assert all(not isinstance(o, DseError) or "in use by another sofa-dse run" in str(o) for o in outcomes)
    study = optuna.load_study(study_name="race", storage=storage)
    assert len(study.trials) >= 4
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert "trials" in tables(tmp_path / "study.db")


def test_a_storage_file_that_is_not_a_database_is_one_clean_error(one_worker, tmp_path):
    database = tmp_path / "study.db"
    database.write_bytes(b"\x00garbage" * 600)
    with pytest.raises(DseError, match="cannot be used: file is not a database"):
        search(one_worker, 2, f"sqlite:///{database}", "s")
