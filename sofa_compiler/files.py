"""Output files that a failure never leaves half-written, and the `.npz` input reader the tools share.

Every tool writes its outputs through `atomic_write`; devices and FIFOs are written in place.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import numpy as np


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` with `write`, so that a failure never leaves it half-written.

    A regular file (or a new one) is written as a temporary beside it and
    renamed over it, atomic on POSIX: readers see the old file or the whole new
    one, and on any error the temporary is removed and `path` is untouched. A
    symlink is followed: its resolved target is replaced and the link stays.
    Anything else that exists (a device, a FIFO, a socket) is written in place,
    never replaced. An OSError names `path`, not a temporary.
    """
    target = Path(path)
    try:
        special = not stat.S_ISREG(os.stat(target).st_mode)
    except FileNotFoundError:
        special = False
    except OSError as error:
        raise _naming(target, error) from None
    if special:
        _write_in_place(target, write)
    else:
        _replace(Path(os.path.realpath(target)), target, write)


def _naming(target: Path, error: OSError) -> OSError:
    """`error` as the user should see it: about `target`, the path they gave."""
    if error.errno is None:
        return error
    return OSError(error.errno, error.strerror, str(target))


def _replace(destination: Path, target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a temporary beside `destination`, then rename it over `destination`."""
    # Ctrl-C or SIGTERM waits until the temporary's name is known, so the cleanup below always sees it.
    signals = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    except OSError as error:
        signal.pthread_sigmask(signal.SIG_SETMASK, signals)
        raise _naming(target, error) from None
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, signals)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        # mkstemp creates the file private (0600); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, destination)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        # Errors of the temporary are errors of the user's file; others (from `write`) keep their name.
        if error.filename not in (None, temporary):
            raise
        raise _naming(target, error) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_in_place(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write into an existing non-regular file (a device, a FIFO): it cannot be replaced.

    The data is made whole first, so a failing `write` sends nothing; then it
    is written, flushed and synced, and a short write (ENOSPC) is an error.
    """
    buffer = io.BytesIO()
    write(buffer)
    data = memoryview(buffer.getbuffer())
    try:
        # No O_CREAT: a target that vanished is an error, not a new half-written file.
        handle = os.open(target, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            while data:
                data = data[os.write(handle, data) :]
            _sync(handle)
        finally:
            os.close(handle)
    except OSError as error:
        raise _naming(target, error) from None


def _sync(handle: int) -> None:
    try:
        os.fsync(handle)
    except OSError as error:
        # Pipes, terminals and most character devices have nothing to sync.
        if error.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def check_output_path(path: str | Path | None) -> None:
    """Fail now, before any work, if `path` cannot be written: its directory is missing or read-only, or it is one.

    The OSError names `path` as the user gave it. None (no such output) passes.
    """
    if path is None:
        return
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise OSError(errno.EISDIR, "is a directory, not a file", str(target))
    if not parent.is_dir():
        raise OSError(errno.ENOENT, f"No such file or directory (no directory '{parent}')", str(target))
    if not os.access(parent, os.W_OK | os.X_OK) and not (target.exists() and os.access(target, os.W_OK)):
        raise OSError(errno.EACCES, f"directory '{parent}' is not writable", str(target))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda stream: stream.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class NpzError(ValueError):
    """An input file that is not a readable `.npz` archive; the message names the file and why."""


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` file, by name, in archive order (no pickles)."""
    import numpy as np  # here, not at the top: most tools that write files never read one

    try:
        with open(path, "rb") as stream:
            # np.load also reads .npy and pickles, which are not one array per name.
            if not zipfile.is_zipfile(stream):
                raise NpzError(f"{path}: not an .npz archive")
            stream.seek(0)
            with np.load(stream, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
    except OSError as error:
        raise NpzError(f"cannot read inputs '{path}': {error.strerror or error}") from error
    except (ValueError, EOFError, NotImplementedError, RuntimeError, zipfile.BadZipFile, zlib.error) as error:
        # A corrupt member (bad CRC, truncated data, bad .npy header, object arrays), a zip
        # version or compression zipfile cannot read (NotImplementedError), or an encrypted
        # member (RuntimeError).
        if isinstance(error, NpzError):
            raise
        raise NpzError(f"{path}: not a valid .npz file: {error}") from error
