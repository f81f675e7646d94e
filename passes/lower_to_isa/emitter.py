"""Typed construction of `sofa_isa` instruction ops, with nested hardware loops.

One method per instruction (or per family that shares its fields, picked by an
enum, never by a mnemonic string at the call site); semaphores are `Sem`
values and registers `IntEnum` roles (`registers`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum, IntEnum
from typing import Any

from xdsl.ir import Operation

from dialects.numerics import ACCUMULATOR, DATAPATH
from dialects.sofa_isa import INSTRUCTION_OPS, Dram, LoopOp, LoopRegOp, Sram
from passes.lower_to_isa.registers import Sem
from passes.tile_plan import KV_BUFFER_SETS

Semaphores = Iterable[Sem]


class Predictor(Enum):
    """The A-hat predictor array's mode (its mnemonic is the value)."""

    DLZS = "dlzs.score"
    """SOFA's log-domain prediction from K-hat."""
    MUL4 = "mul4.score"
    """Prior work's 4-bit multiply (ablation)."""


class AttentionStep(Enum):
    """The attention array's tile step (its mnemonic is the value)."""

    SUFA = "sufa.step"
    FA2 = "fa2.step"
    """FlashAttention-2 (baseline and ablation)."""


class LoadQueue(Enum):
    """The DMA load queue a strided load goes to (its mnemonic is the value)."""

    MAIN = "dma.load"
    """Q, K/V and everything else, in program order with the gathers."""
    PREFETCH = "dma.prefetch"
    """Prediction operands (K-hat), so that they run ahead of the K/V gathers."""


class KvGenMode(IntEnum):
    """How `kvgen` combines a chunk's product with its output rows."""

    ASSIGN = 0
    ACCUMULATE = 1
    FROM_BIAS = 2


def _mask(semaphores: Semaphores) -> int:
    return sum(1 << semaphore for semaphore in semaphores)


