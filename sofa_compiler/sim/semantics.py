"""What each instruction of the SOFA ISA does to the machine's state (the on-demand K/V ones: `on_demand.py`).

A handler ``(machine, instr, pc, work)`` reads and writes the machine's
memories through its checked views, computes with `dialects.numerics` (the
same kernels as the `sofa` dialect's interpreter, so results match it bit
for bit) and records in `work` what the instruction did for the timing model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dialects import numerics
from sofa_compiler.isa.encoding import Instruction
from sofa_compiler.sim.events import Buffer, Work
from sofa_compiler.sim.state import MachineState
from sofa_compiler.sim.traps import Trap, TrapKind


def _wrap32(value: int) -> int:
    return ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def write_register(regs: list[int], instr: Instruction, dram: np.ndarray | None = None) -> None:
    """`set`, `addi` and `tload`, the only instructions that write registers (r0 stays zero); others do nothing.

    `tload` reads its word from `dram` (without it, or outside it, the word reads as 0: the functional
    run traps there, this is for counting ahead).
    """
    args = instr.args
    if instr.op == "set" and args["rd"]:
        regs[args["rd"]] = _wrap32(args["imm"])
    elif instr.op == "addi" and args["rd"]:
        regs[args["rd"]] = _wrap32(regs[args["rs"]] + args["imm"])
    elif instr.op == "tload" and args["rd"]:
        address = regs[args["src"].reg] + args["src"].offset
        inside = dram is not None and 0 <= address <= len(dram) - 4
        word = table_word(dram, address) if inside else 0  # pyright: ignore[reportArgumentType]
        regs[args["rd"]] = _wrap32(regs[args["rs"]] + word)


def table_word(dram: np.ndarray, address: int) -> int:
    """The signed 32-bit little-endian word at `address` (a `tload` table entry)."""
    return int(dram[address : address + 4].view("<i4")[0])


def _ctrl(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    write_register(machine.regs, instr)


def _tload(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    start = machine._dram_start(pc, instr, "src", 1, 4, 4)
    if start % 4:
        raise Trap(pc, str(instr), f"src: table word at {start} is not 4-byte aligned", TrapKind.ADDRESS)
    write_register(machine.regs, instr, machine.dram)
    work.dram_read_bytes = 4  # the sequencer streams the table: its bytes count as DRAM traffic


def _dma_load(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    rows, row_bytes, stride = a["rows"], a["row_bytes"], a["src_stride"]
    if rows >= 1 and (stride == row_bytes or rows == 1):
        # One contiguous block: a plain slice copy (the same checks as the strided view).
        start = machine._dram_start(pc, instr, "src", rows, row_bytes, stride)
        dst = machine.sram_view(pc, instr, "dst", rows * row_bytes, True, work)
        dst[...] = machine.dram[start : start + rows * row_bytes]
    else:
        src = machine._dram_rows(pc, instr, "src", rows, row_bytes, stride)
        dst = machine.sram_view(pc, instr, "dst", rows * row_bytes, True, work)
        dst.reshape(rows, row_bytes)[...] = src
    work.dram_read_bytes = rows * row_bytes
    work.dram_requests = 1 if stride == row_bytes or rows == 1 else rows


def _dma_lz4(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    """`dma.lz4`: coded K rows from DRAM, expanded to fp16 K-hat (`numerics.decode_key_codes`) as they arrive."""
    a = instr.args
    rows, depth, stride = a["rows"], a["depth"], a["src_stride"]
    row_bytes = numerics.key_code_row_bytes(depth)
    coded = machine._dram_rows(pc, instr, "src", rows, row_bytes, stride)
    machine.sram_view(pc, instr, "dst", rows * depth, True, work)[...] = numerics.decode_key_codes(coded, depth).ravel()
    work.dram_read_bytes = rows * row_bytes
    work.dram_requests = 1 if stride == row_bytes or rows == 1 else rows


def _dma_gather(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    indices = machine._index_list(pc, instr, work)
    rel = machine._window_rows(pc, instr, indices)
    row_bytes, stride = a["row_bytes"], a["src_stride"]
    count = len(indices)
    first = int(indices[0]) if count else -1
    if 0 <= first and int(indices[-1]) - first == count - 1 and (count == 1 or (indices[1:] > indices[:-1]).all()):
        # Consecutive rows (e.g. a whole window): one block copy, the same checks and counts as the gather below.
        start = machine._dram_start(pc, instr, "src", first + count, row_bytes, stride) + first * stride
        low = int(rel[0])
        dst = machine.sram_view(pc, instr, "dst", (low + count) * row_bytes, True, work)
        work.sram_write_bytes[Buffer(a["dst"].buffer)] = count * row_bytes
        if stride == row_bytes:
            dst[low * row_bytes :] = machine.dram[start : start + count * row_bytes]
            work.dram_requests = 1
        else:
            src = np.lib.stride_tricks.as_strided(machine.dram[start:], shape=(count, row_bytes), strides=(stride, 1))
            dst.reshape(-1, row_bytes)[low:] = src
            work.dram_requests = count
    elif count:
        src = machine._dram_indexed_rows(pc, instr, "src", indices, row_bytes, stride, work)
        dst = machine.sram_view(pc, instr, "dst", (int(rel.max()) + 1) * row_bytes, True, work)
        work.sram_write_bytes[Buffer(a["dst"].buffer)] = len(indices) * row_bytes
        dst.reshape(-1, row_bytes)[rel] = src[indices]
    work.dram_read_bytes = len(indices) * row_bytes


def _dma_store(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    rows, row_bytes, stride = a["rows"], a["row_bytes"], a["dst_stride"]
    dst = machine._dram_rows(pc, instr, "dst", rows, row_bytes, stride)
    if stride < row_bytes and rows > 1:
        raise Trap(pc, str(instr), f"dst_stride {stride} < row_bytes {row_bytes}: rows would overlap")
    src = machine.sram_view(pc, instr, "src", rows * row_bytes, False, work)
    dst[...] = src.reshape(rows, row_bytes)
    work.dram_write_bytes = rows * row_bytes
    work.dram_requests = 1 if stride == row_bytes or rows == 1 else rows


def _dlzs_key(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    rows, hidden, cols = a["rows"], a["hidden"], a["cols"]
    x = machine.sram_view(pc, instr, "x", rows * hidden, False, work).reshape(rows, hidden)
    xexp = machine.sram_view(pc, instr, "xexp", rows, False, work)
    codes = machine.sram_view(pc, instr, "w", hidden * cols, False, work).reshape(hidden, cols)
    if (codes < 0).any() or (codes > 15).any():
        bad = int(codes[(codes < 0) | (codes > 15)][0])
        raise Trap(pc, str(instr), f"illegal LZ code {bad} in w (codes are 0..15, one per byte)")
    out = numerics.dlzs_key_quantized(x, xexp, codes, a["base"])
    machine.sram_view(pc, instr, "out", rows * cols, True, work)[...] = out.reshape(-1)
    nonzero_x = np.count_nonzero(x, axis=0).astype(np.int64)
    nonzero_w = np.count_nonzero(codes != numerics.LZ_ZERO_CODE, axis=1).astype(np.int64)
    work.shift_adds = int(nonzero_x @ nonzero_w)


def _score_operands(
    machine: MachineState, instr: Instruction, pc: int, work: Work, keys_field: str
) -> tuple[np.ndarray, np.ndarray]:
    """A score instruction's Q ``[lanes, depth]`` and its keys ``[keys, depth]`` (field `keys_field`)."""
    lanes, keys, depth = (instr.args[name] for name in ("lanes", "keys", "depth"))
    q = machine.sram_view(pc, instr, "q", lanes * depth, False, work).reshape(lanes, depth)
    k = machine.sram_view(pc, instr, keys_field, keys * depth, False, work).reshape(keys, depth)
    return q, k


