"""Tile planning shared by the tiling and lowering passes: SRAM layout and cost model.

Everything here reads the hardware from a `#sofa.target` attribute, never
from Python constants, so a module compiled for another target gets another
plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from dialects.numerics import ACCUMULATOR, DATAPATH, budget_slots, keep_count, tile_count
from dialects.sofa import PLAIN_SADS, TargetAttr

TILE_CANDIDATES = (16, 32, 64, 128, 256, 512)
"""KV tile sizes Bc the cost model considers (powers of two, as the paper's Tc grid)."""

KV_BUFFER_SETS = 2
"""Per-KV-tile buffers are double-buffered: tile j+1 loads while tile j computes."""

DEEP_BUFFER_SETS = 4
"""Per-KV-tile buffer sets of a coordinated kernel where SRAM has room for them (else `KV_BUFFER_SETS`).

Each set is freed only when its tile's last consumer has drained (SADS for
K-hat/A-hat, SU-FA for the indices and K/V rows), so with two sets a tile
waits for DRAM latency and pipeline drains of the tile two before it; four
sets let K-hat load, and K/V gather, up to four tiles ahead.
"""


class PlanError(ValueError):
    """No tiling fits the target; the message names the shortfall."""


@dataclass(frozen=True)
class AttentionShape:
    """The attention problem a plan is for (one op, all heads)."""

    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    depth: int
    v_depth: int
    keep: float
    causal: bool
    hidden: int = 0
    """Token width H when DLZS predicts K-hat from X and LZ(W_k) on chip (on-demand); 0 to predict from K."""
    masked: bool = False
    """A general mask: each KV buffer set also holds the tile's mask bitmap (`RegionKind.MASK`)."""
    far: float = PLAIN_SADS
    """Budgeted SADS's far-tile ratio (`numerics.sads_budget`); `PLAIN_SADS` keeps m in every tile."""
    biased: bool = False
    """A run-time additive mask: each KV buffer set holds the tile's fp32 bias (`RegionKind.BIAS`), not a bitmap."""

    def slots(self, tile: int) -> int:
        """SADS output slots per lane and KV tile: m, or budgeted SADS's wider `budget_slots`."""
        return budget_slots(self.far, self.keep, tile)


class RegionKind(Enum):
    """What an SRAM region of an attention kernel holds; the value is its name in messages."""

    Q = "q"
    Q16 = "q16"
    OUT = "o"
    CODES = "codes"
    """On demand: the current KV head's LZ codes of W_k."""
    KHAT = "khat"
    AHAT = "ahat"
    IDX = "idx"
    """SADS indices."""
    LIST = "list"
    """The RASS union of the selected keys."""
    K = "k"
    V = "v"
    X = "x"
    """On demand: a KV tile's 8-bit tokens."""
    XEXP = "xexp"
    ROWS = "rows"
    """Separate-stage baseline: whole A-hat rows for the row top-k."""
    MASK = "mask"
    """A general mask's bitmap of the current (query tile, KV tile) pair, one bit a (lane, key)."""
    BIAS = "bias"
    """A run-time additive mask's fp32 bias tile of the current (query tile, KV tile) pair (-inf: masked)."""
    BITMAP = "bitmap"
    """K/V generation: the needed-key bitmap; the `GEN_*` regions are the generation phase's."""
    GEN_K = "gen_k"
    GEN_V = "gen_v"
    GEN_K16 = "gen_k16"
    """The generated K rows rounded to the datapath's fp16 (`kvround`), which `dma.scatter` writes out."""
    GEN_V16 = "gen_v16"
    GEN_LIST = "gen_list"
    GEN_BK = "gen_bk"
    GEN_BV = "gen_bv"
    GEN_X = "gen_x"
    GEN_WK = "gen_wk"
    GEN_WV = "gen_wv"


@dataclass(frozen=True)
class RegionKey:
    """Names one SRAM region of a plan: its kind, and for per-KV-tile buffers which of the
    `KV_BUFFER_SETS` sets it belongs to."""

    kind: RegionKind
    buffer_set: int | None = None
    attend_phase: bool = False
    """Separate-stage baseline: a region of the attention phase (it may alias the prediction phase's)."""

    def __str__(self) -> str:
        return self.kind.value + ("" if self.buffer_set is None else str(self.buffer_set))


@dataclass(frozen=True)
class Region:
    buffer: str
    offset: int
    size: int


@dataclass
class SramPlan:
    """Where every on-chip buffer of one attention kernel lives."""

    regions: dict[RegionKey, Region] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)


