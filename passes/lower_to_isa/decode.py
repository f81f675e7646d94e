"""Decode kernels: one generation step's attention, its queries packed in the lanes (issue 18).

A decode step has one new query per (sample, query head). The kernel runs one
KV head after another; the queries that read that KV head, every sample's GQA
group, sit in the lanes (lane ``b * group + j`` is sample b's query head
``h * group + j``), and one `sufa.init` opens their accumulators. Where there
are more of them than lanes, the KV head runs in passes of as many samples as
the lanes hold (`DecodeKernel.passes`); a bifurcated prefix is then read once
per pass.

Each sample's cache is a *prefix* shared by every sample (rows ``0 .. P-1``, one
copy in DRAM) and its own *suffix* (rows ``P .. L_b - 1``). Two lowerings:

* **standard** (`DecodeLowering.STANDARD`): what a batched decode does without
  knowing the prefix is shared: sample after sample, its lanes stream the prefix
  and its suffix, so the prefix is read once per sample;
* **bifurcated** (`DecodeLowering.BIFURCATED`, arXiv 2403.08845): the prefix's
  K/V tiles stream once, to every lane, and each sample's suffix tiles stream
  to that sample's lanes only (`sufa.dense` on a lane range), spread evenly
  among the prefix tiles (`DecodeKernel.tile_order`) so that the suffixes'
  DRAM-bound loads overlap the prefix's SU-FA-bound steps.

Both merge, per lane, the same tiles in the same order (the standard lowering
follows `tile_order` too, restricted to each sample) with SU-FA's running
(m, l, o) merge, so their outputs are equal bit for bit (and exact, not an
approximation). Each K/V tile is a dense `sufa.dense` step (keep 1.0: no
prediction); K and V windows rotate through `DecodePlan.sets` buffer sets.

DRAM layout (`DecodeSymbol`; ``L = batch * group`` lanes, ``P`` the prefix,
``S`` the longest suffix):

    q        [Hkv*L, d]      f16   row h*L + b*group + j: Q of sample b, query head h*group + j
    kp, vp   [Hkv*P, d|dv]   f16   the shared prefix, KV head after KV head (absent when P = 0)
    ks, vs   [Hkv*B*S, d|dv] f16   row (h*B + b)*S + i: sample b's suffix row i (absent when S = 0)
    o        [Hkv*L, dv]     f16   the output, as q

`stage_decode_inputs` and `unstage_decode_output` convert to and from the
logical tensors. Cache lengths are compile-time constants: a driver compiles
one program per step shape (a few hundred instructions, no tiling search).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum, StrEnum

import numpy as np
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, StringAttr, i64
from xdsl.ir import Block, Region

from dialects.numerics import DATAPATH, to_datapath
from dialects.sofa import DECODE_TILE, TargetAttr
from dialects.sofa_isa import Dram, ProgramOp, Sram
from passes.kernel_interface import KernelLayout, SymbolKind
from passes.lower_to_isa.emitter import Emitter
from passes.lower_to_isa.kernel import DRAM_PAGE
from passes.lower_to_isa.registers import Sem

MAX_BUFFER_SETS = 8
"""Most K/V buffer sets a decode kernel rotates through (the loop body holds one tile step per set)."""


MAX_HEAD_DIM = 4095
"""The largest head dim the ISA's 12-bit `depth`/`vdepth` fields hold."""


class DecodeError(ValueError):
    """A decode step the kernel cannot run (shape, lengths, lanes or SRAM); the message says which."""


class DecodeLowering(Enum):
    """How a step with a shared prefix streams it."""

    STANDARD = "standard"
    BIFURCATED = "bifurcated"


class DecodeSymbol(StrEnum):
    """The DRAM symbols of a decode kernel (layouts in the module docstring)."""

    Q = "q"
    K_PREFIX = "kp"
    V_PREFIX = "vp"
    K_SUFFIX = "ks"
    V_SUFFIX = "vs"
    OUT = "o"


