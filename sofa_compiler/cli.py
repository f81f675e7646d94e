"""What the command-line tools share: how they fail, warn and show progress, and their argument types.

Every tool (`sofa_compiler/tools/`) is a thin `main` over the library; the
house convention for its exit statuses lives in `exit_statuses`:

=========================  ==========================================  ======
failure                     message on stderr                           status
=========================  ==========================================  ======
a `located` error           the error as is (it names file:line)        1
a user error, an OSError    ``tool: error: ...``                        1
a simulator `Trap`          ``tool: trap at pc=N (...): reason``        2
outputs unlike reference    ``tool: error: output NAME: ...``           3
Ctrl-C                      ``tool: interrupted``                       130
SIGTERM                     ``tool: terminated``                        143
``| head`` closes stdout    none                                        1
=========================  ==========================================  ======

Never a traceback for bad input; a genuine bug still raises.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec

from sofa_compiler.console_scripts import CONSOLE_SCRIPT_PREFIX
from sofa_compiler.sim.limits import DEFAULT_MAX_INSTRUCTIONS
from sofa_compiler.sim.traps import Trap

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from sofa_compiler.sim.progress import RunProgress

P = ParamSpec("P")

ERROR_STATUS = 1
"""Bad input, options or files: the message says what."""

TRAP_STATUS = 2
"""The simulated machine stopped on an invalid program."""

MISMATCH_STATUS = 3
"""The run finished, but its outputs disagree with the reference (`sofa-run`: NaN or inf where onnxruntime has none)."""

INTERRUPTED_STATUS = 130
"""128 + SIGINT, what shells report for a command stopped with Ctrl-C."""

TERMINATED_STATUS = 143
"""128 + SIGTERM: the run was told to stop (its temporaries are removed first)."""


def print_error(tool: str, message: object) -> int:
    """Print ``tool: error: message`` on stderr; return `ERROR_STATUS`."""
    print(f"{tool}: error: {message}", file=sys.stderr)
    return ERROR_STATUS


def file_error(error: OSError) -> str:
    """``FILE: reason`` for an OSError (Python's own text starts with ``[Errno N]``)."""
    reason = error.strerror or str(error)
    return f"{error.filename}: {reason}" if error.filename else reason


def _print_located(error: BaseException) -> None:
    from xdsl.utils.exceptions import ParseError  # here: tools that parse no MLIR need not import xDSL

    from sofa_compiler.parser import mlir_parse_error

    if isinstance(error, ParseError):
        error = mlir_parse_error(error)
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
    describe_os_error: Callable[[OSError], str] = file_error,
    deferred_errors: Callable[[], tuple[type[Exception], ...]] = tuple,
) -> Callable[[Callable[P, int | None]], Callable[P, int | None]]:
    """Decorate a tool's `main` with the convention of the module docstring.

    `user_errors` are printed as ``tool: error: <error>``; `located` ones (a
    parse error that names file:line:col, say) as they are, with their notes;
    an OSError as ``tool: error: describe_os_error(error)`` (default `file_error`:
    ``FILE: reason``, never Python's ``[Errno N]``). Every tool writes
    its outputs through `sofa_compiler.files.atomic_write`, so a failed or
    interrupted run leaves no half-written file behind.

    `deferred_errors` returns more user error types; it is called only when an
    exception arrives, so a tool can leave the (slow) modules that define them
    unimported until it parsed its options, and ``--help`` stays fast.
    """

    def decorate(main: Callable[P, int | None]) -> Callable[P, int | None]:
        @functools.wraps(main)
        def run(*args: P.args, **kwargs: P.kwargs) -> int | None:
            _ctrl_c_as_keyboard_interrupt()
            try:
                with user_warnings(tool), terminate_as_interrupt():
                    status = main(*args, **kwargs)
                _hold_late_signals()
                return status
            except Terminated:
                print(f"{tool}: terminated", file=sys.stderr)
                return _leave_interrupted(TERMINATED_STATUS)
            except KeyboardInterrupt:
                print(f"{tool}: interrupted", file=sys.stderr)
                return _leave_interrupted(INTERRUPTED_STATUS)
            except Trap as trap:
                print(f"{tool}: {trap}", file=sys.stderr)
                return TRAP_STATUS
            except located as error:
                _print_located(error)
                return ERROR_STATUS
            except user_errors as error:
                return print_error(tool, error)
            except BrokenPipeError as error:
                if error.filename:  # an output file (a FIFO whose reader left): say so
                    return print_error(tool, describe_os_error(error))
                _silence_stdout()  # stdout's reader left (`| head`): nothing to say
                return ERROR_STATUS
            except OSError as error:
                return print_error(tool, describe_os_error(error))
            except Exception as error:
                if isinstance(error, deferred_errors()):
                    return print_error(tool, error)
                raise

        return run

    return decorate


