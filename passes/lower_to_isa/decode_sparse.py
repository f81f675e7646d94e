"""Sparse decode: DLZS and SADS select each query's keys over the cache, only those K/V rows are fetched.

A decode step's queries of one sample and KV head (its GQA group) sit in the
lanes. Per KV tile of the cache the kernel loads the *predictor's cache* (K as
packed 4-bit LZ codes, `numerics.key_codes`, 1 + d/2 bytes a key) with
`dma.lz4`, which expands it to fp16 K-hat; `dlzs.score` predicts the group's
scores, `sads` keeps the top ``ceil(keep * Bc)`` keys of the tile per lane,
`rass` lists their union and `dma.gather` fetches only those K and V rows
for the `sufa.step`. At keep 0.25, d = 128 and one lane a sample (MHA) a key
costs 65 bytes of codes plus a quarter of its 512 bytes of K and V: about
0.38 of dense decode's 512.

The DRAM layout is the decode kernel's with no shared prefix
(`decode.DecodeSymbol`: ``q``, ``ks``, ``vs``, ``o``) plus the coded keys:

    kc   [Hkv*B*S, 1 + ceil(d/2)]  i8   row (h*B + b)*S + i: sample b's key i, coded

`stage_sparse_decode_inputs` adds ``kc`` to `decode.stage_decode_inputs`.
A driver keeps ``kc`` beside the resident cache and appends a coded row
whenever it appends a K row (`numerics.encode_key_codes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

import numpy as np

from dialects.numerics import DATAPATH, encode_key_codes, keep_count, key_code_row_bytes, to_datapath
from dialects.sofa import NO_RADIUS, SPARSE_DECODE, TargetAttr
from dialects.sofa_isa import ProgramOp, Sram
from passes.kernel_interface import SymbolKind
from passes.lower_to_isa.decode import (
    DECODE_TILE,
    DecodeError,
    DecodeKernelBase,
    DecodeLowering,
    DecodeStep,
    DecodeSymbol,
    check_tile,
    decode_program,
    stage_decode_inputs,
)
from passes.lower_to_isa.emitter import AttentionStep, Predictor
from passes.lower_to_isa.registers import Sem

MAX_SPARSE_SETS = 4
"""Most per-tile buffer sets a sparse decode kernel rotates through."""


class SparseSymbol(StrEnum):
    """The predictor's cache beside the decode kernel's symbols."""

    KEY_CODES = "kc"


class SparseReg(IntEnum):
    """Registers of a sparse decode kernel."""

    Q = 1
    OUT = 2
    K = 3
    """Byte offset of the (KV head, sample) cache's row 0 in ``ks`` (gathers add index x row)."""
    V = 4
    CODES = 5
    """Byte offset of the (KV head, sample) coded rows in ``kc``."""
    CODE_TILE = 6
    KBASE = 7
    """Global index of the tile's first key."""


@dataclass(frozen=True)
class SparseDecode:
    """Sparse decode at keep ratio `keep` (what a driver asks for in place of a dense `DecodeLowering`)."""

    keep: float


@dataclass(frozen=True)
class SparsePlan:
    """SRAM regions: one Q/O pair, then per buffer set K-hat, A-hat, indices, list, K and V windows."""

    sets: int
    regions: dict[str, tuple[str, int, int]]
    """name -> (buffer, offset of set 0, bytes per set); Q and O have one set."""

    def at(self, name: str, buffer_set: int = 0) -> Sram:
        buffer, offset, size = self.regions[name]
        return Sram(buffer, 0, offset + buffer_set * size)