class DecodeReg(IntEnum):
    """Registers of a decode kernel."""

    Q = 1
    """Byte offset of the KV head's query rows in ``q``."""
    OUT = 2
    """Byte offset of the KV head's output rows in ``o``."""
    K_PREFIX = 3
    V_PREFIX = 4
    K_SUFFIX = 5
    """Byte offset of the KV head's suffix rows in ``ks`` (sample 0)."""
    V_SUFFIX = 6
    K_TILE = 7
    """The next K tile's address in the stream being emitted."""
    V_TILE = 8


@dataclass(frozen=True)
class DecodeStep:
    """One decode step's attention: a query per (sample, query head) against each sample's cache.

    ``cache_lengths[b]`` counts sample b's visible keys (the new token's included);
    the first ``prefix`` rows of every sample's cache are one shared cache.
    """

    batch: int
    q_heads: int
    kv_heads: int
    depth: int
    cache_lengths: tuple[int, ...]
    prefix: int = 0
    v_depth: int | None = None
    scale: float | None = None
    """None: 1/sqrt(depth)."""

    def __post_init__(self) -> None:
        if problem := self.problem():
            raise DecodeError(problem)

    def problem(self) -> str | None:
        if min(self.batch, self.q_heads, self.kv_heads, self.depth, self.value_depth) < 1:
            return "batch, heads and head dims must be positive"
        if max(self.depth, self.value_depth) > MAX_HEAD_DIM:
            return f"head dims past {MAX_HEAD_DIM} do not fit the ISA's 12-bit depth fields"
        if self.q_heads % self.kv_heads:
            return f"{self.q_heads} query heads do not share {self.kv_heads} KV heads evenly"
        if len(self.cache_lengths) != self.batch:
            return f"{len(self.cache_lengths)} cache lengths for a batch of {self.batch}"
        if self.prefix < 0 or any(length < max(self.prefix, 1) for length in self.cache_lengths):
            return f"every cache must hold at least one key and the shared prefix ({self.prefix} rows)"
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            return f"scale must be finite and positive, got {self.scale}"
        return None

    @property
    def value_depth(self) -> int:
        return self.depth if self.v_depth is None else self.v_depth

    @property
    def group(self) -> int:
        """Query heads per KV head (GQA)."""
        return self.q_heads // self.kv_heads

    @property
    def lanes(self) -> int:
        """Queries that read one KV head: every sample's group."""
        return self.batch * self.group

    @property
    def suffix_lengths(self) -> tuple[int, ...]:
        return tuple(length - self.prefix for length in self.cache_lengths)

    @property
    def longest_suffix(self) -> int:
        return max(self.suffix_lengths)

    @property
    def logit_scale(self) -> float:
        return float(np.float32(1.0 / math.sqrt(self.depth) if self.scale is None else self.scale))

    def io_lower_bound(self) -> int:
        """DRAM bytes a step must move: Q and O, the prefix's K/V once and every suffix row once."""
        element, kv_row = DATAPATH.nbytes, (self.depth + self.value_depth) * DATAPATH.nbytes
        rows = self.prefix + sum(self.suffix_lengths)
        queries = self.batch * self.q_heads * (self.depth + self.value_depth) * element
        return self.kv_heads * rows * kv_row + queries


@dataclass(frozen=True)
class DecodePlan:
    """The SRAM plan: Q and O rows in the token buffer, `sets` K windows after them, V windows in weight."""

    tile: int
    sets: int
    q_bytes: int
    out_bytes: int
    k_window: int
    v_window: int

    def q(self, lane: int, depth: int) -> Sram:
        return Sram("token", 0, lane * depth * DATAPATH.nbytes)

    @property
    def out(self) -> Sram:
        return Sram("token", 0, self.q_bytes)

    def k(self, buffer_set: int) -> Sram:
        return Sram("token", 0, self.q_bytes + self.out_bytes + buffer_set * self.k_window)

    def v(self, buffer_set: int) -> Sram:
        return Sram("weight", 0, buffer_set * self.v_window)


