"""Which of the two `.sofa` formats a file holds, told by its first four bytes.

`sofa-as` writes a single program (magic ``b"SOFA"``, `sofa_compiler.isa.container`);
`sofa-compile -o` writes a compiled-model bundle (magic ``b"SOFB"``,
`sofa_compiler.bundle`). Tools that read either ask `sofa_format` which one
they have. This module is light on purpose: a plain program run should not pay
for importing the compiler that the bundle reader needs.
"""

from __future__ import annotations

from enum import Enum

from sofa_compiler.isa.container import MAGIC as PROGRAM_MAGIC

BUNDLE_MAGIC = b"SOFB"


class SofaFormat(Enum):
    PROGRAM = "program"
    BUNDLE = "bundle"


class FormatError(ValueError):
    """A file that is neither format; the message names the file, what it found and what it expected."""


def sofa_format(head: bytes, source: str) -> SofaFormat:
    """The format of a file whose contents start with `head` (at least its first four bytes)."""
    magic = head[:4]
    if magic == PROGRAM_MAGIC:
        return SofaFormat.PROGRAM
    if magic == BUNDLE_MAGIC:
        return SofaFormat.BUNDLE
    found = "the file is empty" if not magic else f"found magic {magic!r}"
    raise FormatError(
        f"{source}: not a .sofa file: {found}; expected {PROGRAM_MAGIC!r} (a program from sofa-as) "
        f"or {BUNDLE_MAGIC!r} (a model bundle from sofa-compile -o)"
    )


def file_format(path: str) -> SofaFormat:
    """The format of the file at `path`; OSError if it cannot be read."""
    with open(path, "rb") as stream:
        return sofa_format(stream.read(len(BUNDLE_MAGIC)), path)
