"""Output files that a failure never leaves half-written, and the `.npz` input reader the tools share."""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a temporary file next to `path`, then rename it over `path`.

    The rename is atomic on POSIX, so readers see the old file or the whole
    new one; on any error the temporary file is removed and `path` is untouched.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else "."
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.")
    except OSError as error:
        # Name the file the user asked for, not the temporary one beside it.
        raise OSError(error.errno, error.strerror, str(target)) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        # mkstemp creates the file private (0600); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda stream: stream.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class NpzError(ValueError):
    """An input file that is not a readable `.npz` archive; the message names the file and why."""


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` file, by name, in archive order (no pickles)."""
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
