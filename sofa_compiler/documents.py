"""Reading TOML and JSON documents (hardware configs, tuning files) as one clean error for any bad file.

The standard library's readers fail in ways a user cannot act on: a binary
file is a `UnicodeDecodeError`, and arrays nested a few thousand deep are a
`RecursionError`. Here both, and nesting deeper than `MAX_DEPTH`, are a
`DocumentError` that names the file.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

MAX_DEPTH = 32
"""The deepest nesting of tables and arrays a document may have; configs and tuning files need three."""


class DocumentError(ValueError):
    """A file that is not a readable document; the message names the file and says why."""


def read_text(path: str | Path) -> str:
    """The UTF-8 text of `path`; OSError if it cannot be read, `DocumentError` if it is not UTF-8 text."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DocumentError(f"{path}: not UTF-8 text (byte {error.start} is 0x{data[error.start]:02x})") from None


def parse_document(text: str, source: str, kind: str = "TOML") -> dict[str, Any]:
    """Parse TOML (or JSON, `kind="JSON"`) text into a table; `DocumentError` says what is wrong."""
    try:
        document = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise DocumentError(f"{source}: invalid {kind}: {error}") from None
    except RecursionError:
        raise DocumentError(f"{source}: invalid {kind}: nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(document, dict):
        raise DocumentError(f"{source}: invalid {kind}: the document is not a table")
    if nesting_depth(document) > MAX_DEPTH:
        raise DocumentError(f"{source}: invalid {kind}: nested deeper than {MAX_DEPTH} levels")
    return document


def nesting_depth(value: Any) -> int:
    """How deep tables and arrays nest in `value` (a scalar is 0; counted up to MAX_DEPTH + 1), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            stack.extend((child, depth + 1) for child in children)
    return deepest
