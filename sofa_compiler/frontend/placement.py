"""Where each attention node of a model runs: the accelerator, or the host and why.

The importer records one `Placement` per ONNX attention node (an `Attention`
operator, a matched decomposed core, or a Softmax outside every recognised
pattern) as the module attribute `PLACEMENTS_ATTR`, which survives the passes
and the bundle's MLIR text. The driver pairs the accelerator entries, in
order, with the kernels the lowering names ``attn0``, ``attn1``, ...
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr

PLACEMENTS_ATTR = "sofa.placements"
"""Module attribute: ``[{node = "...", host = "<reason>"}, {node = "...", note = "..."}, ...]`` (no ``host``: the
accelerator; ``note``: what host ops compute beside it)."""


@dataclass(frozen=True)
class Placement:
    node: str
    """The ONNX node name (for a decomposed core, its Softmax's)."""
    host_reason: str | None = None
    """Why the node runs on the host; None when the accelerator runs it."""
    kernel: str | None = None
    """The accelerator kernel, once the driver knows it."""
    note: str | None = None
    """What host ops compute beside the attention (an extra output such as the scores), or None."""

    def line(self) -> str:
        if self.host_reason is not None:
            where = f"host ({self.host_reason})"
        else:
            where = f"accelerator (kernel {self.kernel or '?'})"
        return f"attention {self.node}: {where}" + (f"; {self.note}" if self.note else "")

    def to_dict(self) -> dict[str, str]:
        if self.host_reason is not None:
            entry = {"node": self.node, "where": "host", "reason": self.host_reason}
        else:
            entry = {"node": self.node, "where": "accelerator", "kernel": self.kernel or ""}
        return entry | ({"note": self.note} if self.note else {})


def placements_attr(placements: list[Placement]) -> ArrayAttr[DictionaryAttr]:
    entries = []
    for placement in placements:
        fields = {"node": StringAttr(placement.node)}
        if placement.host_reason is not None:
            fields["host"] = StringAttr(placement.host_reason)
        if placement.note is not None:
            fields["note"] = StringAttr(placement.note)
        entries.append(DictionaryAttr(fields))
    return ArrayAttr(entries)


def read_placements(module: ModuleOp, kernels: list[str]) -> list[Placement]:
    """The module's placements, the accelerator ones paired in order with `kernels` (the kernel calls' names)."""
    attr = module.attributes.get(PLACEMENTS_ATTR)
    if not isinstance(attr, ArrayAttr):
        return []
    placements = []
    remaining = iter(kernels)
    for entry in attr.data:
        if not isinstance(entry, DictionaryAttr):
            continue
        node, host, note = (entry.data.get(key) for key in ("node", "host", "note"))
        name = node.data if isinstance(node, StringAttr) else "?"
        text = note.data if isinstance(note, StringAttr) else None
        if isinstance(host, StringAttr):
            placements.append(Placement(name, host.data, note=text))
        else:
            placements.append(Placement(name, None, next(remaining, None), note=text))
    return placements
