"""What the command-line tools share: how they fail, warn and show progress, and their argument types.

Every tool (`sofa_compiler/tools/`) is a thin `main` over the library; the
house convention for its exit statuses lives in `exit_statuses`:

=========================  ==========================================  ======
failure                     message on stderr                           status
=========================  ==========================================  ======
a `located` error           the error as is (it names file:line)        1
a user error, an OSError    ``tool: error: ...``                        1
a simulator `Trap`          ``tool: trap at pc=N (...): reason``        2
Ctrl-C                      ``tool: interrupted``                       130
a closed pipe (``| head``)  none                                        1
=========================  ==========================================  ======

Never a traceback for bad input; a genuine bug still raises.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import ParamSpec

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sofa_compiler.sim.limits import DEFAULT_MAX_INSTRUCTIONS
from sofa_compiler.sim.traps import Trap

P = ParamSpec("P")

ERROR_STATUS = 1
"""Bad input, options or files: the message says what."""

TRAP_STATUS = 2
"""The simulated machine stopped on an invalid program."""

INTERRUPTED_STATUS = 130
"""128 + SIGINT, what shells report for a command stopped with Ctrl-C."""


def print_error(tool: str, message: object) -> int:
    """Print ``tool: error: message`` on stderr; return `ERROR_STATUS`."""
    print(f"{tool}: error: {message}", file=sys.stderr)
    return ERROR_STATUS


def file_error(error: OSError) -> str:
    """``FILE: reason`` for an OSError (Python's own text starts with ``[Errno N]``)."""
    return f"{error.filename or ''}: {error.strerror or error}"


def _print_located(error: BaseException) -> None:
    print(error, file=sys.stderr)
    for note in getattr(error, "__notes__", ()):
        print(note, file=sys.stderr)


def _silence_stdout() -> None:
    # The reader (`| head`) went away: point stdout at devnull so the
    # interpreter's final flush does not fail again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def exit_statuses(
    tool: str,
    *user_errors: type[Exception],
    located: tuple[type[Exception], ...] = (),
    describe_os_error: Callable[[OSError], str] = str,
) -> Callable[[Callable[P, int | None]], Callable[P, int | None]]:
    """Decorate a tool's `main` with the convention of the module docstring.

    `user_errors` are printed as ``tool: error: <error>``; `located` ones (a
    parse error that names file:line:col, say) as they are, with their notes;
    an OSError as ``tool: error: describe_os_error(error)``. Every tool writes
    its outputs through `sofa_compiler.files.atomic_write`, so a failed or
    interrupted run leaves no half-written file behind.
    """

    def decorate(main: Callable[P, int | None]) -> Callable[P, int | None]:
        @functools.wraps(main)
        def run(*args: P.args, **kwargs: P.kwargs) -> int | None:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                print(f"{tool}: interrupted", file=sys.stderr)
                return INTERRUPTED_STATUS
            except Trap as trap:
                print(f"{tool}: {trap}", file=sys.stderr)
                return TRAP_STATUS
            except located as error:
                _print_located(error)
                return ERROR_STATUS
            except user_errors as error:
                return print_error(tool, error)
            except BrokenPipeError:
                _silence_stdout()
                return ERROR_STATUS
            except OSError as error:
                return print_error(tool, describe_os_error(error))

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


@contextmanager
def timing_progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr for the timing model, or None when disabled."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("timing model"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("timing", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def add_budget_option(parser: argparse.ArgumentParser) -> None:
    """``--max-instructions N``: the instruction budget of each simulated kernel run."""
    parser.add_argument(
        "--max-instructions",
        metavar="N",
        type=positive_int,
        default=DEFAULT_MAX_INSTRUCTIONS,
        help=f"trap when a kernel run executes more than N instructions (default {DEFAULT_MAX_INSTRUCTIONS:,})",
    )


def file_name(text: str) -> str:
    """An argparse type: a path to write, which must not be empty (``--output ""`` would save nothing)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file name, got an empty string")
    return text


def positive_int(text: str) -> int:
    """An argparse type: a positive integer, in any base Python reads (``0x100`` too)."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


INPUT_SHAPE_SYNTAX = "NAME=D0,D1,..."


class InputShapeError(ValueError):
    """A malformed ``--input-shape``; the message says what is wrong with it."""


def add_input_shape_option(parser: argparse.ArgumentParser) -> None:
    """``--input-shape NAME=D0,D1,...`` (repeatable); read it back with `input_shapes`.

    The values stay text for argparse, so that a malformed one is a user error
    (status 1, one line) rather than argparse's usage error (status 2).
    """
    parser.add_argument(
        "--input-shape",
        dest="input_shape",
        action="append",
        default=[],
        metavar=INPUT_SHAPE_SYNTAX,
        help="a static shape for a graph input with dynamic dimensions (repeatable)",
    )


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME=D0,D1,...`` -> (name, dims); each dimension a positive integer."""
    name, separator, dims = text.rpartition("=")
    if not separator:
        raise InputShapeError(f"--input-shape '{text}': expected {INPUT_SHAPE_SYNTAX} (no '=')")
    if not name:
        raise InputShapeError(f"--input-shape '{text}': no input name before '='")
    shape = []
    for dim in dims.split(",") if dims else []:
        try:
            value = int(dim)
        except ValueError:
            raise InputShapeError(f"--input-shape '{text}': dimension '{dim}' is not an integer") from None
        if value < 1:
            raise InputShapeError(f"--input-shape '{text}': dimension {value} is not positive")
        shape.append(value)
    return name, tuple(shape)


def input_shapes(texts: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """The ``--input-shape`` values as name -> shape; an input named twice is an error."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in texts:
        name, shape = parse_input_shape(text)
        if name in shapes:
            raise InputShapeError(f"--input-shape gives input '{name}' twice")
        shapes[name] = shape
    return shapes
