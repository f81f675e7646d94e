"""Kernel DRAM images that stay resident between calls, and the bytes the host writes into them.

Each kernel call site (the n-th kernel call of a graph run, so one site per layer) keeps the
DRAM image of its input symbols from its previous call. A new call writes only the rows
that differ from that image: for a decode step over a resident KV cache, the new token's
K/V row of each head and the query rows; the cache itself is not moved again. The first
call at a site writes every row (a cache that the prefill left in another layout, say).

The functional simulator builds a fresh `Machine` per call and loads its DRAM from these
images (a simulation detail); the figures here are what a resident runtime moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from passes.kernel_interface import Symbol
from passes.lower_to_isa.decode import DecodeSymbol
from sofa_compiler.isa.container import Program
from sofa_compiler.runtime import KernelRunner, StagedOperands, is_decode_kernel

DECODE_CACHE_SYMBOLS = {
    Symbol.K: (DecodeSymbol.K_PREFIX, DecodeSymbol.K_SUFFIX),
    Symbol.V: (DecodeSymbol.V_PREFIX, DecodeSymbol.V_SUFFIX),
}
"""A decode kernel's symbols that hold the shared prefix and each sample's suffix of K or V."""


@dataclass
class SiteImage:
    """The DRAM contents of one call site's input symbols, by symbol name."""

    program: Program
    symbols: dict[str, np.ndarray]


def changed_rows(old: np.ndarray | None, new: np.ndarray) -> int:
    """How many rows of `new` differ from `old` (every row where there is no comparable `old`)."""
    if old is None or old.shape != new.shape or old.dtype != new.dtype:
        return len(new)
    return int(np.count_nonzero(np.any(old.reshape(len(old), -1) != new.reshape(len(new), -1), axis=1)))


@dataclass
class ResidentRunner(KernelRunner):
    """A `KernelRunner` whose kernels' DRAM images persist between graph runs, per call site."""

    images: dict[int, SiteImage] = field(default_factory=dict)
    written_bytes: list[int] = field(default_factory=list)
    """Host-to-DRAM bytes of each call since `start_run` (rows that changed, times their size)."""
    _site: int = 0

    def start_run(self) -> None:
        """A graph run starts: call sites count from 0 again."""
        self._site = 0
        self.runs.clear()
        self.written_bytes.clear()

    def stage(self, name: str, program: Program, operands: StagedOperands) -> dict[str, np.ndarray]:
        staged = super().stage(name, program, operands)
        site = self._site
        self._site += 1
        previous = self.images.get(site)
        same_layout = previous is not None and previous.program is program
        written = 0
        for symbol, rows in staged.items():
            old = previous.symbols.get(symbol) if same_layout and previous is not None else None
            row_bytes = rows.nbytes // max(len(rows), 1)
            written += changed_rows(old, rows) * row_bytes
        self.images[site] = SiteImage(program, staged)
        self.written_bytes.append(written)
        return staged

    def cache(self, site: int, symbol: Symbol, shape: tuple[int, int, int, int]) -> np.ndarray | None:
        """K or V ``[B, H, S, d]`` as call site `site`'s resident image holds it (fp32), or None if it holds none.

        The image keeps each head's rows padded to the kernel's layout, and K may carry more
        columns (a folded key-padding bias): the first S rows and d columns are the cache.
        """
        image = self.images.get(site)
        batch, heads, length, depth = shape
        if image is None:
            return None
        if is_decode_kernel(image.program):
            per_head = decode_image_rows(image, symbol, batch, heads)
        else:
            rows = image.symbols.get(symbol.value)
            fits = rows is not None and not len(rows) % (batch * heads)
            per_head = rows.reshape(batch, heads, -1, rows.shape[1]) if fits and rows is not None else None
        if per_head is None or per_head.shape[2] < length or per_head.shape[3] < depth:
            return None
        return per_head[:, :, :length, :depth].astype(np.float32)


def decode_image_rows(image: SiteImage, symbol: Symbol, batch: int, heads: int) -> np.ndarray | None:
    """K or V ``[B, H, P + S, width]`` from a decode kernel's image: the shared prefix, then each sample's suffix."""
    parts = []
    prefix_symbol, suffix_symbol = DECODE_CACHE_SYMBOLS[symbol]
    if (prefix := image.symbols.get(prefix_symbol.value)) is not None:
        per_head = prefix.reshape(heads, -1, prefix.shape[1])
        parts.append(np.broadcast_to(per_head[None], (batch, *per_head.shape)))
    if (suffix := image.symbols.get(suffix_symbol.value)) is not None:
        parts.append(suffix.reshape(heads, batch, -1, suffix.shape[1]).transpose(1, 0, 2, 3))
    return np.concatenate(parts, axis=2) if parts else None