def _leave_interrupted(status: int) -> int:
    """An interrupted console script exits at once, with `status`, once its streams are flushed.

    The interrupt may have landed inside a lazy import (numpy's, say), leaving a
    half-initialised module; Python's shutdown would then import it again and die
    with a traceback. Every `finally` has run, so nothing is left half-written.
    In-process callers (tests) get the status back.
    """
    if not Path(sys.argv[0]).name.startswith(CONSOLE_SCRIPT_PREFIX):
        return status
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more can be said
    os._exit(status)


def _hold_late_signals() -> None:
    """A console script whose `main` is done ignores Ctrl-C and SIGTERM until it exits.

    Its outputs are written and its status decided; a signal now would only make
    Python die of it during shutdown (status -2 or -15, no message). Ignoring is
    process-wide (blocking would hold only the main thread, and onnxruntime's and
    BLAS's threads would still take the signal). In-process callers (tests) keep theirs.
    """
    if not Path(sys.argv[0]).name.startswith(CONSOLE_SCRIPT_PREFIX):
        return
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _ctrl_c_as_keyboard_interrupt() -> None:
    """Python's own SIGINT handler again, once `main` runs (`sofa_compiler.tools` swaps it while loading)."""
    if threading.current_thread() is threading.main_thread():
        handler = signal.getsignal(signal.SIGINT)
        if getattr(handler, "__module__", None) == "sofa_compiler.tools":
            signal.signal(signal.SIGINT, signal.default_int_handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every `finally` (temporaries of `atomic_write`) runs."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` inside (main thread only; elsewhere SIGTERM keeps its handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def user_warnings(tool: str) -> Iterator[None]:
    """Print each `UserWarning` and numpy `RuntimeWarning` raised inside as one ``tool: warning: ...`` line.

    Python's own format would show a source line of ours, which means nothing to
    the user; a numpy overflow repeated per tile is printed once. Other warning
    categories keep Python's filters.
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            warnings.simplefilter("always", RuntimeWarning)
            yield
    finally:
        for line in dict.fromkeys(_warning_line(tool, warning) for warning in caught):
            if line is not None:
                print(line, file=sys.stderr)
        for warning in caught:
            if not issubclass(warning.category, UserWarning | RuntimeWarning):
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


def _warning_line(tool: str, warning: warnings.WarningMessage) -> str | None:
    if issubclass(warning.category, UserWarning):
        return f"{tool}: warning: {warning.message}"
    if issubclass(warning.category, RuntimeWarning):
        return f"{tool}: warning: numpy: {warning.message} (a value left its number format's range)"
    return None


class _ProgressBars:
    """`RunProgress` drawn as one rich bar per kernel call: the share of the program simulated, with an ETA."""

    def __init__(self, bars: Progress):
        self.bars = bars
        self.task = bars.add_task("", total=None, count="")
        self.label = ""
        self.phase = ""

    def _enter(self, phase: str, total: float) -> None:
        if phase != self.phase:
            self.phase = phase
            self.bars.reset(self.task, total=total, description=f"{self.label}{phase}", count="")

    def kernel(self, name: str) -> None:
        self.label, self.phase = f"{name}: ", ""

    def functional(self, executed: int, fraction: float) -> None:
        self._enter("functional simulation", 1.0)
        self.bars.update(self.task, completed=fraction, count=f"{executed:,} instructions", refresh=True)


@contextmanager
def simulation_progress(enabled: bool, console: Console | None = None) -> Iterator[RunProgress | None]:
    """A progress bar on stderr (or `console`) for a simulated run, with an ETA; None when disabled."""
    if not enabled:
        yield None
        return
    # Imported here: rich costs every tool's start-up, and only simulating tools draw bars.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[count]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as bars:
        yield _ProgressBars(bars)


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
