"""Per-layer tuning files: a KV tile Bc and keep ratio for each attention layer.

A tuning file is JSON or TOML (by extension; JSON otherwise)::

    {"defaults": {"tile": 64, "keep": 0.25},
     "layers": {"0": {"tile": 128}, "3": {"tile": 32, "keep": 0.1}},
     "meta": {...}}

``defaults`` replace the ``--tile``/``--keep`` options; ``layers`` are the
model's attention ops in program order, numbered from 0; ``meta`` is free
(`sofa-dse` records the objective there). `compile_model(tuning=...)` and
`sofa-compile --tuning FILE` apply it through the `sofa-apply-tuning` pass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialects.sofa import keep_problem, tile_problem
from sofa_compiler.documents import DocumentError, parse_document, read_text

TOP_KEYS = ("defaults", "layers", "meta")
VALUE_KEYS = ("tile", "keep")


class TuningError(ValueError):
    """A malformed tuning file; the message names the offending key."""


@dataclass(frozen=True)
class LayerTuning:
    tile: int | None = None
    keep: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in (("tile", self.tile), ("keep", self.keep)) if value is not None}


@dataclass(frozen=True)
class Tuning:
    defaults: LayerTuning = field(default_factory=LayerTuning)
    layers: dict[int, LayerTuning] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "defaults": self.defaults.to_dict(),
            "layers": {str(index): self.layers[index].to_dict() for index in sorted(self.layers)},
        }
        if self.meta:
            document["meta"] = self.meta
        return document

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def pass_options(self, default_keep: float) -> tuple[str, str]:
        """The `sofa-apply-tuning` ``tiles`` and ``keeps`` options (a layer without a keep gets the default)."""
        tiles = ",".join(f"{i}={t.tile}" for i, t in sorted(self.layers.items()) if t.tile is not None)
        keeps = ",".join(
            f"{i}={t.keep if t.keep is not None else default_keep!r}" for i, t in sorted(self.layers.items())
        )
        return tiles, keeps


def _values(entry: Any, where: str) -> LayerTuning:
    if not isinstance(entry, Mapping):
        raise TuningError(f"{where}: expected a table of tile/keep, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(VALUE_KEYS))
    if unknown:
        raise TuningError(f"{where}.{unknown[0]}: unknown key (expected {', '.join(VALUE_KEYS)})")
    tile, keep = entry.get("tile"), entry.get("keep")
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int)):
        raise TuningError(f"{where}.tile: must be a positive integer KV tile size, got {tile!r}")
    if tile is not None and (problem := tile_problem(tile)):
        raise TuningError(f"{where}.tile: {problem}")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int | float)):
        raise TuningError(f"{where}.keep: must be a number, got {keep!r}")
    if keep is not None and (problem := keep_problem(keep)):
        raise TuningError(f"{where}.keep: {problem}")
    return LayerTuning(tile, None if keep is None else float(keep))


def parse_tuning(document: Any, source: str = "<tuning>") -> Tuning:
    """Validate a decoded tuning document; `TuningError` names the bad key."""
    if not isinstance(document, Mapping):
        raise TuningError(f"{source}: a tuning file is a table with {', '.join(TOP_KEYS)}")
    unknown = sorted(set(document) - set(TOP_KEYS))
    if unknown:
        raise TuningError(f"{source}: unknown key '{unknown[0]}' (expected {', '.join(TOP_KEYS)})")
    defaults = _values(document.get("defaults", {}), f"{source}: defaults")
    layers_doc = document.get("layers", {})
    if not isinstance(layers_doc, Mapping):
        raise TuningError(f"{source}: layers must be a table keyed by layer index")
    layers: dict[int, LayerTuning] = {}
    for key, entry in layers_doc.items():
        text = str(key)
        if not text.isdigit():
            raise TuningError(f"{source}: layers.{text}: a layer key is an attention-op index (0, 1, ...)")
        layers[int(text)] = _values(entry, f"{source}: layers.{text}")
    meta = document.get("meta", {})
    if not isinstance(meta, Mapping):
        raise TuningError(f"{source}: meta must be a table")
    return Tuning(defaults, layers, dict(meta))


def load_tuning(path: str | Path) -> Tuning:
    """Read a JSON or TOML tuning file."""
    path = Path(path)
    try:
        document = parse_document(read_text(path), str(path), "TOML" if path.suffix == ".toml" else "JSON")
    except OSError as error:
        raise TuningError(f"{path}: {error.strerror or error}") from None
    except DocumentError as error:
        raise TuningError(str(error)) from None
    return parse_tuning(document, str(path))


def as_tuning(tuning: Tuning | Mapping[str, Any] | str | Path) -> Tuning:
    if isinstance(tuning, Tuning):
        return tuning
    if isinstance(tuning, Mapping):
        return parse_tuning(tuning)
    return load_tuning(tuning)
