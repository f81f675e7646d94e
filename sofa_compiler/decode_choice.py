"""The driver's choice of decode lowering: the cost model (`decode_cost.choose_lowering`) per decode step.

`sofa-coordinated-tiling` marks each one-query attention with a `#sofa.decode`; with
``DecodeOptions(lowering="auto")`` the driver then replaces each mark's lowering by the one
the cost model predicts faster for that step on the compile's hardware config, so the
choice shows in the tiled IR; a sparse mark (keep < 1) stays sparse. (The pass cannot call the
cost model itself: it lives above the passes and needs the whole config, energy and costs
included, not only the target.)
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp

from dialects.sofa import SPARSE_DECODE, AttentionOp, DecodeAttr
from passes.coordinated_tiling import DECODE_ATTRIBUTE
from passes.lower_to_isa.decode import DecodeLowering
from passes.lower_to_isa.lower import decode_step
from sofa_compiler.decode_cost import choose_lowering, estimate
from sofa_compiler.sim.config import HardwareConfig

AUTO = "auto"
"""`DecodeOptions.lowering` that lets the cost model choose per step."""


@dataclass(frozen=True)
class DecodeChoice:
    """The cost model's pick for one decode step, and both lowerings' predicted cycles and DRAM bytes."""

    lowering: str
    predicted: dict[str, tuple[int, int]]
    """Lowering -> (cycles, DRAM bytes)."""

    def to_dict(self) -> dict[str, object]:
        return {"lowering": self.lowering, "predicted": {k: list(v) for k, v in self.predicted.items()}}


def choose_decode_lowerings(module: ModuleOp, config: HardwareConfig) -> list[DecodeChoice]:
    """Set each `#sofa.decode` mark of `module` to the cost model's choice; the choices, in IR order."""
    choices = []
    for op in module.walk():
        decode = op.attributes.get(DECODE_ATTRIBUTE)
        if not isinstance(op, AttentionOp) or not isinstance(decode, DecodeAttr):
            continue
        if decode.lowering.data == SPARSE_DECODE:  # keep < 1: no dense lowering to choose
            continue
        step, tile = decode_step(op, decode), decode.tile.data
        best = choose_lowering(step, config, tile)
        guesses = (estimate(step, lowering, config, tile) for lowering in DecodeLowering)
        predicted = {guess.lowering.value: (guess.cycles, guess.dram_bytes) for guess in guesses}
        op.attributes[DECODE_ATTRIBUTE] = DecodeAttr(best.lowering.value, decode.prefix.data, tile)
        choices.append(DecodeChoice(best.lowering.value, predicted))
    return choices
