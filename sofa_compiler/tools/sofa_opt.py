"""`sofa-opt`: xDSL's modular optimizer driver with the SOFA dialects and passes.

Bad input (syntax errors, verifier failures, unknown passes, missing files)
is reported as a one-diagnostic message on stderr with exit status 1, never as
a Python traceback. Genuine compiler bugs still raise.
"""

import os
import sys
from collections.abc import Sequence

from xdsl.context import Context
from xdsl.utils.exceptions import DiagnosticException, ParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from sofa_compiler.universe import SOFA_UNIVERSE

USER_ERRORS: tuple[type[BaseException], ...] = (
    # DiagnosticException covers VerifyException, PassFailedException and
    # InterpretationError; ValueError is what xDSL raises for an unknown pass
    # or file extension; OSError for missing or unreadable files.
    ParseError,
    DiagnosticException,
    ValueError,
    OSError,
)
"""Exceptions that mean "the input is wrong", as opposed to a compiler bug."""


def register_sofa_dialects(ctx: Context) -> None:
    """Register the SOFA dialects in `ctx` unless they are already there.

    An installed package brings them in through the `xdsl.universe` entry
    point; running from a source tree without installing does not, so this
    fills the gap. Registering twice would raise.
    """
    registered = set(ctx.registered_dialect_names)
    for name, factory in SOFA_UNIVERSE.all_dialects.items():
        if name not in registered:
            ctx.register_dialect(name, factory)


class SofaOptMain(xDSLOptMain):
    def __init__(
        self,
        description: str = "SOFA modular optimizer driver",
        args: Sequence[str] | None = None,
    ):
        super().__init__(description, args)

    def register_all_dialects(self) -> None:
        super().register_all_dialects()
        register_sofa_dialects(self.ctx)

    def register_all_passes(self) -> None:
        super().register_all_passes()
        for name, factory in SOFA_UNIVERSE.all_passes.items():
            if name not in self.available_passes:
                self.register_pass(name, factory)


def report_user_error(tool: str, error: BaseException) -> None:
    """Print `error` as a diagnostic on stderr (no traceback) and exit 1."""
    if isinstance(error, BrokenPipeError):
        # The reader (`| head`) went away: not worth a message. Point stdout at
        # devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    message = str(error)
    if isinstance(error, OSError | ValueError):
        # These carry no source location of their own; name the tool instead.
        message = f"{tool}: error: {message}"
    print(message, file=sys.stderr)
    notes = getattr(error, "__notes__", ())
    for note in notes:
        print(note, file=sys.stderr)
    sys.exit(1)


def main(args: Sequence[str] | None = None) -> None:
    try:
        # The constructor already parses the pass pipeline, so it is guarded too.
        SofaOptMain(args=args).run()
    except USER_ERRORS as e:
        report_user_error("sofa-opt", e)


if __name__ == "__main__":
    main()
