"""The coordinated kernel under a general attention mask: each query tile visits only its non-empty KV tiles.

The ISA has no branches, so the kernel does not test and skip tiles: it walks a constant index list
(the ``masktab`` symbol, i32 words), one per query tile, with `tload` (rd = rs + table word) and `loopr`:

    rounds                       whole rounds of G tiles (G: the buffer sets)
    rounds * G entries           key base, K-hat offset, bitmap offset, 0 (`MASK_ENTRY_BYTES`)
    c_0 [entry], ..., c_{G-2} [entry]    the tiles left over: c_j = 1 when slot j runs, then its entry

    loopr rounds { G x (tload entry; tile step) }
    G - 1 x (tload c_j; loopr c_j { tload entry; tile step j })

A mask shared by every head restarts the walk at each query head; where the mask differs per batch
element or head, the lists of every (batch element, query head) follow one another in loop order. Formats
(`#sofa.tile_mask`, chosen by `mask_model`):

* ``closed``: SADS evaluates the band on chip (`sads.band`); no bitmaps;
* ``bsr``: partial tiles load their bitmap (``maskbits``) before K-hat, on the prefetch queue, and SADS
  reads it (`sads.mask`); full tiles read the shared all-ones bitmap at offset 0. Without partial
  tiles, plain `sads` and no bitmap loads;
* ``bitmap``: no list; every KV tile is visited with its own bitmap, laid out tile after tile, so
  the bitmap address just steps.

SADS never selects a masked key, so SU-FA needs no mask: its result over the selection is the masked
attention, and a row whose keys are all masked gives zeros (`numerics.sufa_finish`).

A run-time additive mask (`MaskedAttention.biased`) walks the same launch-built lists, but each entry's
third word is the byte offset of the pair's fp32 bias tile ``[lanes, Bc]`` (``maskbias``; -inf where the
mask, the causal flag or padding hides a key; identical tiles stored once). Every visited tile loads its
bias tile on the prefetch queue before K-hat (no all-zero skip: that would take a `loopr` per tile);
`sads.bias` ranks ``cap(scale A-hat) + bias`` and `sufa.bias` adds the bias to the exact scores. SU-FA
reads the bias tile after SADS has freed K-hat, so the bias load waits for the buffer set's `Sem.KV_FREE`
(SU-FA done with it) and SADS, which follows it through K-hat and DLZS, no longer does.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field

import numpy as np
from xdsl.dialects.builtin import ArrayAttr

from dialects.numerics import MaskError, TileMask, boolean_masks, tile_bitmap, tile_mask_of_array
from dialects.numerics.tile_masks import array_block
from dialects.sofa_isa import SegmentAttr, Sram
from passes.kernel_interface import KernelInterface, KernelKind, Symbol, SymbolKind
from passes.lower_to_isa.coordinated import CoordinatedKernel
from passes.lower_to_isa.emitter import LoadQueue
from passes.lower_to_isa.kernel import TileBuffers
from passes.lower_to_isa.registers import CoordinatedReg as CReg
from passes.lower_to_isa.registers import Reg, Sem
from passes.mask_model import MASK_ENTRY_BYTES, bitmap_bytes
from passes.masked_attention import LAUNCH_FORMAT, MaskedAttention
from passes.tile_plan import BIAS_BYTES, KV_BUFFER_SETS, AttentionShape, RegionKind

BAND_FIELD_MAX = (1 << 24) - 1
"""`sads.band`'s left/right fields (24 bits): a wider side is clipped to it, the same band for sequences of up to
16M keys."""

WORD = 4


@dataclass(frozen=True)
class MaskTables:
    """A masked kernel's constant DRAM data: the index lists (i32 words) and the bitmaps (bytes)."""

    words: np.ndarray
    bitmaps: np.ndarray
    bias: np.ndarray | None = None
    """A run-time additive mask's fp32 bias tiles (then `bitmaps` is empty)."""