@dataclass(frozen=True)
class LzLatch:
    """The LZ codes of the Q tile the LZEs last encoded, held for the next `dlzs.score`s of that tile.

    Keyed by the Q operand's place (buffer, address, lanes, depth) and kept only
    while those SRAM bytes are unchanged (the model compares them; hardware
    would clear the latch on a write to the range): a query tile's codes are
    encoded once, not once per KV tile.
    """

    place: tuple[str, int, int, int]
    q: np.ndarray
    power: np.ndarray
    nonzero: np.ndarray


def _q_codes(machine: MachineState, instr: Instruction, pc: int, work: Work) -> LzLatch:
    """The LZ codes of `dlzs.score`'s Q, from the latch when it holds them; an encode (and its count) otherwise."""
    lanes, depth = instr.args["lanes"], instr.args["depth"]
    operand = instr.args["q"]
    place = (operand.buffer, machine.regs[operand.reg] + operand.offset, lanes, depth)
    q = machine.sram_view(pc, instr, "q", lanes * depth, False, Work()).reshape(lanes, depth)
    latch = machine.lz_latch
    if latch is not None and latch.place == place and np.array_equal(latch.q.view(np.uint8), q.view(np.uint8)):
        return latch
    q = machine.sram_view(pc, instr, "q", lanes * depth, False, work).reshape(lanes, depth)  # the LZEs read Q
    machine.lz_latch = latch = LzLatch(place, q.copy(), numerics.q_lz_power(q), _nonzero_columns(q))
    work.lz_encodes = lanes * depth
    return latch


