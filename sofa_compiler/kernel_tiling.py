"""The tiling each accelerator kernel of a compiled model runs: what reports print beside its figures.

`sofa-lower-to-isa` records it on each `sofa.kernel_call` (``tiling`` and
``segments``), so a model bundle carries it too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from xdsl.ir import Operation

from dialects.sofa import KernelCallOp


@dataclass(frozen=True)
class KernelTiling:
    """Bc (keys per KV tile), Tc (KV tiles per row), n (sub-segments SADS sorts per row) and m (keys kept per tile)."""

    bc: int
    tc: int
    n: int
    m: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"Bc = {self.bc} keys per KV tile, Tc = {self.tc} KV tiles, n = {self.n} SADS sub-segments per row,"
            f" m = {self.m} keys kept per tile"
        )


def kernel_tilings(host: Operation) -> dict[str, KernelTiling]:
    """``{kernel: tiling}`` of every `sofa.kernel_call` in `host` that records one."""
    tilings = {}
    for op in host.walk():
        if not isinstance(op, KernelCallOp) or op.tiling is None or op.segments is None:
            continue
        tiling = op.tiling
        tilings[op.kernel.data] = KernelTiling(
            tiling.tile.data, tiling.kv_tiles.data, op.segments.value.data, tiling.keep_count.data
        )
    return tilings