def index_lists(tm: TileMask, group: int, bitmap_offsets: dict[tuple[int, int], int], depth: int) -> np.ndarray:
    """The ``masktab`` words of every query tile of `tm`, in the layout of the module docstring."""
    tile = tm.tile
    words: list[int] = []

    def entry(query_tile: int, kv_tile: int) -> list[int]:
        key_base = kv_tile * tile
        return [key_base, key_base * depth * 2, bitmap_offsets.get((query_tile, kv_tile), 0), 0]

    for query_tile in range(tm.query_tiles):
        tiles = tm.tiles(query_tile).tolist()
        rounds, rest = divmod(len(tiles), group)
        words.append(rounds)
        for kv_tile in tiles[: rounds * group]:
            words += entry(query_tile, kv_tile)
        for slot in range(group - 1):
            words.append(int(slot < rest))
            if slot < rest:
                words += entry(query_tile, tiles[rounds * group + slot])
    return np.asarray(words, dtype="<i4")


class BitmapStore:
    """The ``maskbits`` image: an all-ones bitmap (full tiles) first, then each distinct partial tile's bitmap."""

    def __init__(self, lanes: int, tile: int):
        self.lanes, self.tile = lanes, tile
        self.stored = {tile_bitmap(np.ones((lanes, tile), bool)).tobytes(): 0}

    def partial_bitmaps(self, tm: TileMask, mask: np.ndarray) -> dict[tuple[int, int], int]:
        """Store the bitmaps of `tm`'s partial tiles (of the ``[Sq, Skv]`` `mask`); their byte offsets."""
        offsets: dict[tuple[int, int], int] = {}
        for query_tile in range(tm.query_tiles):
            for kv_tile in tm.partial_tiles(query_tile).tolist():
                bits = tile_bitmap(array_block(mask, query_tile, kv_tile, self.lanes, self.tile)).tobytes()
                offsets[query_tile, kv_tile] = self.stored.setdefault(bits, len(self.stored) * len(bits))
        return offsets

    def image(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.stored), np.uint8)