class SramAllocator:
    """First-fit bump allocation of named regions in the three SRAM buffers."""

    def __init__(self, sizes: Mapping[str, int], align: int = 64):
        self.sizes = dict(sizes)
        self.used = {name: 0 for name in self.sizes}
        self.align = align
        self.regions: dict[RegionKey, Region] = {}

    def alloc(
        self,
        kind: RegionKind,
        nbytes: int,
        prefer: tuple[str, ...] = ("token", "weight", "temp"),
        buffer_set: int | None = None,
    ) -> Region:
        """A new region (of KV buffer set `buffer_set`, if per tile) in the first preferred buffer it fits,
        or `PlanError`."""
        key = RegionKey(kind, buffer_set)
        for buffer in prefer:
            start = -(-self.used[buffer] // self.align) * self.align
            if start + nbytes <= self.sizes[buffer]:
                self.used[buffer] = start + nbytes
                self.regions[key] = Region(buffer, start, nbytes)
                return self.regions[key]
        free = ", ".join(f"{b} {self.sizes[b] - self.used[b]} B free" for b in prefer)
        raise PlanError(f"SRAM region '{key}' ({nbytes} bytes) does not fit ({free})")


def sram_sizes(target: TargetAttr) -> dict[str, int]:
    return {
        "token": target.token_sram.data,
        "weight": target.weight_sram.data,
        "temp": target.temp_sram.data,
    }


def query_lanes(target: TargetAttr, q_len: int) -> int:
    """Queries per tile: the target's lanes, or fewer for a short sequence."""
    return min(target.lanes.data, q_len)


INDEX_BYTES = 4
"""SADS indices and RASS lists are i32."""

BIAS_BYTES = 4
"""A run-time additive mask's bias tiles are fp32: an fp16 bias would move every score by up to |b| 2^-11
(0.5 at |b| = 1000), more than the conformance tolerance, where fp32 holds an f32 model's bias exactly."""


def _alloc_selected_kv(alloc: SramAllocator, buffer_set: int, slots: int, tile: int, d: int, dv: int) -> None:
    """One KV buffer set's SADS indices (`slots` of them), RASS list and K and V rows (fp16)."""
    on_chip_first = ("temp", "weight", "token")
    alloc.alloc(RegionKind.IDX, slots * INDEX_BYTES, on_chip_first, buffer_set)
    alloc.alloc(RegionKind.LIST, (1 + tile) * INDEX_BYTES, on_chip_first, buffer_set)
    alloc.alloc(RegionKind.K, tile * d * DATAPATH.nbytes, buffer_set=buffer_set)
    alloc.alloc(RegionKind.V, tile * dv * DATAPATH.nbytes, buffer_set=buffer_set)


def plan_sets(target: TargetAttr, shape: AttentionShape, tile: int, sets: int) -> SramPlan:
    """Lay out one kernel's buffers for KV tile `tile` with `sets` per-tile sets; `PlanError` if they do not fit.

    Query-tile buffers (Q for SU-FA and DLZS' copy, O; all fp16) are single; per-KV-tile
    buffers (K-hat, A-hat, SADS indices, the RASS list, K and V rows) come in
    `sets` sets so consecutive tiles overlap.
    """
    lanes = query_lanes(target, shape.q_len)
    slots = shape.slots(tile)
    d, dv = shape.depth, shape.v_depth
    alloc = SramAllocator(sram_sizes(target))
    alloc.alloc(RegionKind.Q, lanes * d * DATAPATH.nbytes)
    alloc.alloc(RegionKind.Q16, lanes * d * 2)
    alloc.alloc(RegionKind.OUT, lanes * dv * DATAPATH.nbytes)
    if shape.hidden:
        alloc.alloc(RegionKind.CODES, shape.hidden * d, ("weight", "token", "temp"))
    on_chip_first = ("temp", "weight", "token")
    for index in range(sets):
        alloc.alloc(RegionKind.KHAT, tile * d * 2, on_chip_first, index)
        alloc.alloc(RegionKind.AHAT, lanes * tile * 2, on_chip_first, index)
        _alloc_selected_kv(alloc, index, lanes * slots, tile, d, dv)
        if shape.biased:
            alloc.alloc(RegionKind.BIAS, lanes * tile * BIAS_BYTES, on_chip_first, index)
        elif shape.masked:
            alloc.alloc(RegionKind.MASK, lanes * -(-tile // 8), on_chip_first, index)
        if shape.hidden:
            alloc.alloc(RegionKind.X, tile * shape.hidden, buffer_set=index)
            alloc.alloc(RegionKind.XEXP, tile, on_chip_first, index)
    return SramPlan(dict(alloc.regions), dict(alloc.used))


def plan_sram(target: TargetAttr, shape: AttentionShape, tile: int) -> SramPlan:
    """Lay out one coordinated kernel's buffers for KV tile `tile`; `PlanError` if they do not fit.

    Per-KV-tile buffers come in `DEEP_BUFFER_SETS` sets where they fit, else in
    `KV_BUFFER_SETS` (always on demand: its K-hat pass and K/V generation use two).
    """
    if not shape.hidden:
        try:
            return plan_sets(target, shape, tile, DEEP_BUFFER_SETS)
        except PlanError:
            pass
    return plan_sets(target, shape, tile, KV_BUFFER_SETS)


@dataclass(frozen=True)
class StepEstimate:
    """The coarse model's figures for one (query tile, KV tile) step of a coordinated kernel."""

    cycles: float
    dram_bytes: int


def step_estimate(
    target: TargetAttr,
    shape: AttentionShape,
    tile: int,
    lanes: int | None = None,
    extra_bytes: int = 0,
    kept: float = 1.0,
) -> StepEstimate:
    """One tile step: its slowest pipeline stage plus a share of the DMA latency, and its DRAM reads.

    `lanes` defaults to `query_lanes`; `extra_bytes` are loaded per step besides K-hat and the
    selected K/V rows (a mask bitmap and its index-list entry); `kept` is the fraction of the
    tile's (query, key) pairs a mask keeps: SADS sorts, and SU-FA attends to, only those.
    """
    lanes = query_lanes(target, shape.q_len) if lanes is None else lanes
    m = keep_count(shape.keep, tile)
    d, dv = shape.depth, shape.v_depth
    bytes_per_cycle = target.dram_bandwidth_gbps.data * 1e3 / target.clock_mhz.data
    latency = target.dram_latency_ns.data * target.clock_mhz.data / 1e3
    dlzs_pes = target.dlzs_rows.data * target.dlzs_cols.data
    dlzs = lanes * tile * d / dlzs_pes
    passes = math.ceil(m / target.sads_outputs_per_round.data)
    sorted_keys = math.ceil(kept * tile)
    sads = passes * math.ceil(sorted_keys / target.sads_inputs_per_round.data) * lanes / target.sads_cores.data
    sufa = lanes * min(m, sorted_keys) * (d + dv) / (target.sufa_rows.data * target.sufa_cols.data)
    selected_rows = min(tile, lanes * m)
    dram_bytes = tile * d * 2 + selected_rows * (d + dv) * DATAPATH.nbytes + extra_bytes
    step = max(dlzs, sads, sufa, dram_bytes / bytes_per_cycle) + latency / KV_BUFFER_SETS
    return StepEstimate(step, dram_bytes)


def tile_cycles(target: TargetAttr, shape: AttentionShape, tile: int) -> float:
    """Estimated cycles of the whole kernel with KV tile `tile` (a coarse model).

    Per (query tile, KV tile) step the stages run as a pipeline, so a step
    costs its slowest stage; each step also pays a fixed synchronisation
    cost (DMA latency, token hand-offs), which is what makes small tiles
    expensive, while SADS's sort grows with ``m * Bc`` and makes large tiles
    expensive (paper §5: larger Bc sorts more).
    """
    lanes = query_lanes(target, shape.q_len)
    d = shape.depth
    bytes_per_cycle = target.dram_bandwidth_gbps.data * 1e3 / target.clock_mhz.data
    latency = target.dram_latency_ns.data * target.clock_mhz.data / 1e3
    dlzs_pes = target.dlzs_rows.data * target.dlzs_cols.data
    bias_bytes = lanes * tile * BIAS_BYTES if shape.biased else 0  # a biased kernel loads a bias tile a step
    step = step_estimate(target, shape, tile, lanes, extra_bytes=bias_bytes).cycles
    query_tiles = tile_count(shape.q_len, lanes)
    kv_tiles = tile_count(shape.kv_len, tile)
    if shape.causal:
        kv_tiles = (kv_tiles + 1) / 2  # about half the tiles hold visible keys
    attention = shape.batch * shape.q_heads * query_tiles * kv_tiles * step
    if not shape.hidden:
        return attention
    # On demand, each KV head first predicts K-hat from the tokens, once per KV tile.
    key_step = max(shape.hidden * tile * d / dlzs_pes, tile * (shape.hidden + 1) / bytes_per_cycle)
    return attention + shape.batch * shape.kv_heads * tile_count(shape.kv_len, tile) * (key_step + latency)


def choose_tile(target: TargetAttr, shape: AttentionShape) -> tuple[int, dict[int, float]]:
    """The KV tile Bc with the lowest estimated cycles among those that fit SRAM.

    Returns ``(Bc, {candidate: cycles})``; raises `PlanError` naming the
    smallest tile's shortfall when nothing fits.
    """
    longest = max(TILE_CANDIDATES[0], 1 << max(0, math.ceil(math.log2(max(1, shape.kv_len)))))
    costs: dict[int, float] = {}
    first_error: PlanError | None = None
    for tile in TILE_CANDIDATES:
        if tile > longest:
            break
        try:
            plan_sram(target, shape, tile)
        except PlanError as error:
            first_error = first_error or error
            continue
        costs[tile] = tile_cycles(target, shape, tile)
    if not costs:
        raise PlanError(f"no KV tile fits the target's SRAM (smallest tried: Bc = {TILE_CANDIDATES[0]}): {first_error}")
    return min(costs, key=lambda tile: (costs[tile], tile)), costs


def plan_separate_sram(target: TargetAttr, shape: AttentionShape, tile: int) -> tuple[SramPlan, int]:
    """SRAM for the separate-stage baseline, and the rows per whole-row top-k group.

    Its three phases (predict and spill A-hat, whole-row top-k, FA-2) are
    separated by barriers, so each phase gets the whole SRAM; the plan is the
    union of the phases' regions, which may alias across phases.
    """
    lanes = query_lanes(target, shape.q_len)
    d, dv = shape.depth, shape.v_depth
    padded_kv = tile_count(shape.kv_len, tile) * tile
    sizes = sram_sizes(target)
    on_chip_first = ("temp", "weight", "token")
    predict = SramAllocator(sizes)
    predict.alloc(RegionKind.Q16, lanes * d * 2)
    attend = SramAllocator(sizes)
    attend.alloc(RegionKind.Q, lanes * d * DATAPATH.nbytes)
    attend.alloc(RegionKind.OUT, lanes * dv * DATAPATH.nbytes)
    for index in range(KV_BUFFER_SETS):
        predict.alloc(RegionKind.KHAT, tile * d * 2, on_chip_first, index)
        predict.alloc(RegionKind.AHAT, lanes * tile * 2, on_chip_first, index)
        attend.alloc(RegionKind.AHAT, lanes * tile * 2, on_chip_first, index)
        _alloc_selected_kv(attend, index, lanes * tile, tile, d, dv)
    largest = max(sizes.values())
    rows = lanes
    while rows > 1 and rows * padded_kv * 2 > largest:
        rows //= 2
    if rows * padded_kv * 2 > largest:
        raise PlanError(f"one row of A-hat ({padded_kv * 2} bytes) does not fit any SRAM buffer")
    select = SramAllocator(sizes)
    select.alloc(RegionKind.ROWS, rows * padded_kv * 2, ("token", "weight", "temp"))
    attend_regions = {replace(key, attend_phase=True): region for key, region in attend.regions.items()}
    regions = {**predict.regions, **select.regions, **attend_regions}
    return SramPlan(regions, {}), rows


GENERATION_CHUNK_STEP = 64
"""Hidden chunks of the generation phase are multiples of this (`numerics.KVGEN_CHUNK`), so
that every chunk starts where the K/V-generation array's accumulation steps do."""

MAX_GENERATION_CHUNK = 1024


@dataclass(frozen=True)
class GenerationPlan:
    """SRAM of the on-demand K/V generation phase, its row window and its hidden chunk width."""

    rows: int
    """Keys generated per step: whole KV tiles, so W is streamed once per `rows` keys."""
    chunk: int
    regions: dict[RegionKey, Region]


MAX_GENERATION_ROWS = 4096


def plan_generation(target: TargetAttr, shape: AttentionShape, tile: int, plan: SramPlan) -> GenerationPlan:
    """Buffers for generating the selected K/V rows of a window of KV tiles, chunk by chunk over H.

    The needed-row bitmap lives beside the attention buffers (the marking pass
    fills it while they are in use). The generation phase runs between
    barriers, so its own buffers may reuse everything else except the bitmap
    and the LZ codes. Each step streams one head's W_k and W_v once, so the
    window is as many whole KV tiles (dividing the KV tile count) as fit with
    a chunk of at least `GENERATION_CHUNK_STEP` columns; the chunk is then the
    widest multiple of the step that fits. `PlanError` if not even one tile
    with one step fits.
    """
    sizes = sram_sizes(target)
    d, dv, hidden = shape.depth, shape.v_depth, shape.hidden
    kv_tiles = tile_count(shape.kv_len, tile)
    persistent = SramAllocator(sizes)
    persistent.used = dict(plan.used)
    bitmap = persistent.alloc(RegionKind.BITMAP, -(-kv_tiles * tile // 32) * 4, ("temp", "weight", "token"))
    codes = plan.regions.get(RegionKey(RegionKind.CODES))
    kept = [bitmap] + ([codes] if codes is not None else [])
    widest = min(MAX_GENERATION_CHUNK, -(-hidden // GENERATION_CHUNK_STEP) * GENERATION_CHUNK_STEP)
    # One tile is always a window, however large an explicit tile is.
    windows = [
        n * tile for n in range(kv_tiles, 0, -1) if kv_tiles % n == 0 and (n == 1 or n * tile <= MAX_GENERATION_ROWS)
    ]
    first_error: PlanError | None = None
    for rows in windows:
        for chunk in range(widest, 0, -GENERATION_CHUNK_STEP):
            width = min(chunk, hidden)
            try:
                regions = _generation_regions(sizes, kept, rows, width, d, dv)
            except PlanError as error:
                first_error = first_error or error
                continue
            return GenerationPlan(rows, width, {RegionKey(RegionKind.BITMAP): bitmap, **regions})
    raise PlanError(
        f"the K/V generation buffers do not fit even for a {GENERATION_CHUNK_STEP}-wide chunk: {first_error}"
    )


def _generation_regions(
    sizes: Mapping[str, int], kept: list[Region], rows: int, width: int, d: int, dv: int
) -> dict[RegionKey, Region]:
    alloc = SramAllocator(sizes)
    for region in kept:
        alloc.used[region.buffer] = max(alloc.used[region.buffer], region.offset + region.size)
    wide, narrow = ACCUMULATOR.nbytes, DATAPATH.nbytes
    alloc.alloc(RegionKind.GEN_K, rows * d * wide)
    alloc.alloc(RegionKind.GEN_V, rows * dv * wide)
    alloc.alloc(RegionKind.GEN_K16, rows * d * narrow)
    alloc.alloc(RegionKind.GEN_V16, rows * dv * narrow)
    alloc.alloc(RegionKind.GEN_LIST, (1 + rows) * INDEX_BYTES, ("temp", "weight", "token"))
    alloc.alloc(RegionKind.GEN_BK, d * wide, ("temp", "weight", "token"))
    alloc.alloc(RegionKind.GEN_BV, dv * wide, ("temp", "weight", "token"))
    alloc.alloc(RegionKind.GEN_X, rows * width * wide)
    alloc.alloc(RegionKind.GEN_WK, width * d * wide, ("weight", "token", "temp"))
    alloc.alloc(RegionKind.GEN_WV, width * dv * wide, ("weight", "token", "temp"))
    return alloc.regions
