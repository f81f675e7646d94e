"""Tile-level mask analysis: which (query tile, KV tile) pairs of an attention mask are empty, full or partial.

A mask is seen by the accelerator one (query tile of ``lanes`` rows, KV tile of
``tile`` keys) pair at a time. A pair is *empty* when no real query of the tile
sees a real key of it (the kernel never visits it), *full* when every real query
sees every real key (no bitmap needed), and *partial* otherwise. Rows past
``q_len`` and keys past ``kv_len`` are padding and never count: SADS already
hides keys past ``kv_len``.

`TileMask` holds the answer as a block-sparse (BSR) structure: per query tile
the ascending KV tiles it visits (``row_ptr``/``col_idx``), which of them are
partial, and the density of each query tile. It is built

* from a boolean mask ``[Sq, Skv]`` (`tile_mask_of_array`), with one pass of
  block reductions over the mask (no per-tile Python loop), or
* from a closed form (`BandMask`: causal top-left / bottom-right, sliding
  window ``(left, right)``, dilated), without materialising the mask
  (`tile_mask_of_band`).

`tile_bitmap` packs one pair's mask into the bitmap SADS reads (docs/isa.md,
``sads.mask``): row r, key c at byte ``r * ceil(tile / 8) + c // 8``, bit ``c % 8``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

UNBOUNDED = 1 << 30
"""A window side that reaches every key (causal's ``left``); it fits the hardware's 32-bit fields."""

ALIGNMENTS = ("top-left", "bottom-right")
"""Where a causal or window mask's diagonal starts: query i sees key i (top-left, ONNX before opset 25's errata,
torch's default) or key ``i + Skv - Sq`` (bottom-right: the last query sees the last key)."""


class MaskError(ValueError):
    """A mask the analysis cannot describe; the message says why."""


@dataclass(frozen=True)
class BandMask:
    """A structured mask: query i sees key j when ``-left <= j - (i + offset) <= right`` and
    ``(j - (i + offset)) % dilation == 0``.

    Causal top-left is ``BandMask(UNBOUNDED, 0)``; bottom-right alignment sets ``offset = Skv - Sq``;
    a sliding window of ``w`` keys is ``left = w - 1, right = 0``; ``dilation > 1`` keeps every
    ``dilation``-th key of the band (a dilated pattern).
    """

    left: int
    right: int
    offset: int = 0
    dilation: int = 1

    def __post_init__(self) -> None:
        if self.left < 0 or self.right < 0:
            raise MaskError(f"window sides must be >= 0, got left = {self.left}, right = {self.right}")
        if self.dilation < 1:
            raise MaskError(f"dilation must be >= 1, got {self.dilation}")

    @classmethod
    def causal(cls, q_len: int, kv_len: int, alignment: str = "top-left") -> BandMask:
        return cls.window(q_len, kv_len, UNBOUNDED, 0, alignment)

    @classmethod
    def window(cls, q_len: int, kv_len: int, left: int, right: int, alignment: str = "top-left") -> BandMask:
        """Keys ``i - left .. i + right`` around the (aligned) diagonal; a side < 0 is unbounded (ONNX's -1)."""
        if alignment not in ALIGNMENTS:
            raise MaskError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got '{alignment}'")
        offset = kv_len - q_len if alignment == "bottom-right" else 0
        return cls(UNBOUNDED if left < 0 else left, UNBOUNDED if right < 0 else right, offset)

    def visible(self, rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``[len(rows), len(keys)]`` booleans: which keys each query row sees."""
        delta = keys[None, :].astype(np.int64) - (rows[:, None].astype(np.int64) + self.offset)
        seen = (delta >= -self.left) & (delta <= self.right)
        return seen & (delta % self.dilation == 0) if self.dilation > 1 else seen

    def dense(self, q_len: int, kv_len: int) -> np.ndarray:
        """The whole ``[Sq, Skv]`` boolean mask (for tests and small problems)."""
        return self.visible(np.arange(q_len), np.arange(kv_len))


@dataclass(frozen=True)
class TileMask:
    """A mask's tile structure for query tiles of ``lanes`` rows and KV tiles of ``tile`` keys.

    ``row_ptr`` ``[Tq + 1]`` and ``col_idx`` ``[nnz]`` list each query tile's non-empty KV
    tiles in ascending order (BSR); ``partial`` ``[nnz]`` flags those that need a bitmap;
    ``density`` ``[Tq]`` is the fraction of (real query, real key) pairs each query tile sees.
    """

    lanes: int
    tile: int
    q_len: int
    kv_len: int
    row_ptr: np.ndarray
    col_idx: np.ndarray
    partial: np.ndarray
    density: np.ndarray

    @property
    def query_tiles(self) -> int:
        return len(self.row_ptr) - 1

    @property
    def kv_tiles(self) -> int:
        return -(-self.kv_len // self.tile)

    def tiles(self, query_tile: int) -> np.ndarray:
        """The ascending KV tiles query tile `query_tile` visits."""
        return self.col_idx[self.row_ptr[query_tile] : self.row_ptr[query_tile + 1]]

    def partial_tiles(self, query_tile: int) -> np.ndarray:
        """The visited KV tiles of `query_tile` that are partial (need a bitmap)."""
        span = slice(self.row_ptr[query_tile], self.row_ptr[query_tile + 1])
        return self.col_idx[span][self.partial[span]]

    @property
    def visited(self) -> int:
        """Non-empty (query tile, KV tile) pairs: the tile steps a kernel over this mask runs."""
        return len(self.col_idx)

    @property
    def partial_count(self) -> int:
        return int(np.count_nonzero(self.partial))

    @property
    def block_density(self) -> float:
        """Visited pairs over all ``Tq * Tc`` pairs."""
        return self.visited / (self.query_tiles * self.kv_tiles)

    @property
    def overall_density(self) -> float:
        """Visible (query, key) pairs over ``Sq * Skv``."""
        rows = np.minimum(self.lanes, self.q_len - self.lanes * np.arange(self.query_tiles))
        return float(np.sum(self.density * rows) / self.q_len)

    def counts(self) -> np.ndarray:
        """Visited KV tiles per query tile, ``[Tq]``."""
        return np.diff(self.row_ptr)


def _check_tiling(q_len: int, kv_len: int, lanes: int, tile: int) -> None:
    for name, value in (("q_len", q_len), ("kv_len", kv_len), ("lanes", lanes), ("tile", tile)):
        if value < 1:
            raise MaskError(f"{name} must be >= 1, got {value}")


def _from_counts(counts: np.ndarray, q_len: int, kv_len: int, lanes: int, tile: int) -> TileMask:
    """A `TileMask` from the visible-pair count of every (query tile, KV tile) pair ``[Tq, Tc]``."""
    query_tiles, kv_tiles = counts.shape
    rows = np.minimum(lanes, q_len - lanes * np.arange(query_tiles))
    keys = np.minimum(tile, kv_len - tile * np.arange(kv_tiles))
    nonempty = counts > 0
    full = counts == rows[:, None] * keys[None, :]
    row_ptr = np.zeros(query_tiles + 1, np.int64)
    np.cumsum(np.count_nonzero(nonempty, axis=1), out=row_ptr[1:])
    _, col_idx = np.nonzero(nonempty)  # row-major: ascending KV tiles within each query tile
    partial = ~full[nonempty]
    density = counts.sum(axis=1) / (rows * kv_len)
    return TileMask(lanes, tile, q_len, kv_len, row_ptr, col_idx.astype(np.int32), partial, density)


def _group_tile_counts(mask: np.ndarray, rows_per_group: int, tile: int) -> np.ndarray:
    """Visible pairs of each (group of `rows_per_group` rows, KV tile): ``[ceil(Sq / g), Tc]`` int64, in one
    pass over the mask.

    The rows of each group are added key by key first, as bytes (a count <= g <= 255 fits; wider groups
    add in int64): a reduction over whole rows, which numpy vectorises, leaving a mask ``g`` times
    smaller whose keys are then added per tile.
    """
    q_len, kv_len = mask.shape
    groups, kv_tiles = -(-q_len // rows_per_group), -(-kv_len // tile)
    dtype = np.uint8 if rows_per_group <= 255 else np.int64
    whole = q_len // rows_per_group
    per_key = np.zeros((groups, kv_tiles * tile), dtype)
    rows = mask.view(np.uint8)
    per_key[:whole, :kv_len] = np.add.reduce(
        rows[: whole * rows_per_group].reshape(whole, rows_per_group, kv_len), axis=1, dtype=dtype
    )
    if whole < groups:
        per_key[whole, :kv_len] = rows[whole * rows_per_group :].sum(axis=0, dtype=dtype)
    return per_key.reshape(groups, kv_tiles, tile).sum(axis=2, dtype=np.int64)


def _row_counts(mask: np.ndarray) -> np.ndarray:
    """Kept keys of each row, ``[Sq]`` int64.

    Fast path (a contiguous mask, Skv a multiple of 8): the booleans are read as uint64 words of 8
    bytes and added in runs of at most 255 words (each byte lane then holds a count <= 255, so no
    carry crosses lanes); the 8 byte lanes of each run's sum are then added.
    """
    kv_len = mask.shape[1]
    if kv_len % 8 or not mask.flags.c_contiguous:
        return np.count_nonzero(mask, axis=1).astype(np.int64)
    words = mask.view(np.uint64)
    runs = np.add.reduceat(words, np.arange(0, words.shape[1], 255), axis=1)
    return _add_byte_lanes(runs).sum(axis=1)


_LOW_BYTES = np.uint64(0x00FF00FF00FF00FF)


def _add_byte_lanes(words: np.ndarray) -> np.ndarray:
    """The sum of the 8 byte lanes of each uint64 word (each lane <= 255): pairs of lanes become 16-bit
    lanes (<= 510), whose sum (<= 2040) one multiply gathers in the top 16 bits."""
    pairs = (words & _LOW_BYTES) + ((words >> np.uint64(8)) & _LOW_BYTES)
    return ((pairs * np.uint64(0x0001000100010001)) >> np.uint64(48)).astype(np.int64)


def boolean_masks(mask: np.ndarray) -> np.ndarray:
    """A mask as booleans ``[B', H', Sq, Skv]`` (keep where true; B' and H' are 1 where it broadcasts).

    `MaskError` for additive masks with finite non-zero entries (a bias, not a mask), other dtypes,
    or a rank above 4.
    """
    mask = np.asarray(mask)
    if mask.ndim > 4:
        raise MaskError(f"a mask has rank at most 4, got shape {list(mask.shape)}")
    mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
    if mask.dtype == np.bool_:
        return mask
    if not np.issubdtype(mask.dtype, np.floating):
        raise MaskError(f"a mask must be boolean or additive float, got dtype {mask.dtype}")
    hidden = np.isneginf(mask)
    if np.isnan(mask).any() or np.any(mask[~hidden] != 0):
        raise MaskError("an additive mask with entries other than 0 and -inf is a bias, not a mask")
    return ~hidden


def boolean_mask(mask: np.ndarray) -> np.ndarray:
    """A mask as booleans ``[Sq, Skv]`` (keep where true): boolean as is, additive ``-inf`` entries hidden.

    Leading dimensions of size 1 are dropped. `MaskError` for masks that differ per batch or head,
    and as `boolean_masks`.
    """
    masks = boolean_masks(mask)
    if masks.shape[:2] != (1, 1):
        raise MaskError(f"the mask must be the same for every batch and head (shape {list(np.shape(mask))})")
    return masks[0, 0]


def tile_mask_of_array(mask: np.ndarray, lanes: int, tile: int) -> TileMask:
    """The tile structure of a boolean (or 0/-inf additive) mask ``[Sq, Skv]`` (broadcast rows allowed:
    a ``[1, Skv]`` mask is the same for every query)."""
    (tm,) = tile_masks_of_array(mask, (lanes,), tile)
    return tm


def tile_masks_of_array(mask: np.ndarray, lanes: Sequence[int], tile: int) -> tuple[TileMask, ...]:
    """`tile_mask_of_array` for each query tile height of `lanes` at once, from one pass over the mask: the
    pair counts of row groups of the heights' greatest common divisor, added up per height."""
    mask = np.ascontiguousarray(boolean_mask(mask))
    q_len, kv_len = mask.shape
    for each in lanes:
        _check_tiling(q_len, kv_len, each, tile)
    group = math.gcd(*lanes)
    group_counts = _group_tile_counts(mask, group, tile)
    out = []
    for each in lanes:
        per_tile = each // group
        query_tiles = -(-q_len // each)
        padded = np.zeros((query_tiles * per_tile, group_counts.shape[1]), np.int64)
        padded[: len(group_counts)] = group_counts
        counts = padded.reshape(query_tiles, per_tile, -1).sum(axis=1)
        out.append(_from_counts(counts, q_len, kv_len, each, tile))
    return tuple(out)


def tile_mask_of_band(band: BandMask, q_len: int, kv_len: int, lanes: int, tile: int) -> TileMask:
    """The tile structure of a closed-form mask, never building the ``[Sq, Skv]`` mask.

    Per query tile only the KV tiles that meet the band are examined, all at once: a plain band's pairs
    are counted in closed form, a dilated one's on the (lanes x tile) pairs of those tiles.
    """
    _check_tiling(q_len, kv_len, lanes, tile)
    query_tiles, kv_tiles = -(-q_len // lanes), -(-kv_len // tile)
    counts = np.zeros((query_tiles, kv_tiles), np.int64)
    for query_tile in range(query_tiles):
        first_row = query_tile * lanes
        rows = np.arange(first_row, min(q_len, first_row + lanes), dtype=np.int64)
        low = max(0, first_row + band.offset - band.left)
        high = min(kv_len - 1, int(rows[-1]) + band.offset + band.right)
        if low > high:
            continue
        first, last = low // tile, high // tile
        counts[query_tile, first : last + 1] = _band_pairs(band, rows, first, last, tile, kv_len)
    return _from_counts(counts, q_len, kv_len, lanes, tile)


def _band_pairs(band: BandMask, rows: np.ndarray, first: int, last: int, tile: int, kv_len: int) -> np.ndarray:
    """Visible pairs of `rows` x each KV tile ``first..last``, ``[last - first + 1]``."""
    bounds = np.minimum(np.arange(first, last + 2, dtype=np.int64) * tile, kv_len)
    if band.dilation > 1:
        seen = band.visible(rows, np.arange(bounds[0], bounds[-1])).sum(axis=0)
        return np.add.reduceat(seen, bounds[:-1] - bounds[0])
    centre = rows + band.offset
    low = np.maximum(centre - band.left, 0)
    width = np.maximum(np.minimum(centre + band.right, kv_len - 1) - low + 1, 0)
    # Keys before each bound that each row sees, summed over the rows: its differences count per tile.
    before = np.clip(bounds[None, :] - low[:, None], 0, width[:, None]).sum(axis=0)
    return np.diff(before)


def band_block(band: BandMask, query_tile: int, kv_tile: int, lanes: int, tile: int) -> np.ndarray:
    """One pair's ``[lanes, tile]`` booleans of a closed-form mask (padding rows and keys included)."""
    rows = np.arange(query_tile * lanes, (query_tile + 1) * lanes)
    return band.visible(rows, np.arange(kv_tile * tile, (kv_tile + 1) * tile))


def array_block(mask: np.ndarray, query_tile: int, kv_tile: int, lanes: int, tile: int) -> np.ndarray:
    """One pair's ``[lanes, tile]`` booleans of a ``[Sq, Skv]`` mask, padding (past the mask) hidden."""
    block = np.zeros((lanes, tile), bool)
    part = mask[query_tile * lanes : (query_tile + 1) * lanes, kv_tile * tile : (kv_tile + 1) * tile]
    block[: part.shape[0], : part.shape[1]] = part
    return block


def tile_bitmap(block: np.ndarray) -> np.ndarray:
    """Pack a ``[lanes, tile]`` boolean block into SADS's bitmap: ``[lanes, ceil(tile / 8)]`` uint8, bit c % 8."""
    return np.packbits(np.asarray(block, bool), axis=1, bitorder="little")


def bitmap_valid(bitmap: np.ndarray, lanes: int, tile: int) -> np.ndarray:
    """Unpack a SADS bitmap (`tile_bitmap`'s layout) to ``[lanes, tile]`` booleans."""
    return np.unpackbits(bitmap.reshape(lanes, -1), axis=1, count=tile, bitorder="little").astype(bool)


SAMPLED_ROWS = 64
"""Rows `detect_band` checks first: a mask with a row of several key runs is no band."""


def _sampled_rows_are_runs(mask: np.ndarray) -> bool:
    """Whether evenly spaced rows each keep at most one contiguous run of keys."""
    rows = mask[np.linspace(0, mask.shape[0] - 1, min(SAMPLED_ROWS, mask.shape[0])).astype(np.int64)]
    starts = np.count_nonzero(rows[:, 1:] & ~rows[:, :-1], axis=1) + rows[:, 0]
    return bool(np.all(starts <= 1))


def _run_ends(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first and last kept key (0 and Skv - 1 for an empty row; callers test the counts).

    Scans eight keys per step where the rows allow it (a contiguous mask, Skv a multiple of 8):
    the first and last non-zero 64-bit word, then the byte inside it.
    """
    q_len, kv_len = mask.shape
    if kv_len % 8 or not mask.flags.c_contiguous:
        return np.argmax(mask, axis=1), kv_len - 1 - np.argmax(mask[:, ::-1], axis=1)
    words = mask.view(np.uint64)
    nonzero = words != 0
    rows = np.arange(q_len)
    first_word = np.argmax(nonzero, axis=1)
    last_word = words.shape[1] - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    first_bytes = mask[rows[:, None], first_word[:, None] * 8 + np.arange(8)]
    last_bytes = mask[rows[:, None], last_word[:, None] * 8 + np.arange(8)]
    first = first_word * 8 + np.argmax(first_bytes, axis=1)
    last = last_word * 8 + 7 - np.argmax(last_bytes[:, ::-1], axis=1)
    return first, last


def detect_band(mask: np.ndarray) -> BandMask | None:
    """The closed form of a boolean ``[Sq, Skv]`` mask when it is a (non-dilated) band, else None.

    Each row must keep one contiguous run of keys; the run's ends must follow the diagonal of a
    top-left or bottom-right alignment, clipped to ``[0, Skv)``. Linear in the mask (three reductions);
    a side that reaches every key is `UNBOUNDED`.
    """
    mask = boolean_mask(mask)
    q_len, kv_len = mask.shape
    if not _sampled_rows_are_runs(mask):
        return None  # cheap rejection of scattered masks before the full scans
    counts = _row_counts(mask)
    if not counts.any():
        return None
    first, last = _run_ends(mask)
    kept = counts > 0
    if np.any(counts[kept] != last[kept] - first[kept] + 1):
        return None  # a row keeps more than one run of keys
    rows = np.arange(q_len)
    for offset in sorted({0, kv_len - q_len}, key=abs):
        centre = rows + offset
        left = int(np.max((centre - first)[kept]))
        right = int(np.max((last - centre)[kept]))
        if left < 0 or right < 0:
            continue
        band = BandMask(
            UNBOUNDED if left >= kv_len + abs(offset) else left,
            UNBOUNDED if right >= kv_len + abs(offset) else right,
            offset,
        )
        low = np.maximum(centre - band.left, 0)
        high = np.minimum(centre + band.right, kv_len - 1)
        expected_counts = np.maximum(high - low + 1, 0)
        if np.array_equal(expected_counts, counts) and np.array_equal(low[kept], first[kept]):
            return band
    return None
