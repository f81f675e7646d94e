"""The command-line tools (console scripts in pyproject.toml)."""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

INTERRUPTED_STATUS = 130
"""128 + SIGINT, what shells report for a command stopped with Ctrl-C."""


def interruptible(tool: str) -> Callable[[Callable[P, R]], Callable[P, R | int]]:
    """Make Ctrl-C end `tool` with one line on stderr and exit status 130, not a traceback.

    Every tool writes its outputs through `sofa_compiler.files.atomic_write`,
    so an interrupted run leaves no half-written file behind.
    """

    def decorate(main: Callable[P, R]) -> Callable[P, R | int]:
        @functools.wraps(main)
        def run(*args: P.args, **kwargs: P.kwargs) -> R | int:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                print(f"{tool}: interrupted", file=sys.stderr)
                return INTERRUPTED_STATUS

        return run

    return decorate


@contextmanager
def user_warnings(tool: str) -> Iterator[None]:
    """Print each `UserWarning` raised inside (the front end's, for one) as ``tool: warning: ...``.

    Python's own format would show a source line of ours, which means nothing to
    the user; other warning categories keep Python's filters.
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            yield
    finally:
        for warning in caught:
            if issubclass(warning.category, UserWarning):
                print(f"{tool}: warning: {warning.message}", file=sys.stderr)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
