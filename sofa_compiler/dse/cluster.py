"""Where evaluations run: a Dask cluster (an embedded `LocalCluster` by default).

Results always come back in submission order, and every evaluation is
deterministic, so a search or sweep gives the same answer on any number of
workers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sofa_compiler.dse.problem import DseError


class Executor:
    """Maps a function over tasks on a Dask client; `shared` objects are sent to every worker once."""

    def __init__(self, client: Any):
        self.client = client

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def share(self, value: Any) -> Any:
        """A handle to `value` on every worker (pass it as a task argument)."""
        return self.client.scatter(value, broadcast=True, hash=False)

    def map(self, function: Callable[..., Any], tasks: Sequence[tuple[Any, ...]]) -> list[Any]:
        if not tasks:
            return []
        futures = [self.client.submit(function, *task, pure=False) for task in tasks]
        try:
            return self.client.gather(futures)
        except Exception as error:  # a worker-side bug or a lost worker: one line, not a remote traceback
            raise DseError(f"an evaluation failed on a Dask worker: {type(error).__name__}: {error}") from None


@contextlib.contextmanager
def executor(scheduler: str | None = None, workers: int = 2, processes: bool = True) -> Iterator[Executor]:
    """An `Executor` on the Dask scheduler at `scheduler` (``tcp://host:port``), or a new `LocalCluster`."""
    from distributed import Client, LocalCluster

    # Dask's own INFO lines (dashboard address, worker start) would drown the progress output.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as error:
            raise DseError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        try:
            yield Executor(client)
        finally:
            client.close()
        return
    if workers < 1:
        raise DseError(f"--workers must be at least 1, got {workers}")
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=":0", silence_logs=logging.ERROR
    )
    client = Client(cluster)
    try:
        yield Executor(client)
    finally:
        client.close()
        cluster.close()
