"""Per-layer tuning: attach a KV tile and keep ratio to individual attention ops.

`sofa-apply-tuning` marks each listed `sofa.attention` with a `sofa.tuning`
dictionary attribute (``tile``, ``keep``); `sofa-coordinated-tiling` then
uses those values for that op instead of its global options. Layers are the
attention ops in program order, numbered from 0. Values travel in the IR, so
a dumped module shows exactly which layer got which tiling.

Options are ``KEY=VALUE`` lists, comma-separated, e.g.
``sofa-apply-tuning{tiles="0=64,3=128" keeps="0=0.25,1=0.5"}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, FloatAttr, IntegerAttr, ModuleOp, f64, i64
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import DiagnosticException

from dialects.sofa import AttentionOp, TargetAttr, keep_problem, tile_problem
from passes.coordinated_tiling import TUNING_ATTRIBUTE, attention_shape, module_target
from passes.tile_plan import PlanError, plan_sram


def parse_assignments(text: str, what: str) -> dict[int, str]:
    """``"0=64,3=128"`` -> {0: "64", 3: "128"}; clear errors for malformed entries."""
    values: dict[int, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = entry.partition("=")
        if not sep or not key.strip().isdigit() or not value.strip():
            raise DiagnosticException(f"{what}: expected LAYER=VALUE with a layer index, got '{entry}'")
        layer = int(key)
        if layer in values:
            raise DiagnosticException(f"{what}: layer {layer} is given twice")
        values[layer] = value.strip()
    return values


def _layer_value(
    layer: int, name: str, text: str, convert: Callable[[str], Any], kind: str, problem: Callable[[Any], str | None]
) -> Any:
    """One layer's `name` read from `text` with `convert`, checked by the range check `problem`."""
    try:
        value = convert(text)
    except ValueError:
        raise DiagnosticException(f"tuning layer {layer}: {name} must be {kind}, got '{text}'") from None
    if reason := problem(value):
        raise DiagnosticException(f"tuning layer {layer}: {name} {reason}")
    return value


def _tile(layer: int, text: str) -> int:
    return _layer_value(layer, "tile", text, int, "an integer", tile_problem)


def _keep(layer: int, text: str) -> float:
    return _layer_value(layer, "keep", text, float, "a number", keep_problem)


@dataclass(frozen=True)
class ApplyTuningPass(ModulePass):
    """Attach per-layer ``tile`` and ``keep`` values (a `sofa.tuning` attribute) to attention ops.

    Errors name the layer: an index past the model's attention ops, a keep
    ratio outside (0, 1], or a tile larger than the layer's keys or too big
    for the target's SRAM.
    """

    name = "sofa-apply-tuning"

    tiles: str = ""
    keeps: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tiles = {layer: _tile(layer, text) for layer, text in parse_assignments(self.tiles, "tiles").items()}
        keeps = {layer: _keep(layer, text) for layer, text in parse_assignments(self.keeps, "keeps").items()}
        layers = [attention for attention in op.walk() if isinstance(attention, AttentionOp)]
        unknown = [layer for layer in sorted(set(tiles) | set(keeps)) if layer >= len(layers)]
        if unknown:
            raise DiagnosticException(
                f"tuning names layer {unknown[0]}, but the model has {len(layers)} attention layer(s)"
                f" (indices 0..{len(layers) - 1})"
            )
        target = module_target(op)
        for index, attention in enumerate(layers):
            values: dict[str, IntegerAttr | FloatAttr] = {}
            if index in tiles:
                values["tile"] = IntegerAttr(tiles[index], i64)
            if index in keeps:
                values["keep"] = FloatAttr(keeps[index], f64)
            if not values:
                continue
            self.check_fits(attention, index, target, tiles.get(index), keeps.get(index))
            attention.attributes[TUNING_ATTRIBUTE] = DictionaryAttr(values)

    @staticmethod
    def check_fits(
        attention: AttentionOp, index: int, target: TargetAttr, tile: int | None, keep: float | None
    ) -> None:
        """Reject a tile the layer cannot use, naming the layer (the tiling pass would only name the op)."""
        if tile is None:
            return
        shape = attention_shape(attention, keep if keep is not None else 1.0)
        if tile > max(16, shape.kv_len):
            raise DiagnosticException(f"tuning layer {index}: tile {tile} exceeds the layer's {shape.kv_len} keys")
        if keep is None or attention.mask is not None:
            # The SRAM need depends on the keep ratio, and a folded padding mask adds a
            # head-dim column: the tiling pass checks those cases.
            return
        try:
            plan_sram(target, shape, tile)
        except PlanError as error:
            raise DiagnosticException(f"tuning layer {index}: tile {tile} does not fit the target: {error}") from None