def _dlzs_score(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    lanes, keys, depth = (instr.args[name] for name in ("lanes", "keys", "depth"))
    codes = _q_codes(machine, instr, pc, work)
    khat = machine.sram_view(pc, instr, "khat", keys * depth, False, work).reshape(keys, depth)
    out = numerics.dlzs_score_power(codes.power, khat)
    machine.sram_view(pc, instr, "out", lanes * keys, True, work)[...] = out.reshape(-1)
    work.shift_adds = int(codes.nonzero @ _nonzero_columns(khat))


def _mul4_score(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    lanes, keys, depth = (instr.args[name] for name in ("lanes", "keys", "depth"))
    q, k = _score_operands(machine, instr, pc, work, "k")
    out = numerics.mul4_score(q, k)
    machine.sram_view(pc, instr, "out", lanes * keys, True, work)[...] = out.reshape(-1)
    work.mul4_macs = lanes * keys * depth


def _nonzero_columns(values: np.ndarray) -> np.ndarray:
    """``np.count_nonzero(values, axis=0)`` as int64; fp16 is tested on its bits (faster, same answer)."""
    if values.dtype == np.float16:
        return ((values.view(np.int16) & np.int16(0x7FFF)) != 0).sum(axis=0, dtype=np.int64)
    return np.count_nonzero(values, axis=0).astype(np.int64)


def _sads_valid(machine: MachineState, instr: Instruction) -> np.ndarray:
    """`sads`'s valid keys ``[lanes, keys]``: below kv_len and, when causal, at most the lane's query."""
    a = instr.args
    lanes, keys = a["lanes"], a["keys"]
    key_base = machine.regs[a["key_base"]]
    query_base = machine.regs[a["query_base"]]
    last_key = key_base + keys - 1
    if last_key < a["kv_len"] and (not a["causal"] or last_key <= query_base):
        # Every key of the tile is valid for every lane (the causal bound holds for the first lane).
        return machine.all_true((lanes, keys))
    global_keys = key_base + np.arange(keys)
    valid = np.broadcast_to(global_keys < a["kv_len"], (lanes, keys))
    if a["causal"]:
        valid = valid & (global_keys[None, :] <= (query_base + np.arange(lanes))[:, None])
    return valid


def _sads(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    select_tile(machine, instr, pc, work, _sads_valid(machine, instr))


def _sads_mask(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    lanes, keys = a["lanes"], a["keys"]
    bitmap = machine.sram_view(pc, instr, "bitmap", lanes * -(-keys // 8), False, work)
    select_tile(machine, instr, pc, work, _sads_valid(machine, instr) & numerics.bitmap_valid(bitmap, lanes, keys))


def _sads_band(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    if a["dilation"] < 1:
        raise Trap(pc, str(instr), "dilation must be >= 1")
    band = numerics.BandMask(a["left"], a["right"], 0, a["dilation"])
    queries = machine.regs[a["query_base"]] + np.arange(a["lanes"])
    keys = machine.regs[a["key_base"]] + np.arange(a["keys"])
    select_tile(machine, instr, pc, work, _sads_valid(machine, instr) & band.visible(queries, keys))


def select_tile(
    machine: MachineState, instr: Instruction, pc: int, work: Work, valid: np.ndarray, scores: np.ndarray | None = None
) -> None:
    """SADS over the tile's valid keys: the selection, and its work counts. `scores`: what it ranks (default:
    the A-hat tile at the ``scores`` operand)."""
    a = instr.args
    lanes, keys, m = a["lanes"], a["keys"], a["m"]
    if scores is None:
        scores = machine.sram_view(pc, instr, "scores", lanes * keys, False, work).reshape(lanes, keys)
    key_base = machine.regs[a["key_base"]]
    radius = float(a["radius"])
    local, surviving = numerics.sads_tile_sphere(scores, valid, m, radius)
    out = machine.sram_view(pc, instr, "out", lanes * m, True, work).reshape(local.shape)
    if local.size and local.min() >= 0:  # no empty slot: every entry is shifted by key_base
        np.add(local, key_base, out=out)
    else:
        out[...] = np.where(local == numerics.NO_INDEX, numerics.NO_INDEX, local + key_base).astype(np.int32)
    # Cost model (digest §3.4, reading (a)): ceil(m / outputs) passes of
    # ceil(|FR| / inputs) rounds per lane; 4 and 12 on the paper's cores.
    passes = math.ceil(m / machine.sads_outputs)
    work.sort_rounds = int(passes * np.sum(-(-surviving // machine.sads_inputs)))
    work.compares = lanes * keys


def _rass(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    lanes, m = a["lanes"], a["m"]
    idx = machine.sram_view(pc, instr, "idx", lanes * m, False, work)
    lowest = int(idx.min()) if idx.size else -1
    if lowest >= 0:  # every slot filled (the usual case): no compaction
        chosen, low = idx, lowest
    else:
        chosen = idx[idx >= 0]
        low = int(chosen.min()) if chosen.size else 0
    span = int(chosen.max()) - low + 1 if chosen.size else 0
    if span <= 4 * chosen.size + 1024:
        # Counting sort over the (small) key range: keys come out ascending, as np.unique gives them.
        counts = np.bincount(np.subtract(chosen, low, dtype=np.intp), minlength=span)
        present = np.flatnonzero(counts)
        keys, shared = present + low, counts[present]
    else:
        keys, shared = np.unique(chosen, return_counts=True)
    # Most-shared first, ties by key (keys are ascending, so a stable sort on the count alone).
    order = np.argsort(-shared, kind="stable")
    listed = machine.sram_view(pc, instr, "out", 1 + len(keys), True, work)
    listed[0] = len(keys)
    listed[1:] = keys[order]
    work.compares = int(chosen.size)


def _sufa_init(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    machine.sufa_state = numerics.SufaState.empty(instr.args["lanes"], instr.args["vdepth"])
    machine.sufa_shape = (instr.args["lanes"], instr.args["vdepth"])


def check_sufa(machine: MachineState, instr: Instruction, pc: int) -> numerics.SufaState:
    if machine.sufa_state is None:
        raise Trap(pc, str(instr), "SU-FA accumulators are not initialised (no sufa.init before)")
    shape = (instr.args["lanes"], instr.args["vdepth"])
    if shape != machine.sufa_shape:
        raise Trap(
            pc,
            str(instr),
            f"lanes/vdepth {shape} differ from the sufa.init that opened the accumulators {machine.sufa_shape}",
        )
    return machine.sufa_state


def merge_macs(lanes: int, vdepth: int) -> int:
    """MACs of merging one KV tile's partial sums into the accumulators (Fig. 10b, lines 5-6).

    Per lane, o (vdepth values) and l are combined as ``x e^(m_old - m) + x_j e^(m_j - m)``;
    one of the two factors is 1 (the larger maximum's), so each element costs one
    multiply-add. FA-2's per-tile rescale of o and l is the same count: the cost
    model charges both (the paper merges once at the end; the count is the same
    per tile merged).
    """
    return lanes * (vdepth + 1)


def _sufa_step(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    attention_tile(machine, instr, pc, work)


def attention_tile(
    machine: MachineState, instr: Instruction, pc: int, work: Work, bias: np.ndarray | None = None
) -> None:
    """One SU-FA tile step over the selected keys; `bias` ``[lanes, window]`` (fp32 of `sufa.bias`) is added
    to the exact scores after the softcap register's cap."""
    a = instr.args
    state = check_sufa(machine, instr, pc)
    lanes, m, window, depth, vdepth = a["lanes"], a["m"], a["window"], a["depth"], a["vdepth"]
    q = machine.sram_view(pc, instr, "q", lanes * depth, False, work).reshape(lanes, depth)
    idx = machine.sram_view(pc, instr, "idx", lanes * m, False, work).reshape(lanes, m)
    base = machine.regs[a["key_base"]]
    lowest, highest = (int(idx.min()), int(idx.max())) if idx.size else (-1, -1)
    if 0 <= lowest and base <= lowest and highest - base < window:
        # Every slot filled (no NO_INDEX) and inside the window: the differences are exact in int32.
        slots = idx - base
        empty_slots = 0
    else:
        idx = idx.astype(np.int64)
        empty = idx == numerics.NO_INDEX
        if empty.any():
            rel = machine._window_rows(pc, instr, idx[~empty])
            slots = np.full((lanes, m), numerics.NO_INDEX, np.int64)
            slots[~empty] = rel
        else:
            slots = machine._window_rows(pc, instr, idx.reshape(-1)).reshape(lanes, m)
        empty_slots = int(np.count_nonzero(empty))
    k = machine.sram_view(pc, instr, "k", window * depth, False, work).reshape(window, depth)
    v = machine.sram_view(pc, instr, "v", window * vdepth, False, work).reshape(window, vdepth)
    # SADS never selects masked keys, so without a bias tile selected slots carry no extra bias.
    slot_bias = None if bias is None else slot_values(bias, slots)
    q64 = machine.memo("sufa.q", q, lambda q: q.astype(np.float64))
    partial = numerics.sufa_tile_step(q64, k, v, slots, slot_bias, float(a["scale"]), machine.softcap)
    machine.sufa_state = numerics.sufa_accumulate(state, partial)
    selected = lanes * m - empty_slots
    counts = attention_step_work("sufa.step", lanes, m, selected, depth, vdepth, window)
    work.macs, work.exps, work.compares, work.dense_ops = counts.macs, counts.exps, counts.compares, counts.dense_ops
    work.max_updates = partial.max_updates
    add_score_work(machine, work, selected, bias is not None)


def slot_values(tile: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """``tile[lane, slot]`` as fp64 for each lane's window-local slots ``[lanes, m]``; -inf for empty slots."""
    empty = slots == numerics.NO_INDEX
    safe = np.where(empty, 0, slots)
    values = np.take_along_axis(np.asarray(tile, np.float64), safe, axis=-1)
    return np.where(empty, -np.inf, values)


def add_score_work(machine: MachineState, work: Work, scores: int, biased: bool) -> None:
    """SU-FA's extra work per selected score (docs/cost-model.md): the cap's tanh on the EXP and DIV units
    (tanh x = 1 - 2 / (e^2x + 1)) and a bias tile's add in the MAC stage."""
    if machine.softcap:
        work.exps += scores
        work.divs += scores
    if biased:
        work.macs += scores


def attention_step_work(op: str, lanes: int, m: int, selected: int, depth: int, vdepth: int, window: int) -> Work:
    """The work counts of one `sufa.step` or `fa2.step` over `selected` keys (max updates aside).

    SU-FA compares its first two slots per lane (the predicted maximum) plus the
    merge's compare; FA-2 compares every selected score against the running
    maximum and takes one EXP a lane for its rescale, where SU-FA takes two for
    its merge. Both pay `merge_macs`. The separate-stage baselines
    (`sofa_compiler.baselines`) price their attention steps with this too.
    """
    work = Work(
        macs=selected * (depth + vdepth) + merge_macs(lanes, vdepth), dense_ops=2 * lanes * window * (depth + vdepth)
    )
    if op == "fa2.step":
        work.compares, work.exps = selected + lanes, selected + lanes
    else:
        work.compares, work.exps = lanes * min(2, m) + lanes, selected + 2 * lanes
    return work


def _fa2_step(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    """The baseline's FlashAttention-2 step: the same numbers as sufa.step, FA-2's costs.

    FA-2 does not know where the maximum is, so it compares every score
    against the running max (paper §4.1, lines 5-8), instead of SU-FA's two
    compares per lane. Its rescale of l and o by exp(m_old - m_new) costs the
    MACs of SU-FA's tile merge (`merge_macs`), which `sufa.step` already counts.
    """
    _sufa_step(machine, instr, pc, work)
    a = instr.args
    lanes, vdepth = a["lanes"], a["vdepth"]
    selected = (work.macs - merge_macs(lanes, vdepth)) // (a["depth"] + vdepth)
    counts = attention_step_work("fa2.step", lanes, a["m"], selected, a["depth"], vdepth, a["window"])
    work.compares, work.exps = counts.compares, counts.exps + (selected if machine.softcap else 0)
    work.max_updates = 0


def _sufa_dense(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    """`sufa.dense`: lanes ``lane0 ..`` of the open accumulators attend to every key of the window.

    The other lanes keep their state, so a decode kernel can stream a shared
    prefix to every lane and then each sample's suffix to its own lanes; the
    per-lane merge is SU-FA's, so the result equals one stream over both.
    """
    a = instr.args
    state = machine.sufa_state
    if state is None or machine.sufa_shape is None:
        raise Trap(pc, str(instr), "SU-FA accumulators are not initialised (no sufa.init before)")
    lane0, lanes, keys, depth, vdepth = a["lane0"], a["lanes"], a["keys"], a["depth"], a["vdepth"]
    open_lanes, open_vdepth = machine.sufa_shape
    if lane0 + lanes > open_lanes or vdepth != open_vdepth:
        raise Trap(
            pc, str(instr),
            f"lanes {lane0}..{lane0 + lanes - 1} (vdepth {vdepth}) lie outside the accumulators sufa.init opened "
            f"({open_lanes} lanes, vdepth {open_vdepth})",
        )  # fmt: skip
    q = machine.sram_view(pc, instr, "q", lanes * depth, False, work).reshape(lanes, depth)
    k = machine.sram_view(pc, instr, "k", keys * depth, False, work).reshape(keys, depth)
    v = machine.sram_view(pc, instr, "v", keys * vdepth, False, work).reshape(keys, vdepth)
    slots = np.broadcast_to(np.arange(keys, dtype=np.int64), (lanes, keys))
    partial = numerics.sufa_tile_step(q.astype(np.float64), k, v, slots, None, float(a["scale"]))
    rows = slice(lane0, lane0 + lanes)
    part = numerics.SufaState(state.row_max[rows], state.denominator[rows], state.numerator[rows], state.live[rows])
    merged = numerics.sufa_accumulate(part, partial)
    state.row_max[rows], state.denominator[rows] = merged.row_max, merged.denominator
    state.numerator[rows], state.live[rows] = merged.numerator, merged.live
    counts = attention_step_work("sufa.step", lanes, keys, lanes * keys, depth, vdepth, keys)
    work.macs, work.exps, work.compares, work.dense_ops = counts.macs, counts.exps, counts.compares, counts.dense_ops
    work.max_updates = partial.max_updates


def _topk_mask(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    lanes, keys, m = a["lanes"], a["keys"], a["m"]
    scores = machine.sram_view(pc, instr, "scores", lanes * keys, True, work).reshape(lanes, keys)
    query_base = machine.regs[a["query_base"]]
    keys_index = np.arange(keys)
    valid = np.broadcast_to(keys_index < a["kv_len"], (lanes, keys))
    if a["causal"]:
        valid = valid & (keys_index[None, :] <= (query_base + np.arange(lanes))[:, None])
    scores[...] = numerics.topk_mask_rows(scores, valid, m)
    # A streaming sort over the whole row: ceil(m / outputs) passes of ceil(valid / inputs) rounds.
    passes = math.ceil(m / machine.sads_outputs)
    valid_counts = np.count_nonzero(valid, axis=1)
    work.sort_rounds = int(passes * np.sum(-(-valid_counts // machine.sads_inputs)))
    work.compares = lanes * keys


def _sufa_norm(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    state = check_sufa(machine, instr, pc)
    out = numerics.sufa_finish(state)
    machine.sram_view(pc, instr, "out", out.size, True, work)[...] = out.reshape(-1)
    work.divs = out.size


HANDLERS = {  # mnemonic -> handler; `functional` adds the on-demand K/V ones
    "halt": _ctrl,
    "set": _ctrl,
    "addi": _ctrl,
    "tload": _tload,
    "loop": _ctrl,
    "loopr": _ctrl,
    "barrier": _ctrl,
    "post": _ctrl,
    "dma.load": _dma_load,
    "dma.prefetch": _dma_load,
    "dma.gather": _dma_gather,
    "dma.store": _dma_store,
    "dlzs.key": _dlzs_key,
    "dlzs.score": _dlzs_score,
    "sads": _sads,
    "sads.mask": _sads_mask,
    "sads.band": _sads_band,
    "rass": _rass,
    "sufa.init": _sufa_init,
    "sufa.step": _sufa_step,
    "fa2.step": _fa2_step,
    "mul4.score": _mul4_score,
    "topk.mask": _topk_mask,
    "sufa.norm": _sufa_norm,
    "sufa.dense": _sufa_dense,
    "dma.lz4": _dma_lz4,
}