def dense_bitmaps(mask: np.ndarray, lanes: int, tile: int) -> np.ndarray:
    """Every (query tile, KV tile) pair's bitmap, query tile after query tile, KV tiles in order."""
    q_len, kv_len = mask.shape
    query_tiles, kv_tiles = -(-q_len // lanes), -(-kv_len // tile)
    padded = np.zeros((query_tiles * lanes, kv_tiles * tile), bool)
    padded[:q_len, :kv_len] = mask
    blocks = padded.reshape(query_tiles, lanes, kv_tiles, tile).transpose(0, 2, 1, 3)
    return np.packbits(blocks, axis=3, bitorder="little").reshape(-1)


def walk_order(shared: bool, batch: int, q_heads: int) -> list[tuple[int, int]]:
    """The (batch element, query head) pairs with their own index lists, in the kernel's loop order."""
    if shared:
        return [(0, 0)]
    return [(b, h) for b in range(batch) for h in range(q_heads)]


def listed_tables(
    masks: list[tuple[np.ndarray, TileMask]], lanes: int, tile: int, group: int, depth: int, bitmaps: bool
) -> MaskTables:
    """The index lists (and, with `bitmaps`, the partial tiles' bitmaps) of each (batch element, query head)'s
    ``[Sq, Skv]`` mask and its tile structure, in the kernel's loop order: the lists one after another,
    the bitmaps shared."""
    store, words = BitmapStore(lanes, tile), []
    for mask, tm in masks:
        offsets = store.partial_bitmaps(tm, mask) if bitmaps else {}
        words.append(index_lists(tm, group, offsets, depth))
    return MaskTables(np.concatenate(words), store.image())


@dataclass(frozen=True)
class LaunchGeometry:
    """What the host needs to build a run-time mask's tables (the ``maskgeom`` words, in this order): the
    query and KV tile, the kernel's buffer sets per round (`MaskedKernel.group`), the head depth, the causal
    flag, the mask's batch and head extents (B', H') and whether the mask is additive (bias tiles, not bitmaps)."""

    lanes: int
    tile: int
    group: int
    depth: int
    causal: int
    mask_batch: int
    mask_heads: int
    biased: int = 0

    def words(self) -> np.ndarray:
        """The ``maskgeom`` words; a boolean mask's kernel has no eighth (biased) word."""
        words = astuple(self)
        return np.asarray(words if self.biased else words[:-1], "<i4")

    @staticmethod
    def of_words(words: np.ndarray) -> LaunchGeometry:
        return LaunchGeometry(*(int(w) for w in np.asarray(words).reshape(-1)))

    def walks(self, batch: int, q_heads: int) -> list[tuple[int, int]]:
        return walk_order((self.mask_batch, self.mask_heads) == (1, 1), batch, q_heads)

    def worst_case(self, shape: AttentionShape) -> tuple[int, int]:
        """The table words and the bitmap bytes (fp32 bias entries where `biased`) when every tile is non-empty
        and partial (and no tile repeats)."""
        query_tiles, kv_tiles = -(-shape.q_len // self.lanes), -(-shape.kv_len // self.tile)
        walks = len(self.walks(shape.batch, shape.q_heads))
        # Per query tile: the round count, a 4-word entry per tile and a count per leftover slot.
        words = walks * query_tiles * (MASK_ENTRY_BYTES // WORD * kv_tiles + self.group)
        if self.biased:
            return words, walks * query_tiles * kv_tiles * self.lanes * self.tile
        bitmaps = (1 + walks * query_tiles * kv_tiles) * bitmap_bytes(self.lanes, self.tile)
        return words, bitmaps

    def broadcast(self, mask: np.ndarray, q_len: int, kv_len: int) -> np.ndarray:
        """`mask` ``[B', H', Sq, Skv]`` (rank 4) broadcast to the compiled extents; `MaskError` if it does not fit."""
        extents = (self.mask_batch, self.mask_heads, q_len, kv_len)
        try:
            if mask.shape[:2] != extents[:2]:
                raise ValueError
            return np.broadcast_to(mask, extents)
        except ValueError:
            raise MaskError(
                f"the mask has shape {list(np.shape(mask))}; the kernel was compiled for masks of {list(extents)}"
            ) from None

    def head(self, masks: np.ndarray, batch: int, head: int) -> np.ndarray:
        """The ``[Sq, Skv]`` mask of one (batch element, query head) of broadcast `masks`."""
        return np.ascontiguousarray(masks[batch if self.mask_batch > 1 else 0, head if self.mask_heads > 1 else 0])


def launch_tables(
    geometry: LaunchGeometry, mask: np.ndarray, batch: int, q_heads: int, q_len: int, kv_len: int
) -> MaskTables:
    """A run-time mask's tables, built by the host at launch from the actual mask (broadcastable to
    ``[B, Hq, Sq, Skv]`` with the compiled extents): boolean or 0/-inf (`MaskError` for other masks), or, for
    a biased kernel, any float mask (`launch_bias_tables`)."""
    if geometry.biased:
        return launch_bias_tables(geometry, mask, batch, q_heads, q_len, kv_len)
    visible = geometry.broadcast(boolean_masks(mask), q_len, kv_len)
    if geometry.causal:
        visible = visible & np.tri(q_len, kv_len, dtype=bool)
    heads = []
    for b, h in geometry.walks(batch, q_heads):
        head = geometry.head(visible, b, h)
        heads.append((head, tile_mask_of_array(head, geometry.lanes, geometry.tile)))
    return listed_tables(heads, geometry.lanes, geometry.tile, geometry.group, geometry.depth, bitmaps=True)


def launch_bias_tables(
    geometry: LaunchGeometry, mask: np.ndarray, batch: int, q_heads: int, q_len: int, kv_len: int
) -> MaskTables:
    """A run-time additive mask's index lists and fp32 bias tiles: its -inf entries (and the causal flag) hide
    keys, which decides the tiles visited as a boolean mask would; its finite entries are the bias."""
    values = np.asarray(mask)
    if values.ndim > 4:
        raise MaskError(f"a mask has rank at most 4, got shape {list(values.shape)}")
    if values.dtype == np.bool_:
        values = np.where(values, 0.0, -np.inf)
    if not np.issubdtype(values.dtype, np.floating):
        raise MaskError(f"a mask must be boolean or additive float, got dtype {values.dtype}")
    values = geometry.broadcast(values.reshape((1,) * (4 - values.ndim) + values.shape), q_len, kv_len)
    bias = values.astype(np.float32)
    if geometry.causal:
        bias = np.where(np.tri(q_len, kv_len, dtype=bool), bias, np.float32(-np.inf))
    store, words = BiasStore(geometry.lanes, geometry.tile), []
    for b, h in geometry.walks(batch, q_heads):
        head = geometry.head(bias, b, h)
        tm = tile_mask_of_array(~np.isneginf(head), geometry.lanes, geometry.tile)
        words.append(index_lists(tm, geometry.group, store.tiles(tm, head), geometry.depth))
    return MaskTables(np.concatenate(words), np.zeros(0, np.uint8), store.image())


class BiasStore:
    """The ``maskbias`` image: each distinct visited tile's fp32 bias ``[lanes, tile]``, -inf past the mask."""

    def __init__(self, lanes: int, tile: int):
        self.lanes, self.tile = lanes, tile
        self.stored: dict[bytes, int] = {}

    def tiles(self, tm: TileMask, bias: np.ndarray) -> dict[tuple[int, int], int]:
        """Store the bias tiles of `tm`'s visited pairs (of the ``[Sq, Skv]`` fp32 `bias`); their byte offsets."""
        q_len, kv_len = bias.shape
        padded = np.full((tm.query_tiles * self.lanes, -(-kv_len // self.tile) * self.tile), -np.inf, np.float32)
        padded[:q_len, :kv_len] = bias
        size = self.lanes * self.tile * BIAS_BYTES
        offsets: dict[tuple[int, int], int] = {}
        for query_tile in range(tm.query_tiles):
            rows = padded[query_tile * self.lanes : (query_tile + 1) * self.lanes]
            for kv_tile in tm.tiles(query_tile).tolist():
                block = rows[:, kv_tile * self.tile : (kv_tile + 1) * self.tile].tobytes()
                offsets[query_tile, kv_tile] = self.stored.setdefault(block, len(self.stored) * size)
        return offsets

    def image(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.stored), np.float32)


@dataclass(kw_only=True)
class MaskedKernel(CoordinatedKernel):
    """SOFA's coordinated kernel visiting only the KV tiles a general mask leaves non-empty."""

    mask: MaskedAttention
    tables: MaskTables | None = field(default=None, init=False)
    geometry: LaunchGeometry | None = field(default=None, init=False)
    """A run-time mask's: what the host needs to build the tables at launch."""

    @property
    def interface(self) -> KernelInterface:
        return KernelInterface(KernelKind.PLAIN, launch_mask=self.mask.at_launch)

    @property
    def format(self) -> str:
        return self.mask.attr.format_name

    @property
    def biased(self) -> bool:
        """A run-time additive mask: bias tiles instead of bitmaps."""
        return self.mask.biased

    @property
    def uses_bitmaps(self) -> bool:
        partial = self.mask.attr.partial.data > 0
        return not self.biased and (self.format == "bitmap" or (self.format in ("bsr", LAUNCH_FORMAT) and partial))

    @property
    def bitmap_size(self) -> int:
        return bitmap_bytes(self.tiling.lanes.data, self.tiling.tile.data)

    def heads(self) -> list[tuple[int, int]]:
        """The (batch element, query head) pairs with their own mask, in the kernel's loop order."""
        return walk_order(self.mask.shared, self.shape.batch, self.shape.q_heads)

    def lay_out(self) -> None:
        super().lay_out()
        if self.mask.at_launch:
            self.lay_out_launch()
            return
        lanes, tile = self.tiling.lanes.data, self.tiling.tile.data
        heads = self.heads()
        if self.format == "bitmap":
            bitmaps = [dense_bitmaps(self.mask.head_mask(b, h), lanes, tile) for b, h in heads]
            tables = MaskTables(np.zeros(1, "<i4"), np.concatenate(bitmaps))
        else:
            masks = [(self.mask.head_mask(b, h), self.mask.tile_mask(b, h)) for b, h in heads]
            tables = listed_tables(masks, lanes, tile, self.group, self.shape.depth, self.uses_bitmaps)
        self.tables = tables
        self.layout.add(Symbol.MASK_TABLE, (len(tables.words), 1), "i32", SymbolKind.CONST)
        self.layout.add(Symbol.MASK_BITS, (len(tables.bitmaps), 1), "u8", SymbolKind.CONST)

    def lay_out_launch(self) -> None:
        """A run-time mask: its tables are inputs of the worst case's size; the geometry tells the host how to
        build them."""
        geometry = LaunchGeometry(
            self.tiling.lanes.data,
            self.tiling.tile.data,
            self.group,
            self.shape.depth,
            int(self.shape.causal),
            *self.mask.heads,
            int(self.biased),
        )
        words, tiles = geometry.worst_case(self.shape)
        self.geometry = geometry
        self.layout.add(Symbol.MASK_TABLE, (words, 1), "i32", SymbolKind.INPUT)
        if self.biased:
            self.layout.add(Symbol.MASK_BIAS, (tiles, 1), "f32", SymbolKind.INPUT)
        else:
            self.layout.add(Symbol.MASK_BITS, (tiles, 1), "u8", SymbolKind.INPUT)
        self.layout.add(Symbol.MASK_GEOMETRY, (len(geometry.words()), 1), "i32", SymbolKind.CONST)

    def segments(self) -> ArrayAttr[SegmentAttr]:
        if self.geometry is not None:
            return ArrayAttr([SegmentAttr(self.layout.address(Symbol.MASK_GEOMETRY), self.geometry.words().tobytes())])
        assert self.tables is not None
        return ArrayAttr(
            [
                SegmentAttr(self.layout.address(Symbol.MASK_TABLE), self.tables.words.tobytes()),
                SegmentAttr(self.layout.address(Symbol.MASK_BITS), self.tables.bitmaps.tobytes()),
            ]
        )

    # --- the walk ---------------------------------------------------------------

    def emit_prologue(self, sets: int = KV_BUFFER_SETS) -> None:
        super().emit_prologue(sets)
        self.e.set(CReg.MASK_TABLE, 0)
        self.e.set(CReg.MASK_BITMAP, 0)

    def emit_head_start(self) -> None:
        """A shared mask's lists restart at every query head; per-head masks' lists follow one another."""
        band = self.mask.band
        self.e.set(Reg.QBASE, band.offset if band is not None and self.format == "closed" else 0)
        if self.mask.shared:
            self.e.set(CReg.MASK_TABLE, 0)
            self.e.set(CReg.MASK_BITMAP, 0)

    def emit_query_tiles(self) -> None:
        """Every query tile runs the same code: what differs is in its index list."""
        self.e.open_loop()
        self.emit_query_tile()
        self.e.close_loop(self.tiling.query_tiles.data)

    def emit_kv_tiles(self, slot: int | None) -> None:
        if self.format == "bitmap":
            super().emit_kv_tiles(None)
            return
        e = self.e
        self.emit_table_count()
        e.open_loop()
        for step in range(self.group):
            self.emit_listed_step(step)
        e.close_loop_register(CReg.GROUPS)
        for step in range(self.group - 1):
            self.emit_table_count()
            e.open_loop()
            self.emit_listed_step(step)
            e.close_loop_register(CReg.GROUPS)

    def emit_table_count(self) -> None:
        """GROUPS = the next word of the index list (a count)."""
        self.e.tload(CReg.GROUPS, Reg.ZERO, self.dram(CReg.MASK_TABLE, Symbol.MASK_TABLE))
        self.e.addi(CReg.MASK_TABLE, CReg.MASK_TABLE, WORD)

    def emit_listed_step(self, step: int) -> None:
        """Set the next listed tile's key base, K-hat address and bitmap, then run its tile step."""
        e = self.e
        e.tload(Reg.KBASE, Reg.ZERO, self.dram(CReg.MASK_TABLE, Symbol.MASK_TABLE))
        e.tload(Reg.PRED, Reg.PRED_HEAD, self.dram(CReg.MASK_TABLE, Symbol.MASK_TABLE, WORD))
        if self.uses_bitmaps or self.biased:  # the tile's bitmap or bias tile offset
            e.tload(CReg.MASK_BITMAP, Reg.ZERO, self.dram(CReg.MASK_TABLE, Symbol.MASK_TABLE, 2 * WORD))
        e.addi(CReg.MASK_TABLE, CReg.MASK_TABLE, MASK_ENTRY_BYTES)
        self.emit_kv_step(step)

    # --- one tile step ---------------------------------------------------------------

    def emit_prediction(self, r: TileBuffers) -> None:
        """The tile's bitmap or bias tile (when the kernel has them), then K-hat, both on the prefetch queue."""
        if self.biased:
            self.emit_bias_prediction(r)
            return
        if not self.uses_bitmaps:
            super().emit_prediction(r)
            return
        tile, d, e = self.tiling.tile.data, self.shape.depth, self.e
        size = self.bitmap_size
        bits = self.dram(CReg.MASK_BITMAP, Symbol.MASK_BITS)
        e.dma_load(r[RegionKind.MASK], bits, 1, size, wait=(Sem.KHAT_FREE,), queue=LoadQueue.PREFETCH)
        khat = self.dram(Reg.PRED, Symbol.KHAT)
        e.dma_load(r[RegionKind.KHAT], khat, tile, d * 2, signal=(Sem.KHAT_LOADED,), queue=LoadQueue.PREFETCH)
        e.addi(Reg.PRED, Reg.PRED, tile * d * 2)
        if self.format == "bitmap":
            e.addi(CReg.MASK_BITMAP, CReg.MASK_BITMAP, size)

    def emit_bias_prediction(self, r: TileBuffers) -> None:
        """The tile's fp32 bias tile, then K-hat. SU-FA reads the bias tile too, so its load waits for the set's
        SU-FA to finish (`Sem.KV_FREE`), which SADS, after it through K-hat and DLZS, then need not wait for."""
        lanes, tile, d, e = self.tiling.lanes.data, self.tiling.tile.data, self.shape.depth, self.e
        bias = self.dram(CReg.MASK_BITMAP, Symbol.MASK_BIAS)
        e.dma_load(
            r[RegionKind.BIAS], bias, lanes, tile * BIAS_BYTES, wait=(Sem.KHAT_FREE, Sem.KV_FREE),
            queue=LoadQueue.PREFETCH,
        )  # fmt: skip
        khat = self.dram(Reg.PRED, Symbol.KHAT)
        e.dma_load(r[RegionKind.KHAT], khat, tile, d * 2, signal=(Sem.KHAT_LOADED,), queue=LoadQueue.PREFETCH)
        e.addi(Reg.PRED, Reg.PRED, tile * d * 2)

    def emit_attention_step(self, q: Sram, r: TileBuffers) -> None:
        """SU-FA over the selection; a biased kernel's adds the tile's bias to the exact scores (`sufa.bias`)."""
        if not self.biased:
            super().emit_attention_step(q, r)
            return
        lanes, tile, m = self.tiling.lanes.data, self.tiling.tile.data, self.slots
        self.e.sufa_bias(
            q, r[RegionKind.K], r[RegionKind.V], r[RegionKind.IDX], r[RegionKind.BIAS], Reg.KBASE, lanes, m, tile,
            self.shape.depth, self.shape.v_depth, self.scale, wait=(Sem.KV_FETCHED,), signal=(Sem.KV_FREE,),
        )  # fmt: skip

    def emit_selection(self, r: TileBuffers) -> None:
        """SADS restricted to the mask: the band on chip, the tile's bitmap, or (full tiles only) plain SADS;
        a biased kernel's ranks the capped, scaled prediction plus the tile's bias (radius in logits)."""
        if self.biased:
            lanes, tile, m = self.tiling.lanes.data, self.tiling.tile.data, self.tiling.keep_count.data
            self.e.sads_bias(
                r[RegionKind.BIAS], r[RegionKind.AHAT], r[RegionKind.IDX], lanes, tile, m, self.radius, Reg.KBASE,
                self.scale, wait=(Sem.AHAT_READY,), signal=(Sem.INDICES_READY, Sem.KHAT_FREE),
            )  # fmt: skip
            return
        if self.format != "closed" and not self.uses_bitmaps:
            super().emit_selection(r)
            return
        lanes, tile, m = self.tiling.lanes.data, self.tiling.tile.data, self.tiling.keep_count.data
        operands = (r[RegionKind.AHAT], r[RegionKind.IDX], lanes, tile, m, self.radius / self.scale)
        sync = {"wait": (Sem.AHAT_READY, Sem.KV_FREE), "signal": (Sem.INDICES_READY, Sem.KHAT_FREE)}
        if self.format == "closed":
            band = self.mask.band
            assert band is not None
            sides = (min(band.left, BAND_FIELD_MAX), min(band.right, BAND_FIELD_MAX), band.dilation)
            self.e.sads_band(sides, *operands, Reg.KBASE, Reg.QBASE, self.shape.kv_len, **sync)
            return
        bitmap = r[RegionKind.MASK]
        self.e.sads_mask(bitmap, *operands, Reg.KBASE, Reg.QBASE, self.shape.kv_len, self.shape.causal, **sync)