class Emitter:
    """Collects instruction ops, with nested hardware loops."""

    def __init__(self) -> None:
        self.blocks: list[list[Operation]] = [[]]

    def _emit(self, mnemonic: str, wait: Semaphores, signal: Semaphores, **values: Any) -> None:
        self.blocks[-1].append(INSTRUCTION_OPS[mnemonic].build_op(values, _mask(wait), _mask(signal)))

    # --- loops --------------------------------------------------------------

    def open_loop(self) -> None:
        self.blocks.append([])

    def close_loop(self, count: int) -> None:
        body = self.blocks.pop()
        if count == 1:
            self.blocks[-1].extend(body)
            return
        self.blocks[-1].append(LoopOp(count, body))

    def close_loop_register(self, register: int) -> None:
        """Close the innermost loop as a `loopr`: its count is read from `register` at run time."""
        body = self.blocks.pop()
        self.blocks[-1].append(LoopRegOp(int(register), body))

    def tile_loop(self, tiles: int, step: Callable[[int], None], group: int = KV_BUFFER_SETS) -> None:
        """`tiles` KV-tile steps ``step(i)``, i going round 0 .. group - 1 (the buffer sets): a loop over
        whole groups, then the steps left over (0, 1, ...)."""
        groups, rest = divmod(tiles, group)
        if groups:
            self.open_loop()
            for index in range(group):
                step(index)
            self.close_loop(groups)
        for index in range(rest):
            step(index)

    def ops(self) -> list[Operation]:
        assert len(self.blocks) == 1
        return self.blocks[0]

    # --- control ------------------------------------------------------------

    def halt(self) -> None:
        self._emit("halt", (), ())

    def barrier(self) -> None:
        self._emit("barrier", (), ())

    def post(self, signal: Semaphores) -> None:
        self._emit("post", (), signal)

    def set(self, rd: int, imm: int) -> None:
        self._emit("set", (), (), rd=int(rd), imm=imm)

    def addi(self, rd: int, rs: int, imm: int) -> None:
        self._emit("addi", (), (), rd=int(rd), rs=int(rs), imm=imm)

    def tload(self, rd: int, rs: int, src: Dram) -> None:
        """``rd = rs + table word at src`` (a mask's index lists)."""
        self._emit("tload", (), (), rd=int(rd), rs=int(rs), src=src)

    def softcap(self, cap: float) -> None:
        """Set the SADS and SU-FA units' score-cap register (0: no cap)."""
        self._emit("softcap", (), (), cap=cap)

    def advance(self, steps: Iterable[tuple[int, int]]) -> None:
        """``reg += step`` for each ``(reg, step)``, in order."""
        for reg, step in steps:
            self.addi(reg, reg, step)

    # --- DMA ----------------------------------------------------------------

    def dma_load(
        self, dst: Sram, src: Dram, rows: int, row_bytes: int, src_stride: int | None = None,
        wait: Semaphores = (), signal: Semaphores = (), queue: LoadQueue = LoadQueue.MAIN,
    ) -> None:  # fmt: skip
        """Rows of `row_bytes` from DRAM, `src_stride` apart (default: packed), on load queue `queue`."""
        stride = row_bytes if src_stride is None else src_stride
        self._emit(queue.value, wait, signal, dst=dst, src=src, rows=rows, row_bytes=row_bytes, src_stride=stride)

    def dma_store(
        self, src: Sram, dst: Dram, rows: int, row_bytes: int, dst_stride: int | None = None,
        wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        stride = row_bytes if dst_stride is None else dst_stride
        self._emit("dma.store", wait, signal, src=src, dst=dst, rows=rows, row_bytes=row_bytes, dst_stride=stride)

    def dma_lz4(
        self, dst: Sram, src: Dram, rows: int, depth: int, wait: Semaphores = (), signal: Semaphores = ()
    ) -> None:
        """Coded K rows (the predictor's cache, packed one after another) as fp16 K-hat, on the prefetch queue."""
        row_bytes = 1 + -(-depth // 2)
        self._emit("dma.lz4", wait, signal, dst=dst, src=src, rows=rows, depth=depth, src_stride=row_bytes)

    def dma_gather(
        self, dst: Sram, src: Dram, rows: Sram, key_base: int, window: int, row_bytes: int, src_stride: int,
        wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        """The rows listed in `rows` (an index list) into a window of `window` rows from `key_base`."""
        self._emit(
            "dma.gather", wait, signal, dst=dst, src=src, list=rows, key_base=int(key_base), window=window,
            row_bytes=row_bytes, src_stride=src_stride,
        )  # fmt: skip

    def dma_scatter(
        self, src: Sram, dst: Dram, rows: Sram, key_base: int, window: int, row_bytes: int, dst_stride: int
    ) -> None:
        self._emit(
            "dma.scatter", (), (), src=src, dst=dst, list=rows, key_base=int(key_base), window=window,
            row_bytes=row_bytes, dst_stride=dst_stride,
        )  # fmt: skip

    # --- prediction, selection ----------------------------------------------

    def dlzs_key(
        self, x: Sram, xexp: Sram, w: Sram, out: Sram, rows: int, hidden: int, cols: int, base: int,
        wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        self._emit(
            "dlzs.key", wait, signal, x=x, xexp=xexp, w=w, out=out, rows=rows, hidden=hidden, cols=cols, base=base
        )

    def score(
        self, predictor: Predictor, q: Sram, keys_in: Sram, out: Sram, lanes: int, keys: int, depth: int,
        wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        """A-hat of a query tile against `keys` key rows (K-hat for DLZS, K for the 4-bit multiply)."""
        key_field = {Predictor.DLZS: "khat", Predictor.MUL4: "k"}[predictor]
        values = {"q": q, key_field: keys_in, "out": out, "lanes": lanes, "keys": keys, "depth": depth}
        self._emit(predictor.value, wait, signal, **values)

    def sads(
        self, scores: Sram, out: Sram, lanes: int, keys: int, m: int, radius: float, key_base: int,
        query_base: int, kv_len: int, causal: bool, wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        self._emit(
            "sads", wait, signal, scores=scores, out=out, lanes=lanes, keys=keys, m=m, radius=radius,
            key_base=int(key_base), query_base=int(query_base), kv_len=kv_len, causal=int(causal),
        )  # fmt: skip

    def sads_mask(
        self, bitmap: Sram, scores: Sram, out: Sram, lanes: int, keys: int, m: int, radius: float, key_base: int,
        query_base: int, kv_len: int, causal: bool, wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        """`sads` over the keys whose `bitmap` bit is set (a partial tile of a general mask)."""
        self._emit(
            "sads.mask", wait, signal, bitmap=bitmap, scores=scores, out=out, lanes=lanes, keys=keys, m=m,
            radius=radius, key_base=int(key_base), query_base=int(query_base), kv_len=kv_len, causal=int(causal),
        )  # fmt: skip

    def sads_bias(
        self, bias: Sram, scores: Sram, out: Sram, lanes: int, keys: int, m: int, radius: float, key_base: int,
        scale: float, wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        """`sads` ranking cap(scale A-hat) + the fp32 `bias` tile (-inf: masked); `radius` in logits."""
        self._emit(
            "sads.bias", wait, signal, bias=bias, scores=scores, out=out, lanes=lanes, keys=keys, m=m,
            radius=radius, key_base=int(key_base), scale=scale,
        )  # fmt: skip

    def sads_band(
        self, band: tuple[int, int, int], scores: Sram, out: Sram, lanes: int, keys: int, m: int, radius: float,
        key_base: int, query_base: int, kv_len: int, wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        """`sads` over the keys of a closed-form band ``(left, right, dilation)`` around the lanes' queries."""
        left, right, dilation = band
        self._emit(
            "sads.band", wait, signal, left=left, right=right, dilation=dilation, scores=scores, out=out,
            lanes=lanes, keys=keys, m=m, radius=radius, key_base=int(key_base), query_base=int(query_base),
            kv_len=kv_len, causal=0,
        )  # fmt: skip

    def sads_reset(self, lanes: int) -> None:
        self._emit("sads.reset", (), (), lanes=lanes)

    def sads_budget(
        self, scores: Sram, out: Sram, lanes: int, keys: int, slots: int, quota: int, far: int, radius: float,
        key_base: int, query_base: int, kv_len: int, causal: bool, wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        """Budgeted SADS (`numerics.sads_budget_tile`) into `slots` indices per lane."""
        self._emit(
            "sads.budget", wait, signal, scores=scores, out=out, lanes=lanes, keys=keys, m=slots, quota=quota,
            far=far, radius=radius, key_base=int(key_base), query_base=int(query_base), kv_len=kv_len,
            causal=int(causal),
        )  # fmt: skip

    def rass(self, idx: Sram, out: Sram, lanes: int, m: int, wait: Semaphores = (), signal: Semaphores = ()) -> None:
        self._emit("rass", wait, signal, idx=idx, out=out, lanes=lanes, m=m)

    def topk_mask(
        self, scores: Sram, lanes: int, keys: int, m: int, query_base: int, kv_len: int, causal: bool
    ) -> None:
        self._emit(
            "topk.mask", (), (), scores=scores, lanes=lanes, keys=keys, m=m, query_base=int(query_base),
            kv_len=kv_len, causal=int(causal),
        )  # fmt: skip

    # --- K/V generation -------------------------------------------------------

    def kvmark(
        self, idx: Sram, bitmap: Sram, lanes: int, m: int, keys: int, wait: Semaphores = (), signal: Semaphores = ()
    ) -> None:
        self._emit("kvmark", wait, signal, idx=idx, bitmap=bitmap, lanes=lanes, m=m, keys=keys)

    def kvlist(self, bitmap: Sram, out: Sram, key_base: int, window: int, clear: bool) -> None:
        self._emit("kvlist", (), (), bitmap=bitmap, out=out, key_base=int(key_base), window=window, clear=int(clear))

    def kvgen(
        self, x: Sram, w: Sram, out: Sram, rows: Sram, key_base: int, window: int, hidden: int, cols: int,
        bias: Sram, mode: KvGenMode,
    ) -> None:  # fmt: skip
        """fp32 K or V rows of the listed keys from a chunk of `hidden` token columns."""
        self._emit(
            "kvgen", (), (), x=x, w=w, out=out, list=rows, key_base=int(key_base), window=window, hidden=hidden,
            cols=cols, dtype=ACCUMULATOR.name, bias=bias, mode=int(mode),
        )  # fmt: skip

    def kvround(self, src: Sram, out: Sram, rows: Sram, key_base: int, window: int, cols: int) -> None:
        """The listed generated rows, rounded from fp32 accumulators to the datapath's fp16."""
        self._emit("kvround", (), (), src=src, out=out, list=rows, key_base=int(key_base), window=window, cols=cols)

    # --- attention --------------------------------------------------------------

    def sufa_init(self, lanes: int, vdepth: int) -> None:
        self._emit("sufa.init", (), (), lanes=lanes, vdepth=vdepth)

    def attention_step(
        self, step: AttentionStep, q: Sram, k: Sram, v: Sram, idx: Sram, key_base: int, lanes: int, m: int,
        window: int, depth: int, vdepth: int, scale: float, wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        """One KV tile of attention over the selected keys, on fp16 (datapath) operands."""
        self._emit(
            step.value, wait, signal, q=q, k=k, v=v, idx=idx, key_base=int(key_base), lanes=lanes, m=m,
            window=window, depth=depth, vdepth=vdepth, scale=scale, dtype=DATAPATH.name,
        )  # fmt: skip

    def sufa_bias(
        self, q: Sram, k: Sram, v: Sram, idx: Sram, bias: Sram, key_base: int, lanes: int, m: int, window: int,
        depth: int, vdepth: int, scale: float, wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        """`sufa.step` adding the fp32 `bias` tile [lanes, window] to the exact scores."""
        self._emit(
            "sufa.bias", wait, signal, q=q, k=k, v=v, idx=idx, key_base=int(key_base), lanes=lanes, m=m,
            window=window, depth=depth, vdepth=vdepth, scale=scale, dtype=DATAPATH.name, bias=bias,
        )  # fmt: skip

    def sufa_norm(self, out: Sram, lanes: int, vdepth: int, signal: Semaphores = ()) -> None:
        self._emit("sufa.norm", (), signal, out=out, lanes=lanes, vdepth=vdepth)

    def sufa_dense(
        self, q: Sram, k: Sram, v: Sram, lane0: int, lanes: int, keys: int, depth: int, vdepth: int, scale: float,
        wait: Semaphores = (), signal: Semaphores = (),
    ) -> None:  # fmt: skip
        """Lanes ``lane0 .. lane0 + lanes - 1`` attend to all `keys` rows of the K/V window (fp16 operands)."""
        self._emit(
            "sufa.dense", wait, signal, q=q, k=k, v=v, lane0=lane0, lanes=lanes, keys=keys, depth=depth,
            vdepth=vdepth, scale=scale, dtype=DATAPATH.name,
        )  # fmt: skip
