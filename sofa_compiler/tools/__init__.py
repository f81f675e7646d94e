"""The command-line tools (console scripts in pyproject.toml)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
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
