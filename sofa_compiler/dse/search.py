"""The Bayesian search: an Optuna study over per-layer KV tiles and keep ratios.

Trials are asked in fixed-size batches, evaluated in parallel, and told in
ask order; the sampler is re-seeded from (seed, trials so far) before each
batch. So the same seed gives the same trials on 1 or N workers, and a
search resumed from its storage continues exactly as an uninterrupted one
would. Configurations that do not fit the target's SRAM are told as
*pruned* (reason in the ``pruned`` user attribute); ``max_error`` is an
Optuna constraint (``set_constraint``; also the ``constraint`` user attribute, feasible when <= 0).
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sofa_compiler.dse.cluster import Executor
from sofa_compiler.dse.objective import Score, Weights, score
from sofa_compiler.dse.problem import DseError, LayerResult, Problem, evaluate_layer
from sofa_compiler.tuning import LayerTuning, Tuning

Key = tuple[int, int | None, float]
"""(layer, tile, keep) of one layer evaluation; tile None = the cost model's choice."""


def default_tiles(seq: int) -> tuple[int, ...]:
    """The paper's grid Tc in {2, 4, ..., 32} as Bc = S / Tc (integral tiles of at least 16)."""
    tiles = {seq // tc for tc in range(2, 33, 2) if seq % tc == 0 and seq // tc >= 16}
    return tuple(sorted(tiles)) or (16,)


def default_keeps() -> tuple[float, ...]:
    """The paper's top-k grid: 5% to 50% in steps of 5%."""
    return tuple(round(0.05 * step, 2) for step in range(1, 11))


@dataclass(frozen=True)
class SearchSpace:
    tiles: tuple[int, ...]
    keeps: tuple[float, ...]
    per_layer_keep: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiles", tuple(sorted(set(self.tiles))))
        object.__setattr__(self, "keeps", tuple(sorted(set(self.keeps))))

    def to_dict(self) -> dict[str, Any]:
        return {"tiles": list(self.tiles), "keeps": list(self.keeps), "per_layer_keep": self.per_layer_keep}

    def suggest(self, trial: optuna.Trial, layers: int) -> tuple[list[int], list[float]]:
        """Parameters are indices into the sorted grids, so the sampler sees their order."""
        tiles = [self.tiles[trial.suggest_int(f"tile{i}", 0, len(self.tiles) - 1)] for i in range(layers)]
        if self.per_layer_keep:
            keeps = [self.keeps[trial.suggest_int(f"keep{i}", 0, len(self.keeps) - 1)] for i in range(layers)]
        else:
            keeps = [self.keeps[trial.suggest_int("keep", 0, len(self.keeps) - 1)]] * layers
        return tiles, keeps

    def values(self, params: dict[str, Any], layers: int) -> tuple[list[int], list[float]]:
        """The (tiles, keeps) of a stored trial's parameters."""
        tiles = [self.tiles[params[f"tile{i}"]] for i in range(layers)]
        names = [f"keep{i}" if self.per_layer_keep else "keep" for i in range(layers)]
        return tiles, [self.keeps[params[name]] for name in names]

    def fitting(self, problem: Problem) -> tuple[SearchSpace, list[int]]:
        """This space without tiles no layer can use at any keep (and those tiles).

        Sampling them would prune nearly every trial of a deep model; what
        still depends on the keep ratio is pruned per trial. (SRAM misfits grow
        with the keep, so for them the smallest keep decides; a first stage's
        pruning, `Problem.pruned`, may depend on the keep either way.)
        """
        dropped = [
            tile
            for tile in self.tiles
            if all(problem.fit_problem(i, tile, keep) for i in range(len(problem.layers)) for keep in self.keeps)
        ]
        kept = tuple(tile for tile in self.tiles if tile not in dropped)
        if not kept:
            reason = problem.fit_problem(0, self.tiles[0], min(self.keeps))
            raise DseError(f"no tile of the search space fits the target: {reason}")
        return SearchSpace(kept, self.keeps, self.per_layer_keep), dropped


@dataclass
class Evaluator:
    """Evaluates configurations of a problem on an executor, caching each (layer, tile, keep)."""

    problem: Problem
    weights: Weights
    executor: Executor
    cache: dict[Key, LayerResult] = field(default_factory=dict)
    evaluations: int = 0
    _shared: Any = None

    def ensure(self, keys: list[Key]) -> None:
        """Evaluate every key not cached yet, in parallel, in a fixed order."""
        missing = sorted({key for key in keys if key not in self.cache}, key=repr)
        if not missing:
            return
        if self._shared is None:
            self._shared = self.executor.share(self.problem)
        results = self.executor.map(evaluate_layer, [(self._shared, *key) for key in missing])
        self.cache.update(zip(missing, results, strict=True))
        self.evaluations += len(missing)

    def dense(self) -> list[LayerResult]:
        keys: list[Key] = [(i, None, 1.0) for i in range(len(self.problem.layers))]
        self.ensure(keys)
        return [self.cache[key] for key in keys]

    def misfit(self, tiles: list[int], keeps: list[float]) -> str | None:
        for index, (tile, keep) in enumerate(zip(tiles, keeps)):
            if problem := self.problem.fit_problem(index, tile, keep):
                return problem
        return None

    def score_many(self, configs: list[tuple[list[int], list[float]]]) -> list[Score | str]:
        """A `Score` per configuration, or the reason it does not fit (evaluations batched)."""
        dense = self.dense()
        reasons = [self.misfit(tiles, keeps) for tiles, keeps in configs]
        keys = [
            (i, tile, keep)
            for (tiles, keeps), reason in zip(configs, reasons)
            if reason is None
            for i, (tile, keep) in enumerate(zip(tiles, keeps))
        ]
        self.ensure(keys)
        out: list[Score | str] = []
        seqs = [layer.seq for layer in self.problem.layers]
        for (tiles, keeps), reason in zip(configs, reasons):
            if reason is not None:
                out.append(reason)
                continue
            results = [self.cache[(i, t, k)] for i, (t, k) in enumerate(zip(tiles, keeps))]
            failed = next((r.failure for r in results if r.failure), None)
            out.append(failed if failed else score(seqs, tiles, keeps, results, dense, self.weights))
        return out


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """TPE or GP; both read `--max-error` from the trials' `set_constraint` values."""
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if kind == "gp":
        try:
            import torch  # noqa: F401  (GPSampler's dependency)
        except ModuleNotFoundError:
            raise DseError("--sampler gp needs torch (pip install -e '.[eval]'); use --sampler tpe") from None
        return optuna.samplers.GPSampler(seed=seed)
    raise DseError(f"unknown sampler '{kind}' (choose from tpe, gp)")


@dataclass
class SearchResult:
    study: optuna.Study
    best_trial: FrozenTrial | None
    tuning: Tuning | None
    new_trials: int
    evaluations: int
    wall_s: float


def _finished(study: optuna.Study) -> int:
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


def _check_study(study: optuna.Study, identity: dict[str, Any]) -> None:
    """A resumed study must be the same problem and space; new studies get the identity stored."""
    stored = {key: study.user_attrs.get(key) for key in identity}
    if all(value is None for value in stored.values()):
        for key, value in identity.items():
            study.set_user_attr(key, value)
        return
    for key, value in identity.items():
        if stored[key] != value:
            raise DseError(
                f"study '{study.study_name}' was made with a different {key} ({stored[key]} vs {value});"
                " use another --study-name or --storage"
            )


def _recover(study: optuna.Study, evaluator: Evaluator, space: SearchSpace) -> None:
    """Resume: fail trials an interrupted run left running or queued, and refill the cache from finished ones."""
    layers = len(evaluator.problem.layers)
    for _ in range(sum(t.state == TrialState.WAITING for t in study.trials)):
        study.tell(study.ask(), state=TrialState.FAIL)
    for trial in study.trials:
        if trial.state == TrialState.RUNNING:
            study.tell(trial.number, state=TrialState.FAIL)
        elif trial.state == TrialState.COMPLETE and "layers" in trial.user_attrs:
            tiles, keeps = space.values(trial.params, layers)
            for i, (values, tile, keep) in enumerate(zip(trial.user_attrs["layers"], tiles, keeps)):
                evaluator.cache.setdefault((i, tile, keep), LayerResult(*values))


def sqlite_path(url: str | None) -> Path | None:
    """The database file of a ``sqlite:///FILE`` storage URL (None for another storage, or in memory)."""
    if url is None or not url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        database = make_url(url).database
    except ArgumentError as error:
        raise DseError(f"cannot open the study storage {url}: {error}") from None
    return Path(database) if database and database != ":memory:" else None


@contextmanager
def storage_lock(url: str | None) -> Iterator[None]:
    """Hold ``FILE.lock`` beside a SQLite storage for the whole run (an exclusive `flock`); storage errors inside
    (a file that is not a database, a locked or read-only one) become one `DseError`.

    Two runs on one fresh database would both create its tables ("table trials
    already exists"), and a second run on a live study would fail the first
    one's running trials as if they were left by a crash. The lock makes the
    second run stop at once, before it reads or writes the study. Other
    storages (a database server) are shared as Optuna shares them.
    """
    from sqlalchemy.exc import SQLAlchemyError

    database = sqlite_path(url)
    handle = None
    try:
        if database is not None:
            handle = _lock(database, url)
        yield
    except SQLAlchemyError as error:  # the library boundary: sqlite3 errors arrive wrapped
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise DseError(f"the study storage {url} cannot be used: {reason}") from None
    finally:
        if handle is not None:
            os.close(handle)  # releases the lock


def _lock(database: Path, url: str) -> int:
    lock_path = database.with_name(database.name + ".lock")
    try:
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise DseError(f"cannot open the study storage {url}: {lock_path}: {error.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        raise DseError(
            f"the study storage {url} is in use by another sofa-dse run (it holds {lock_path});"
            " wait for it, or use another --storage"
        ) from None
    return handle


def open_storage(url: str | None) -> optuna.storages.BaseStorage | str | None:
    """The Optuna storage; SQLite in WAL mode with relaxed fsync (about 7x faster per trial, still crash-safe)."""
    if url is None or not url.startswith("sqlite:"):
        return url
    from sqlalchemy import event

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    storage = optuna.storages.RDBStorage(url)
    event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # reconnect, so every connection gets the pragmas
    return storage


def global_params(space: SearchSpace, layers: int) -> list[dict[str, int]]:
    """Alg. 1's initial samples D: every single global (Bc, keep) of the space, as trial parameters."""
    grid = []
    for tile in range(len(space.tiles)):
        for keep in range(len(space.keeps)):
            params = {f"tile{i}": tile for i in range(layers)}
            params |= {f"keep{i}": keep for i in range(layers)} if space.per_layer_keep else {"keep": keep}
            grid.append(params)
    return grid


def best_feasible(study: optuna.Study) -> FrozenTrial | None:
    complete = [
        t
        for t in study.trials
        if t.state == TrialState.COMPLETE and t.value is not None and t.user_attrs.get("constraint", 0.0) <= 0
    ]
    return min(complete, key=lambda t: (t.value, t.number)) if complete else None


def trial_tuning(trial: FrozenTrial, layers: int, space: SearchSpace, meta: dict[str, Any]) -> Tuning:
    tiles, keeps = space.values(trial.params, layers)
    entries = {i: LayerTuning(tile, keep) for i, (tile, keep) in enumerate(zip(tiles, keeps))}
    return Tuning(LayerTuning(), entries, meta)


def _tell_batch(
    study: optuna.Study,
    evaluator: Evaluator,
    weights: Weights,
    asked: list[optuna.Trial],
    configs: list[tuple[list[int], list[float]]],
    scores: list[Score | str],
) -> None:
    """Tell a batch in ask order: misfits as pruned (with the reason), the rest with their value and terms."""
    for trial, (tiles, keeps), result in zip(asked, configs, scores):
        if isinstance(result, str):
            trial.set_user_attr("pruned", result)
            study.tell(trial, state=TrialState.PRUNED)
            continue
        for key, value in result.to_dict().items():
            trial.set_user_attr(key, value)
        results = [evaluator.cache[(i, t, k)] for i, (t, k) in enumerate(zip(tiles, keeps))]
        trial.set_user_attr("layers", [[r.error, r.cycles, r.energy_pj] for r in results])
        if weights.max_error is not None:
            trial.set_user_attr("constraint", result.error - weights.max_error)
            trial.set_constraint("max_error", result.error - weights.max_error)
        study.tell(trial, result.value)


def run_search(
    problem: Problem,
    space: SearchSpace,
    weights: Weights,
    evaluator: Evaluator,
    trials: int,
    storage: str | None,
    study_name: str,
    seed: int = 0,
    batch: int = 8,
    sampler: str = "tpe",
    progress: Callable[[str], None] | None = None,
    initial: str = "global",
) -> SearchResult:
    """Run (or resume) the study until it has `trials` finished trials.

    ``initial="global"`` queues every single global (Bc, keep) as the first
    trials (the initial samples of Alg. 1); ``"random"`` leaves them to the sampler.
    """
    if initial not in ("global", "random"):
        raise DseError(f"unknown --initial '{initial}' (choose from global, random)")
    if trials < 1 or batch < 1:
        raise DseError(f"--trials and --batch must be at least 1, got {trials} and {batch}")
    # One run per storage at a time: a second run stops before it touches the study.
    with storage_lock(storage):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.create_study(
                storage=open_storage(storage),
                study_name=study_name,
                direction="minimize",
                load_if_exists=True,
                sampler=make_sampler(sampler, seed),
            )
        except (ValueError, ImportError, optuna.exceptions.OptunaError) as error:
            raise DseError(f"cannot open the study storage {storage}: {error}") from None
        identity = {
            "problem": problem.fingerprint(),
            "space": space.to_dict(),
            "weights": weights.to_dict(),
            "seed": seed,
            "batch": batch,
            "sampler": sampler,
            "initial": initial,
        }
        _check_study(study, identity)
        _recover(study, evaluator, space)
        layers = len(problem.layers)
        grid = global_params(space, layers) if initial == "global" else []
        start = time.perf_counter()
        new = 0
        while (done := _finished(study)) < trials:
            # Re-seeding per batch from the trial count makes a resumed run replay an uninterrupted one.
            study.sampler = make_sampler(sampler, seed * 1_000_003 + done)
            count = min(batch, trials - done)
            # Initial samples are queued per finished-trial slot, so a resumed run queues the same ones.
            for params in grid[done : done + count]:
                study.enqueue_trial(params)
            asked = [study.ask() for _ in range(count)]
            configs = [space.suggest(trial, layers) for trial in asked]
            scores = evaluator.score_many(configs)
            try:
                _tell_batch(study, evaluator, weights, asked, configs, scores)
            except optuna.exceptions.UpdateFinishedTrialError:
                raise DseError(
                    f"another run finished this run's trials: is a second sofa-dse using study '{study_name}'?"
                ) from None
            new += len(asked)
            if progress is not None:
                best = best_feasible(study)
                best_text = (
                    f"best {best.value:.5f} (trial {best.number})" if best is not None else "no feasible trial yet"
                )
                elapsed = time.perf_counter() - start
                runs = evaluator.evaluations
                progress(f"trials {_finished(study)}/{trials}: {best_text}, {runs} layer runs, {elapsed:.1f} s")
        best = best_feasible(study)
        meta = {
            "study": study_name,
            "problem": problem.name,
            "target": problem.config.name,
            "weights": weights.to_dict(),
        }
        tuning = None
        if best is not None:
            meta |= {
                "trial": best.number,
                "objective": best.value,
                "score": {k: best.user_attrs[k] for k in Score.__dataclass_fields__},
            }
            tuning = trial_tuning(best, layers, space, meta)
        return SearchResult(study, best, tuning, new, evaluator.evaluations, time.perf_counter() - start)


@dataclass(frozen=True)
class GlobalRow:
    tile: int
    keep: float
    score: Score | None
    reason: str = ""


def global_baseline(evaluator: Evaluator, space: SearchSpace) -> tuple[list[GlobalRow], GlobalRow | None]:
    """Every single global (Bc, keep) of the space, exhaustively; the best feasible one."""
    layers = len(evaluator.problem.layers)
    grid = [(tile, keep) for tile in space.tiles for keep in space.keeps]
    scores = evaluator.score_many([([tile] * layers, [keep] * layers) for tile, keep in grid])
    rows = [
        GlobalRow(tile, keep, None, result) if isinstance(result, str) else GlobalRow(tile, keep, result)
        for (tile, keep), result in zip(grid, scores)
    ]
    limit = evaluator.weights.max_error
    feasible = [r for r in rows if r.score is not None and (limit is None or r.score.error <= limit)]
    best = min(feasible, key=lambda r: r.score.value if r.score else math.inf) if feasible else None
    return rows, best