def plan_sparse_decode(step: DecodeStep, target: TargetAttr, tile: int, m: int) -> SparsePlan:
    """Place the regions (`SparsePlan`) in `target`'s SRAM, as many buffer sets as fit (2 .. `MAX_SPARSE_SETS`)."""
    check_tile(tile)
    lanes, d, dv, element = step.group, step.depth, step.value_depth, DATAPATH.nbytes
    fixed = {"q": ("token", lanes * d * element), "o": ("token", lanes * dv * element)}
    per_set = {
        "k": ("token", tile * d * element),
        "khat": ("token", tile * d * 2),
        "v": ("weight", tile * dv * element),
        "ahat": ("weight", lanes * tile * 2),
        "idx": ("temp", lanes * m * 4),
        "list": ("temp", (tile + 1) * 4),
    }
    sizes = {"token": target.token_sram.data, "weight": target.weight_sram.data, "temp": target.temp_sram.data}
    for sets in range(MAX_SPARSE_SETS, 1, -1):
        regions, tops = {}, dict.fromkeys(sizes, 0)
        for name, (buffer, size) in fixed.items():
            regions[name], tops[buffer] = (buffer, tops[buffer], size), tops[buffer] + size
        for name, (buffer, size) in per_set.items():
            size = -(-size // 64) * 64
            regions[name], tops[buffer] = (buffer, tops[buffer], size), tops[buffer] + sets * size
        if all(tops[buffer] <= sizes[buffer] for buffer in sizes):
            return SparsePlan(sets, regions)
    raise DecodeError(f"SRAM holds fewer than two sparse decode buffer sets of {tile} keys for {lanes} lanes")


@dataclass(kw_only=True)
class SparseDecodeKernel(DecodeKernelBase):
    """Emits the sparse decode kernel of a `DecodeStep` without a shared prefix at keep ratio `keep`."""

    keep: float

    def __post_init__(self) -> None:
        if self.step.prefix:
            raise DecodeError("sparse decode reads each sample's cache whole: give the step no shared prefix")
        if not 0 < self.keep <= 1:
            raise DecodeError(f"keep must be in (0, 1], got {self.keep}")
        if self.step.group > self.target.lanes.data:
            raise DecodeError(f"{self.step.group} query heads per KV head exceed {self.target.lanes.data} lanes")
        self.m = keep_count(self.keep, self.tile)
        self.plan = plan_sparse_decode(self.step, self.target, self.tile, self.m)

    def lay_out(self) -> None:
        step, dtype = self.step, DATAPATH.name
        rows = step.kv_heads * step.batch * step.longest_suffix
        q_rows = step.kv_heads * step.lanes
        self.layout.add(DecodeSymbol.Q, (q_rows, step.depth), dtype, SymbolKind.INPUT)  # type: ignore[arg-type]
        self.layout.add(DecodeSymbol.K_SUFFIX, (rows, step.depth), dtype, SymbolKind.INPUT)  # type: ignore[arg-type]
        self.layout.add(DecodeSymbol.V_SUFFIX, (rows, step.value_depth), dtype, SymbolKind.INPUT)  # type: ignore[arg-type]
        codes = (rows, key_code_row_bytes(step.depth))
        self.layout.add(SparseSymbol.KEY_CODES, codes, "i8", SymbolKind.INPUT)  # type: ignore[arg-type]
        self.layout.add(DecodeSymbol.OUT, (q_rows, step.value_depth), dtype, SymbolKind.OUTPUT)  # type: ignore[arg-type]

    def emit_tile(self, keys: int, kv_len: int) -> None:
        """One KV tile of `keys` keys: codes -> K-hat -> DLZS -> SADS -> RASS -> gather K, V -> SU-FA."""
        step, plan, e, lanes = self.step, self.plan, self.e, self.step.group
        d, dv, element = step.depth, step.value_depth, DATAPATH.nbytes
        s, self.next_set = self.next_set, (self.next_set + 1) % plan.sets
        m = min(self.m, keys)
        khat, ahat, idx, rows = plan.at("khat", s), plan.at("ahat", s), plan.at("idx", s), plan.at("list", s)
        e.dma_lz4(
            khat, self.dram(SparseReg.CODE_TILE, SparseSymbol.KEY_CODES), keys, d,
            wait=(Sem.KHAT_FREE,), signal=(Sem.KHAT_LOADED,),
        )  # fmt: skip
        e.addi(SparseReg.CODE_TILE, SparseReg.CODE_TILE, keys * key_code_row_bytes(d))
        e.score(
            Predictor.DLZS, plan.at("q"), khat, ahat, lanes, keys, d, wait=(Sem.KHAT_LOADED,), signal=(Sem.AHAT_READY,)
        )
        e.sads(
            ahat, idx, lanes, keys, m, NO_RADIUS, SparseReg.KBASE, 0, kv_len, False,
            wait=(Sem.AHAT_READY, Sem.KV_FREE), signal=(Sem.INDICES_READY, Sem.KHAT_FREE),
        )  # fmt: skip
        e.rass(idx, rows, lanes, m, wait=(Sem.INDICES_READY,), signal=(Sem.LIST_READY,))
        k, v = plan.at("k", s), plan.at("v", s)
        e.dma_gather(
            k, self.dram(SparseReg.K, DecodeSymbol.K_SUFFIX), rows, SparseReg.KBASE, self.tile, d * element,
            d * element, wait=(Sem.LIST_READY,),
        )  # fmt: skip
        e.dma_gather(
            v, self.dram(SparseReg.V, DecodeSymbol.V_SUFFIX), rows, SparseReg.KBASE, self.tile, dv * element,
            dv * element, signal=(Sem.KV_FETCHED,),
        )  # fmt: skip
        e.attention_step(
            AttentionStep.SUFA, plan.at("q"), k, v, idx, SparseReg.KBASE, lanes, m, self.tile, d, dv,
            step.logit_scale, wait=(Sem.KV_FETCHED,), signal=(Sem.KV_FREE,),
        )  # fmt: skip
        e.addi(SparseReg.KBASE, SparseReg.KBASE, keys)

    def emit_sample(self, sample: int) -> None:
        """Every KV head of one sample: its group's queries against its cache."""
        step, plan, e, tile, lanes = self.step, self.plan, self.e, self.tile, self.step.group
        d, dv, element, longest = step.depth, step.value_depth, DATAPATH.nbytes, step.longest_suffix
        length = step.cache_lengths[sample]
        e.set(SparseReg.Q, sample * lanes * d * element)
        e.set(SparseReg.OUT, sample * lanes * dv * element)
        e.set(SparseReg.K, sample * longest * d * element)
        e.set(SparseReg.V, sample * longest * dv * element)
        e.set(SparseReg.CODES, sample * longest * key_code_row_bytes(d))
        e.open_loop()
        e.barrier()
        e.dma_load(plan.at("q"), self.dram(SparseReg.Q, DecodeSymbol.Q), lanes, d * element)
        e.barrier()
        e.sufa_init(lanes, dv)
        e.set(SparseReg.KBASE, 0)
        e.addi(SparseReg.CODE_TILE, SparseReg.CODES, 0)
        self.next_set = 0
        whole, tail = divmod(length, tile)
        rounds, rest = divmod(whole, plan.sets)
        if rounds:
            e.open_loop()
            for _ in range(plan.sets):
                self.emit_tile(tile, length)
            e.close_loop(rounds)
        for _ in range(rest):
            self.emit_tile(tile, length)
        if tail:
            self.emit_tile(tail, length)
        e.sufa_norm(plan.at("o"), lanes, dv, signal=(Sem.O_READY,))
        e.dma_store(plan.at("o"), self.dram(SparseReg.OUT, DecodeSymbol.OUT), lanes, dv * element, wait=(Sem.O_READY,))
        rows = step.batch * longest
        e.advance(
            (
                (SparseReg.Q, step.lanes * d * element),
                (SparseReg.OUT, step.lanes * dv * element),
                (SparseReg.K, rows * d * element),
                (SparseReg.V, rows * dv * element),
                (SparseReg.CODES, rows * key_code_row_bytes(d)),
            )
        )
        e.close_loop(step.kv_heads)

    def build(self) -> ProgramOp:
        """The kernel as a `sofa_isa.program` named ``decode_sparse``: samples unrolled, KV heads in a loop."""
        self.lay_out()
        for _ in range(self.plan.sets):
            self.e.post((Sem.KHAT_FREE, Sem.KV_FREE))
        for sample in range(self.step.batch):
            self.emit_sample(sample)
        return self.program("decode_sparse")


def sparse_decode_program(step: DecodeStep, target: TargetAttr, keep: float, tile: int = DECODE_TILE) -> ProgramOp:
    """The sparse decode kernel of `step` (no shared prefix) for `target` at keep ratio `keep`."""
    return SparseDecodeKernel(step=step, target=target, keep=keep, tile=tile).build()


def marked_decode_program(step: DecodeStep, target: TargetAttr, lowering: str, tile: int, keep: float) -> ProgramOp:
    """The kernel a `#sofa.decode` mark names: sparse decode at `keep`, or a dense `DecodeLowering`."""
    if lowering == SPARSE_DECODE:
        return sparse_decode_program(step, target, keep, tile)
    return decode_program(step, target, DecodeLowering(lowering), tile)


def is_sparse_decode_symbols(names: set[str]) -> bool:
    """Whether a kernel's DRAM symbols are a sparse decode kernel's (it reads the predictor's key codes)."""
    return SparseSymbol.KEY_CODES.value in names and DecodeSymbol.K_SUFFIX.value in names


def stage_sparse_decode_inputs(
    step: DecodeStep, q: np.ndarray, k: Sequence[np.ndarray], v: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """`stage_decode_inputs` plus the coded keys ``kc`` (of K as the datapath stores it)."""
    staged = stage_decode_inputs(step, q, k, v)
    keys = staged[DecodeSymbol.K_SUFFIX.value]
    staged[SparseSymbol.KEY_CODES.value] = encode_key_codes(to_datapath(keys)).view(np.int8)
    return staged