def check_tile(tile: int) -> None:
    """`DecodeError` unless `tile` keys a K/V window is a positive count the ISA's 16-bit fields hold."""
    if not 1 <= tile < 1 << 16:
        raise DecodeError(f"a K/V window holds 1 to 65535 keys, got {tile}")


def samples_per_pass(step: DecodeStep, target: TargetAttr) -> int:
    """Samples whose queries fit the lanes at once; a KV head runs ``ceil(batch / that)`` passes."""
    lanes = target.lanes.data
    if step.group > lanes:
        raise DecodeError(f"{step.group} query heads per KV head exceed the target's {lanes} lanes")
    return min(step.batch, lanes // step.group)


def plan_decode(step: DecodeStep, target: TargetAttr, tile: int = DECODE_TILE) -> DecodePlan:
    """The buffer sets that fit `target`'s SRAM for `step` with `tile`-key windows; `DecodeError` if none do."""
    check_tile(tile)
    lanes = samples_per_pass(step, target) * step.group
    element = DATAPATH.nbytes
    q_bytes, out_bytes = lanes * step.depth * element, lanes * step.value_depth * element
    k_window, v_window = tile * step.depth * element, tile * step.value_depth * element
    room = target.token_sram.data - q_bytes - out_bytes
    sets = min(MAX_BUFFER_SETS, room // k_window, target.weight_sram.data // v_window)
    if sets < 2:
        raise DecodeError(f"SRAM holds {max(sets, 0)} K/V windows of {tile} keys; a decode kernel needs two")
    return DecodePlan(tile, sets, q_bytes, out_bytes, k_window, v_window)


@dataclass(frozen=True)
class Stream:
    """A run of cache rows that some lanes attend to: a prefix or one sample's suffix."""

    keys: DecodeSymbol
    values: DecodeSymbol
    base: tuple[DecodeReg, DecodeReg]
    """Registers that hold the KV head's first row of the symbols."""
    offset: int
    """Rows past those registers where the stream starts (sample b's suffix: b * longest suffix)."""
    length: int
    lane0: int
    lanes: int


@dataclass(kw_only=True)
class DecodeKernelBase:
    """What the dense and the sparse decode kernels share: the step, the emitter, the DRAM layout, the program."""

    step: DecodeStep
    target: TargetAttr
    tile: int = DECODE_TILE
    e: Emitter = field(default_factory=Emitter)
    layout: KernelLayout = field(default_factory=KernelLayout)
    next_set: int = 0
    """The buffer set the next tile step uses."""

    def dram(self, reg: int, symbol: StrEnum, offset: int = 0) -> Dram:
        return self.layout.dram(reg, symbol, offset)  # type: ignore[arg-type]

    def program(self, name: str) -> ProgramOp:
        """The emitted ops, ended by a barrier and `halt`, as a `sofa_isa.program` with the layout's symbols."""
        self.e.barrier()
        self.e.halt()
        return ProgramOp.create(
            properties={
                "config_hash": StringAttr(self.target.config_hash()),
                "dram_bytes": IntegerAttr(max(DRAM_PAGE, -(-self.layout.top // DRAM_PAGE) * DRAM_PAGE), i64),
                "symbols": self.layout.attrs(),
                "segments": ArrayAttr([]),
                "sym_name": StringAttr(name),
            },
            regions=[Region(Block(self.e.ops()))],
        )


@dataclass(kw_only=True)
class DecodeKernel(DecodeKernelBase):
    """Emits the decode kernel of a `DecodeStep` (module docstring)."""

    lowering: DecodeLowering

    def __post_init__(self) -> None:
        self.plan = plan_decode(self.step, self.target, self.tile)
        self.pass_samples = samples_per_pass(self.step, self.target)

    def lay_out(self) -> None:
        step, kv_heads = self.step, self.step.kv_heads
        d, dv, dtype = step.depth, step.value_depth, DATAPATH.name
        self.layout.add(DecodeSymbol.Q, (kv_heads * step.lanes, d), dtype, SymbolKind.INPUT)  # type: ignore[arg-type]
        for rows, (k, v) in (
            (step.prefix, (DecodeSymbol.K_PREFIX, DecodeSymbol.V_PREFIX)),
            (step.batch * step.longest_suffix, (DecodeSymbol.K_SUFFIX, DecodeSymbol.V_SUFFIX)),
        ):
            if rows:
                self.layout.add(k, (kv_heads * rows, d), dtype, SymbolKind.INPUT)  # type: ignore[arg-type]
                self.layout.add(v, (kv_heads * rows, dv), dtype, SymbolKind.INPUT)  # type: ignore[arg-type]
        self.layout.add(DecodeSymbol.OUT, (kv_heads * step.lanes, dv), dtype, SymbolKind.OUTPUT)  # type: ignore[arg-type]

    def passes(self) -> list[range]:
        """The samples of each pass over a KV head: as many as the lanes hold at once."""
        batch, size = self.step.batch, self.pass_samples
        return [range(first, min(first + size, batch)) for first in range(0, batch, size)]

    # --- streams ------------------------------------------------------------------

    def prefix_stream(self, lane0: int, lanes: int) -> Stream:
        regs = (DecodeReg.K_PREFIX, DecodeReg.V_PREFIX)
        return Stream(DecodeSymbol.K_PREFIX, DecodeSymbol.V_PREFIX, regs, 0, self.step.prefix, lane0, lanes)

    def suffix_stream(self, sample: int, lane0: int) -> Stream:
        step, regs = self.step, (DecodeReg.K_SUFFIX, DecodeReg.V_SUFFIX)
        offset, length = sample * step.longest_suffix, step.suffix_lengths[sample]
        return Stream(DecodeSymbol.K_SUFFIX, DecodeSymbol.V_SUFFIX, regs, offset, length, lane0, step.group)

    def tile_order(self, samples: range) -> list[tuple[int | None, int]]:
        """One pass's tiles in the order the bifurcated kernel streams them: ``(None, i)`` is prefix tile i,
        ``(b, i)`` sample b's suffix tile i.

        The suffix tiles are spread evenly among the prefix tiles, so that their
        loads (one-lane streams, DRAM-bound) overlap the prefix's SU-FA work
        (all lanes, SU-FA-bound) rather than follow it.
        """
        step, tile = self.step, self.tile
        prefix_tiles = -(-step.prefix // tile)
        suffix = [(b, i) for b in samples for i in range(-(-step.suffix_lengths[b] // tile))]
        order: list[tuple[int | None, int]] = []
        placed = 0
        for t in range(prefix_tiles):
            order.append((None, t))
            due = (t + 1) * len(suffix) // prefix_tiles
            order.extend(suffix[placed:due])
            placed = due
        return order + suffix[placed:]

    def runs(self, order: list[tuple[int | None, int]], samples: range, lane0: int, lanes: int) -> list[Stream]:
        """Consecutive tiles of one stream in `order` as one run (a `Stream` over their rows); the prefix's
        runs go to lanes ``lane0 .. lane0 + lanes - 1``, a suffix's to its sample's lanes in the pass."""
        group, tile, runs = self.step.group, self.tile, []
        for source, index in order:
            if runs and runs[-1][0] == source and runs[-1][2] == index:
                runs[-1][2] += 1
            else:
                runs.append([source, index, index + 1])
        streams = []
        for source, first, end in runs:
            whole = (
                self.prefix_stream(lane0, lanes)
                if source is None
                else self.suffix_stream(source, (source - samples.start) * group)
            )
            rows = min(end * tile, whole.length) - first * tile
            streams.append(replace(whole, offset=whole.offset + first * tile, length=rows))
        return streams

    def streams(self, samples: range) -> list[Stream]:
        """One pass's runs of tiles, in order. Every lane merges the same tiles in the same order under both
        lowerings (`tile_order` restricted to its sample), so their outputs are equal bit for bit."""
        group, order = self.step.group, self.tile_order(samples)
        if self.lowering is DecodeLowering.BIFURCATED:
            return self.runs(order, samples, 0, len(samples) * group)
        own = {b: [entry for entry in order if entry[0] in (None, b)] for b in samples}
        return [run for b in samples for run in self.runs(own[b], samples, (b - samples.start) * group, group)]

    def emit_tile(self, stream: Stream, keys: int) -> None:
        """Load `keys` K and V rows into the next buffer set and attend to them with the stream's lanes."""
        step, plan, e = self.step, self.plan, self.e
        d, dv, element = step.depth, step.value_depth, DATAPATH.nbytes
        buffer_set, self.next_set = self.next_set, (self.next_set + 1) % plan.sets
        k, v = plan.k(buffer_set), plan.v(buffer_set)
        e.dma_load(k, self.dram(DecodeReg.K_TILE, stream.keys), keys, d * element, wait=(Sem.KV_FREE,))
        e.dma_load(v, self.dram(DecodeReg.V_TILE, stream.values), keys, dv * element, signal=(Sem.KV_FETCHED,))
        e.advance(((DecodeReg.K_TILE, keys * d * element), (DecodeReg.V_TILE, keys * dv * element)))
        e.sufa_dense(
            plan.q(stream.lane0, d), k, v, stream.lane0, stream.lanes, keys, d, dv, step.logit_scale,
            wait=(Sem.KV_FETCHED,), signal=(Sem.KV_FREE,),
        )  # fmt: skip

    def emit_stream(self, stream: Stream) -> None:
        """Every tile of `stream`: a loop over rounds of the buffer sets, the whole tiles left, the partial one."""
        step, e, tile, sets = self.step, self.e, self.tile, self.plan.sets
        if not stream.length:
            return
        element = DATAPATH.nbytes
        k_reg, v_reg = stream.base
        e.addi(DecodeReg.K_TILE, k_reg, stream.offset * step.depth * element)
        e.addi(DecodeReg.V_TILE, v_reg, stream.offset * step.value_depth * element)
        whole, tail = divmod(stream.length, tile)
        rounds, rest = divmod(whole, sets)
        if rounds:
            # The loop body starts at the current set and goes round all of them, so it ends where it began.
            e.open_loop()
            for _ in range(sets):
                self.emit_tile(stream, tile)
            e.close_loop(rounds)
        for _ in range(rest):
            self.emit_tile(stream, tile)
        if tail:
            self.emit_tile(stream, tail)

    # --- the program ----------------------------------------------------------------

    def emit_pass(self, samples: range) -> None:
        """One pass over the current KV head: these samples' queries in the lanes, their streams, their output."""
        step, plan, e = self.step, self.plan, self.e
        element, lanes, first = DATAPATH.nbytes, len(samples) * step.group, samples.start * step.group
        e.barrier()
        q = self.dram(DecodeReg.Q, DecodeSymbol.Q, first * step.depth * element)
        e.dma_load(plan.q(0, step.depth), q, lanes, step.depth * element)
        e.barrier()
        e.sufa_init(lanes, step.value_depth)
        # Each pass starts with a barrier, so its tiles may start at set 0 whatever set the last one ended on.
        self.next_set = 0
        for stream in self.streams(samples):
            self.emit_stream(stream)
        e.sufa_norm(plan.out, lanes, step.value_depth, signal=(Sem.O_READY,))
        out = self.dram(DecodeReg.OUT, DecodeSymbol.OUT, first * step.value_depth * element)
        e.dma_store(plan.out, out, lanes, step.value_depth * element, wait=(Sem.O_READY,))

    def emit_kv_head(self) -> None:
        step, element = self.step, DATAPATH.nbytes
        for samples in self.passes():
            self.emit_pass(samples)
        suffix_rows = step.batch * step.longest_suffix
        self.e.advance(
            (
                (DecodeReg.Q, step.lanes * step.depth * element),
                (DecodeReg.OUT, step.lanes * step.value_depth * element),
                (DecodeReg.K_PREFIX, step.prefix * step.depth * element),
                (DecodeReg.V_PREFIX, step.prefix * step.value_depth * element),
                (DecodeReg.K_SUFFIX, suffix_rows * step.depth * element),
                (DecodeReg.V_SUFFIX, suffix_rows * step.value_depth * element),
            )
        )

    def build(self) -> ProgramOp:
        """The kernel as a `sofa_isa.program` named ``decode``: one loop body serves every KV head."""
        e = self.e
        self.lay_out()
        for _ in range(self.plan.sets):
            e.post((Sem.KV_FREE,))
        for reg in DecodeReg:
            e.set(reg, 0)
        e.open_loop()
        self.emit_kv_head()
        e.close_loop(self.step.kv_heads)
        return self.program("decode")


def decode_program(
    step: DecodeStep, target: TargetAttr, lowering: DecodeLowering, tile: int = DECODE_TILE
) -> ProgramOp:
    """The decode kernel of `step` for `target` with `lowering` (bifurcated needs no prefix, but gains nothing)."""
    return DecodeKernel(step=step, target=target, lowering=lowering, tile=tile).build()


# --- host staging ------------------------------------------------------------------------


def _rows(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(to_datapath(np.asarray(x)).reshape(-1, x.shape[-1]))


def stage_decode_inputs(
    step: DecodeStep, q: np.ndarray, k: Sequence[np.ndarray], v: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """The kernel's input symbols, as fp16 rows, from Q ``[B, Hq, 1, d]`` and each sample's cache.

    ``k[b]``/``v[b]`` are ``[Hkv, >= L_b, d|dv]``: sample b's cache; its first
    ``prefix`` rows are taken from sample 0 (they must be the same cache).
    """
    q = np.asarray(q)
    if q.shape != (step.batch, step.q_heads, 1, step.depth):
        raise DecodeError(f"Q has shape {list(q.shape)}, expected {[step.batch, step.q_heads, 1, step.depth]}")
    if len(k) != step.batch or len(v) != step.batch:
        raise DecodeError(f"{len(k)} K and {len(v)} V caches for a batch of {step.batch}")
    for b, (kb, vb) in enumerate(zip(k, v, strict=True)):
        for name, cache, width in (("K", kb, step.depth), ("V", vb, step.value_depth)):
            if cache.ndim != 3 or cache.shape[0] != step.kv_heads or cache.shape[2] != width:
                raise DecodeError(f"sample {b}'s {name} cache has shape {list(cache.shape)}")
            if cache.shape[1] < step.cache_lengths[b]:
                raise DecodeError(f"sample {b}'s {name} cache has {cache.shape[1]} rows, the step reads more")
    # q [B, Hkv*g, 1, d] -> [Hkv, B, g, d]
    lanes_q = np.asarray(q).reshape(step.batch, step.kv_heads, step.group, step.depth).transpose(1, 0, 2, 3)
    staged = {DecodeSymbol.Q.value: _rows(lanes_q)}
    p, longest = step.prefix, step.longest_suffix
    for symbol, prefix_symbol, caches, width in (
        (DecodeSymbol.K_SUFFIX, DecodeSymbol.K_PREFIX, k, step.depth),
        (DecodeSymbol.V_SUFFIX, DecodeSymbol.V_PREFIX, v, step.value_depth),
    ):
        if p:
            staged[prefix_symbol.value] = _rows(np.asarray(caches[0])[:, :p])
        if longest:
            suffix = np.zeros((step.kv_heads, step.batch, longest, width), np.float32)
            for b, length in enumerate(step.cache_lengths):
                suffix[:, b, : length - p] = np.asarray(caches[b])[:, p:length]
            staged[symbol.value] = _rows(suffix)
    return staged


def unstage_decode_output(step: DecodeStep, o: np.ndarray) -> np.ndarray:
    """The step's attention output ``[B, Hq, 1, dv]`` from the kernel's ``o`` rows."""
    out = np.asarray(o).reshape(step.kv_heads, step.batch, step.group, step.value_depth).transpose(1, 0, 2, 3)
    return out.reshape(step.batch, step.q_heads, 1, step.value_depth)
