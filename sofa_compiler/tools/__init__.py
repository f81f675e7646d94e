"""The command-line tools (console scripts in pyproject.toml).

Each tool is a thin `main` over the library: what the tools share (exit
statuses, warnings, progress, argument types) is `sofa_compiler.cli`, and no
tool imports another. Importing this package as a console script's first
step makes Ctrl-C during the tool's imports quiet (`_quiet_ctrl_c_while_loading`).
"""

# Only modules Python has loaded at start-up already: a Ctrl-C while they load would beat the handler.
import os
import signal
import sys

from sofa_compiler.console_scripts import CONSOLE_SCRIPT_PREFIX


def _interrupted_while_loading(signum: int, frame: object) -> None:
    # `exit_statuses` reports Ctrl-C and SIGTERM once `main` runs; before, the imports are still loading.
    # Nothing is written yet, so nothing needs cleaning up; exiting at once also spares half-imported
    # extension modules an interpreter shutdown (SystemExit raised inside numpy's import crashed it).
    said, status = ("terminated", 143) if signum == signal.SIGTERM else ("interrupted", 130)
    os.write(sys.stderr.fileno(), f"{os.path.basename(sys.argv[0])}: {said}\n".encode())
    os._exit(status)


def _quiet_ctrl_c_while_loading() -> None:
    """Ctrl-C (or SIGTERM) while a console script's imports load (about 0.7 s): status 130 (143) and one line.

    Only for a console script (``sofa-*``) on the main thread with Python's own
    handler in place, so importing a tool elsewhere (a test) changes nothing;
    `sofa_compiler.cli.exit_statuses` puts Python's handler back when `main` starts.
    """
    if not os.path.basename(sys.argv[0]).startswith(CONSOLE_SCRIPT_PREFIX):
        return
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupted_while_loading)
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _interrupted_while_loading)
    except ValueError:
        pass  # not the main thread: signals are the main thread's business


_quiet_ctrl_c_while_loading()
