"""The simulator's fast paths give exactly what the straightforward computation gives.

Each fast path in `dialects.numerics` (SU-FA, SADS) and in the functional
machine is checked bit for bit against a plain reference written here (the
kernels as they were before the fast paths), on random and adversarial
inputs: empty slots (NO_INDEX), duplicate indices, masks, -inf / +inf / NaN
scores, ties, ascending and descending slot orders, f16 and f32 operands.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from dialects import numerics
from dialects.sofa_isa import Dram, Sram
from sofa_compiler.isa.encoding import Instruction
from sofa_compiler.sim import functional
from sofa_compiler.sim.events import Buffer, Work
from sofa_compiler.sim.traps import Trap, TrapKind

NO_INDEX = numerics.NO_INDEX


# ---------------------------------------------------------------------------
# References: the kernels before the fast paths
# ---------------------------------------------------------------------------


def _reference_running_max(scores: np.ndarray) -> np.ndarray:
    """The running maximum over slots (axis 0), one slot at a time."""
    current = np.array(scores, dtype=np.float64)
    for j in range(1, len(current)):
        current[j] = np.maximum(current[j], current[j - 1])
    return current


def reference_tile_step(q, k_window, v_window, slots, bias, scale) -> numerics.SufaPartial:
    q64 = np.asarray(q, np.float64)
    all_scores = numerics.fp32_overflow(q64 @ np.asarray(k_window, np.float64).T) * float(np.float32(scale))
    rows, width = all_scores.shape
    empty = slots == NO_INDEX
    safe_slots = np.where(empty, 0, slots)
    scores = np.take_along_axis(all_scores, safe_slots, axis=-1)
    if bias is not None:
        scores = scores + bias
    if empty.any():
        scores = np.where(empty, -np.inf, scores)
    slot_major = np.ascontiguousarray(scores.T)
    running_max = _reference_running_max(slot_major)
    updates = int(np.count_nonzero(slot_major[1:] > running_max[:-1]))
    row_max = running_max[-1] if scores.shape[-1] else np.full(rows, -np.inf)
    poisoned = np.isnan(row_max) | (row_max == np.inf)  # IEEE: such a row's softmax is NaN
    row_max = np.where(poisoned, np.nan, row_max)
    safe_max = np.where(np.isfinite(row_max), row_max, 0.0)
    weights = np.where(poisoned[:, None], 0.0, np.exp(scores - safe_max[:, None]))
    weights = weights.astype(np.float16).astype(np.float64)  # P is a 16-bit PV operand (docs/isa.md, "Numerics")
    flat_slots = safe_slots + (np.arange(rows) * width)[:, None]
    window_weights = np.bincount(flat_slots.ravel(), weights=weights.ravel(), minlength=all_scores.size)
    window_weights = window_weights.reshape(all_scores.shape)
    denominator = weights.sum(axis=-1)
    numerator = window_weights @ np.asarray(v_window, np.float64)
    denominator[poisoned] = np.nan
    numerator[poisoned] = np.nan
    # A row reaches a key when a slot is filled and its bias does not mask it (its score may still be -inf).
    live = (~empty & (True if bias is None else ~np.isneginf(bias))).any(axis=-1)
    return numerics.SufaPartial(row_max, denominator, numerator, updates, live)


def naive_max_updates(scores: np.ndarray) -> int:
    """Max-ensure events one score at a time, as the AP unit sees them."""
    count = 0
    for row in scores:
        if not len(row):
            continue
        best = row[0]
        for value in row[1:]:
            if value > best:
                count += 1
            best = np.maximum(best, value)
    return count


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def same_max(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal maxima; the sign of a zero maximum is free (no later step can see it), NaN equals NaN."""
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


# ---------------------------------------------------------------------------
# Adversarial SU-FA tiles
# ---------------------------------------------------------------------------


def _tile_case(seed: int):
    rng = np.random.default_rng(seed)
    rows = int(rng.choice([1, 2, 5, 16, 64]))
    window = int(rng.choice([1, 3, 8, 32, 128]))
    depth = int(rng.choice([1, 4, 16]))
    m = int(rng.choice([0, 1, 2, max(1, window // 2), window]))
    dtype = rng.choice([np.float16, np.float32])
    q = rng.standard_normal((rows, depth)) * rng.choice([0.1, 1.0, 30.0])
    k = rng.standard_normal((window, depth)) * rng.choice([0.1, 1.0, 30.0])
    v = rng.standard_normal((window, depth))
    if rng.random() < 0.3:  # ties: repeated keys and quantised values
        k[rng.integers(0, window, window // 2 + 1)] = k[0]
        q = np.round(q)
        k = np.round(k)
    if rng.random() < 0.15:  # inf operands: +-inf and NaN scores (inf * 0)
        k.flat[rng.integers(0, k.size, 2)] = rng.choice([np.inf, -np.inf], 2)
        if rng.random() < 0.5:
            q.flat[rng.integers(0, q.size)] = 0.0
    if rng.random() < 0.05:
        q.flat[rng.integers(0, q.size)] = np.nan
    q, k, v = (np.asarray(x).astype(dtype) for x in (q, k, v))
    if m == window and rng.random() < 0.5:  # each row a permutation of the window (keep 1)
        slots = np.argsort(rng.random((rows, window)), axis=-1)
    else:
        slots = rng.integers(0, window, (rows, m))  # duplicates allowed
    with np.errstate(all="ignore"):
        exact = np.asarray(q, np.float64) @ np.asarray(k, np.float64).T
    order = rng.random()
    if m and order < 0.3:  # descending by a noisy score: a few raises (SADS order by A-hat)
        ranked = np.take_along_axis(exact, slots, -1)
        with np.errstate(all="ignore"):
            noise = rng.choice([0.0, 0.1, 1.0]) * np.abs(ranked).mean() * rng.standard_normal(ranked.shape)
            ranked = ranked + noise
        slots = np.take_along_axis(slots, np.argsort(-np.nan_to_num(ranked), axis=-1, kind="stable"), -1)
    elif m and order < 0.45:  # ascending: every slot raises the maximum (the wide fallback)
        ranked = np.take_along_axis(exact, slots, -1)
        slots = np.take_along_axis(slots, np.argsort(np.nan_to_num(ranked), axis=-1, kind="stable"), -1)
    if m and rng.random() < 0.3:
        slots = np.where(rng.random((rows, m)) < 0.3, NO_INDEX, slots)
        if rng.random() < 0.3:
            slots[0] = NO_INDEX  # a row with nothing selected
    slots = slots.astype(rng.choice([np.int64, np.int32]))
    bias = None
    if rng.random() < 0.5:
        bias = np.where(rng.random((rows, m)) < 0.2, -np.inf, 0.0)
        if rng.random() < 0.3:
            bias = bias + rng.standard_normal((rows, m))
        if rng.random() < 0.1:
            bias[:, :1] = -np.inf  # the first slot masked
    scale = float(rng.choice([1.0, 0.125, 1 / np.sqrt(depth), 0.0]))
    return q, k, v, slots, bias, scale


def _check_partial(new: numerics.SufaPartial, ref: numerics.SufaPartial) -> None:
    assert new.max_updates == ref.max_updates
    assert same_max(new.row_max, ref.row_max)
    assert same_bits(new.denominator, ref.denominator)
    assert same_bits(new.numerator, ref.numerator)


@pytest.mark.parametrize("seed", range(400))
def test_tile_step_matches_reference(seed):
    q, k, v, slots, bias, scale = _tile_case(seed)
    with np.errstate(all="ignore"):
        new = numerics.sufa_tile_step(q, k, v, slots, bias, scale)
        ref = reference_tile_step(q, k, v, slots, bias, scale)
        _check_partial(new, ref)
        # Merged into a running state (twice, so the old state's maximum matters) and normalised.
        state_new = state_ref = numerics.SufaState.empty(len(q), v.shape[1])
        for _ in range(2):
            state_new = numerics.sufa_accumulate(state_new, new)
            state_ref = numerics.sufa_accumulate(state_ref, ref)
        assert same_bits(numerics.sufa_finish(state_new), numerics.sufa_finish(state_ref))


def _max_update_scores(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, m = int(rng.integers(1, 40)), int(rng.integers(1, 70))
    scores = np.round(rng.standard_normal((rows, m)) * rng.choice([1, 3, 100]))  # many ties
    kind = rng.integers(0, 7)
    if kind == 6:  # near-descending (SADS order): a few raises, the candidate fast path
        scores = -np.sort(-scores, axis=-1) + rng.standard_normal((rows, m)) * rng.choice([0.1, 1, 3])
        scores = np.round(scores, int(rng.integers(0, 3)))
    if kind == 1:
        scores = -np.sort(-scores, axis=-1)  # descending: no raises
    elif kind == 2:
        scores = np.sort(scores, axis=-1)  # ascending: the wide fallback
    elif kind == 3:
        scores[rng.random(scores.shape) < 0.3] = -np.inf
    elif kind == 4:
        scores[rng.random(scores.shape) < 0.1] = np.inf
        scores[rng.random(scores.shape) < 0.1] = -np.inf
    elif kind == 5:
        scores[rng.random(scores.shape) < 0.05] = np.nan
    if rng.random() < 0.3:
        scores[rng.random(scores.shape) < 0.3] = rng.choice([0.0, -0.0])
    return scores


@pytest.mark.parametrize("seed", range(300))
def test_max_updates_counts_every_raise(seed):
    scores = _max_update_scores(seed)
    with np.errstate(invalid="ignore"):
        row_max = scores.max(axis=-1)
    assert numerics._max_updates(scores, row_max) == naive_max_updates(scores)
    reference = _reference_running_max(scores.T)[-1]
    assert same_max(row_max, reference)


def test_max_updates_edge_rows():
    cases = [
        np.array([[1.0]]),
        np.array([[-np.inf, -np.inf, 1.0, 0.5, 2.0]]),
        np.array([[0.0, -0.0, 0.0, 1e-300]]),
        np.array([[-0.0, 0.0], [0.0, -0.0]]),
        np.array([[np.nan, 1.0, 2.0], [1.0, np.nan, 2.0], [1.0, 2.0, np.nan]]),
        np.array([[np.inf, np.inf, 1.0], [1.0, np.inf, np.inf]]),
        np.arange(64.0)[None, :].repeat(3, 0),  # every slot raises: more candidates than the fast path takes
        np.array([[3.0, 1.0, 2.0, 3.0, 4.0, 4.0, 5.0], [5.0, 4.0, 6.0, 6.0, 7.0, 1.0, 8.0]]),
    ]
    for scores in cases:
        with np.errstate(invalid="ignore"):
            assert numerics._max_updates(scores, scores.max(axis=-1)) == naive_max_updates(scores), scores


@pytest.mark.parametrize(("keep", "dtype", "seed"), [(1.0, np.float16, 0), (0.5, np.float16, 1), (0.25, np.float32, 2)])
def test_tile_step_in_sads_order(keep, dtype, seed):
    # The simulator's case: slots in SADS order of the DLZS prediction, each a handful of raises.
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((128, 128)).astype(dtype) for _ in range(3))
    predicted = numerics.dlzs_score(q, numerics.to_fp16_saturating(np.asarray(k, np.float64)))
    valid = np.ones(predicted.shape, bool)
    slots = numerics.sads_tile(predicted, valid, numerics.keep_count(keep, 128), np.inf).astype(np.int64)
    new = numerics.sufa_tile_step(q, k, v, slots, None, 1 / np.sqrt(128))
    ref = reference_tile_step(q, k, v, slots, None, 1 / np.sqrt(128))
    _check_partial(new, ref)
    assert new.max_updates > 0


# ---------------------------------------------------------------------------
# Machine handlers: fast paths against the handlers as they were
# ---------------------------------------------------------------------------


def _reference_window_rows(machine, pc, instr, indices):
    base = machine.regs[instr.args["key_base"]]
    rel = indices - base
    window = instr.args["window"]
    bad = (rel < 0) | (rel >= window)
    if bad.any():
        first = int(indices[np.argmax(bad)])
        raise Trap(
            pc,
            str(instr),
            f"index {first} is outside the window [{base}, {base + window}) (key_base r{instr.args['key_base']})",
            TrapKind.ADDRESS,
        )
    return rel


def reference_dma_gather(machine, instr, pc, work):
    a = instr.args
    indices = machine._index_list(pc, instr, work)
    rel = _reference_window_rows(machine, pc, instr, indices)
    row_bytes, stride = a["row_bytes"], a["src_stride"]
    if len(indices):
        src = machine._dram_rows(pc, instr, "src", int(indices.max()) + 1, row_bytes, stride)
        if indices.min() < 0:
            raise Trap(pc, str(instr), f"negative row index {int(indices.min())}", TrapKind.ADDRESS)
        dst = machine.sram_view(pc, instr, "dst", (int(rel.max()) + 1) * row_bytes, True, work)
        work.sram_write_bytes[Buffer(a["dst"].buffer)] = len(indices) * row_bytes
        dst.reshape(-1, row_bytes)[rel] = src[indices]
        ordered = np.sort(indices)
        contiguous = stride == row_bytes
        work.dram_requests = int(1 + np.count_nonzero(np.diff(ordered) != 1)) if contiguous else len(indices)
    work.dram_read_bytes = len(indices) * row_bytes


def reference_rass(machine, instr, pc, work):
    a = instr.args
    lanes, m = a["lanes"], a["m"]
    idx = machine.sram_view(pc, instr, "idx", lanes * m, False, work)
    chosen = idx[idx >= 0]
    keys, shared = np.unique(chosen, return_counts=True)
    order = np.argsort(-shared, kind="stable")
    listed = np.concatenate([[len(keys)], keys[order]]).astype(np.int32)
    machine.sram_view(pc, instr, "out", len(listed), True, work)[...] = listed
    work.compares = int(chosen.size)


def reference_sufa_step(machine, instr, pc, work):
    a = instr.args
    state = functional._check_sufa(machine, instr, pc)
    lanes, m, window, depth, vdepth = a["lanes"], a["m"], a["window"], a["depth"], a["vdepth"]
    q = machine.sram_view(pc, instr, "q", lanes * depth, False, work).reshape(lanes, depth)
    idx = machine.sram_view(pc, instr, "idx", lanes * m, False, work).reshape(lanes, m).astype(np.int64)
    empty = idx == NO_INDEX
    if empty.any():
        rel = _reference_window_rows(machine, pc, instr, idx[~empty])
        slots = np.full((lanes, m), NO_INDEX, np.int64)
        slots[~empty] = rel
    else:
        slots = _reference_window_rows(machine, pc, instr, idx.reshape(-1)).reshape(lanes, m)
    k = machine.sram_view(pc, instr, "k", window * depth, False, work).reshape(window, depth)
    v = machine.sram_view(pc, instr, "v", window * vdepth, False, work).reshape(window, vdepth)
    partial = reference_tile_step(q.astype(np.float64), k, v, slots, None, float(a["scale"]))
    machine.sufa_state = numerics.sufa_accumulate(state, partial)
    selected = lanes * m - int(np.count_nonzero(empty))
    work.macs = selected * (depth + vdepth) + lanes * (vdepth + 1)  # the selected pairs, then the tile merge
    work.exps = selected + 2 * lanes
    work.compares = lanes * min(2, m) + lanes
    work.max_updates = partial.max_updates
    work.dense_ops = 2 * lanes * window * (depth + vdepth)


def _run_both(machine, instr, reference):
    """Run the machine's handler and `reference` on copies of `machine`; both must agree on everything."""
    outcomes = []
    for handler in (functional._HANDLERS[instr.op], reference):
        copy_ = copy.deepcopy(machine)
        work = Work()
        try:
            with np.errstate(all="ignore"):
                handler(copy_, instr, 7, work)
            outcomes.append(("ok", copy_, work, None))
        except Trap as trap:
            outcomes.append(("trap", copy_, work, (str(trap), trap.kind)))
    (kind, new, new_work, new_trap), (ref_kind, ref, ref_work, ref_trap) = outcomes
    assert kind == ref_kind
    assert new_trap == ref_trap
    if kind == "ok":
        assert new_work == ref_work
        for buffer in Buffer:
            assert same_bits(new.sram[buffer], ref.sram[buffer])
        assert same_bits(new.dram, ref.dram)
        assert new.peak == ref.peak
        if new.sufa_state is not None:
            assert same_bits(new.sufa_state.numerator, ref.sufa_state.numerator)
            assert same_bits(new.sufa_state.denominator, ref.sufa_state.denominator)
            assert same_max(new.sufa_state.row_max, ref.sufa_state.row_max)
    return kind


def _machine(seed: int) -> functional.Machine:
    machine = functional.Machine(dram_bytes=1 << 16)
    rng = np.random.default_rng(seed)
    machine.dram[:] = rng.integers(0, 256, machine.dram.size, dtype=np.uint8)
    return machine


def _write_i32(machine, buffer, offset, values):
    raw = np.asarray(values, np.int32).view(np.uint8)
    machine.sram[buffer][offset : offset + raw.size] = raw


GATHER_LISTS = [
    [],
    [5],
    list(range(8, 24)),  # a whole window, consecutive
    list(range(10, 20)),  # consecutive, not starting at the window's first row
    list(range(23, 7, -1)),  # reversed
    [8, 9, 9, 10],  # duplicate
    [8, 9, 11, 12],  # gap
    [12, 8, 9],
    list(range(20, 26)),  # runs past the window: trap
    list(range(-2, 3)),  # negative rows (window based below 0)
    list(range(0, 16)),
]


@pytest.mark.parametrize("rows", GATHER_LISTS)
@pytest.mark.parametrize(("row_bytes", "stride"), [(16, 16), (16, 24), (16, 8), (8, 0), (4, 4)])
@pytest.mark.parametrize("base", [8, 0, -2, 4000])
def test_dma_gather_matches_reference(rows, row_bytes, stride, base):
    machine = _machine(len(rows) + row_bytes + stride)
    machine.regs[3] = base
    machine.regs[4] = 64
    _write_i32(machine, Buffer.TEMP, 256, [len(rows), *rows])
    instr = Instruction(
        "dma.gather",
        {
            "dst": Sram("token", 0, 512),
            "src": Dram(4, 100),
            "list": Sram("temp", 0, 256),
            "key_base": 3,
            "window": 16,
            "row_bytes": row_bytes,
            "src_stride": stride,
        },
    )
    _run_both(machine, instr, reference_dma_gather)


def test_dma_gather_consecutive_traps_like_the_gather():
    # Past the end of DRAM, and past the end of SRAM: the same traps either way.
    machine = _machine(0)
    _write_i32(machine, Buffer.TEMP, 0, [4, 0, 1, 2, 3])
    for dst, src in ((Sram("token", 0, 0), Dram(0, (1 << 16) - 40)), (Sram("temp", 0, 28 * 1024 - 40), Dram(0, 0))):
        instr = Instruction(
            "dma.gather",
            {
                "dst": dst,
                "src": src,
                "list": Sram("temp", 0, 0),
                "key_base": 0,
                "window": 8,
                "row_bytes": 16,
                "src_stride": 16,
            },
        )
        assert _run_both(machine, instr, reference_dma_gather) == "trap"


@pytest.mark.parametrize("seed", range(40))
def test_rass_matches_reference(seed):
    rng = np.random.default_rng(seed)
    lanes, m = int(rng.integers(1, 9)), int(rng.integers(1, 17))
    low = int(rng.choice([0, 100, 10**6]))
    idx = rng.integers(low, low + int(rng.choice([4, 64, 5000])), (lanes, m))
    if rng.random() < 0.5:
        idx[rng.random(idx.shape) < 0.4] = NO_INDEX
    if rng.random() < 0.1:
        idx[:] = NO_INDEX
    if rng.random() < 0.1:
        idx[0, 0] = -7  # a negative index that is not NO_INDEX: skipped like an empty slot
    machine = _machine(seed)
    _write_i32(machine, Buffer.TEMP, 0, idx.reshape(-1))
    instr = Instruction("rass", {"idx": Sram("temp", 0, 0), "out": Sram("temp", 0, 8192), "lanes": lanes, "m": m})
    _run_both(machine, instr, reference_rass)


@pytest.mark.parametrize("seed", range(60))
def test_sufa_step_matches_reference(seed):
    rng = np.random.default_rng(seed)
    lanes, m, window = int(rng.integers(1, 9)), int(rng.integers(1, 17)), int(rng.integers(1, 17))
    depth, vdepth = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    dtype = str(rng.choice(["f16", "f32"]))
    np_dtype = np.float16 if dtype == "f16" else np.float32
    base = int(rng.choice([0, 32, -3, 2**31 - 10, -(2**31)]))
    idx = base + rng.integers(0, window, (lanes, m))
    case = rng.integers(0, 6)
    if case == 1:
        idx[rng.random(idx.shape) < 0.3] = NO_INDEX
    elif case == 2:
        idx[0, -1] = base + window  # outside the window: trap
    elif case == 3:
        idx[0, 0] = -5  # a negative index that is not NO_INDEX
    elif case == 4:
        idx[:] = NO_INDEX
    idx = ((idx + 2**31) % 2**32 - 2**31).astype(np.int32)  # as the i32 SRAM words hold them
    machine = _machine(seed)
    machine.regs[5] = base
    q, k, v = (
        rng.standard_normal(shape).astype(np_dtype) for shape in ((lanes, depth), (window, depth), (window, vdepth))
    )
    for offset, values in ((0, q), (4096, k), (8192, v)):
        raw = values.reshape(-1).view(np.uint8)
        machine.sram[Buffer.TOKEN][offset : offset + raw.size] = raw
    _write_i32(machine, Buffer.TEMP, 0, idx.reshape(-1))
    machine.sufa_state = numerics.SufaState.empty(lanes, vdepth)
    machine.sufa_shape = (lanes, vdepth)
    instr = Instruction(
        "sufa.step",
        {
            "q": Sram("token", 0, 0),
            "k": Sram("token", 0, 4096),
            "v": Sram("token", 0, 8192),
            "idx": Sram("temp", 0, 0),
            "key_base": 5,
            "lanes": lanes,
            "m": m,
            "window": window,
            "depth": depth,
            "vdepth": vdepth,
            "scale": 0.125,
            "dtype": dtype,
        },
    )
    _run_both(machine, instr, reference_sufa_step)


def reference_sads(machine, instr, pc, work):
    a = instr.args
    lanes, keys, m = a["lanes"], a["keys"], a["m"]
    scores = machine.sram_view(pc, instr, "scores", lanes * keys, False, work).reshape(lanes, keys)
    key_base = machine.regs[a["key_base"]]
    query_base = machine.regs[a["query_base"]]
    global_keys = key_base + np.arange(keys)
    valid = np.broadcast_to(global_keys < a["kv_len"], (lanes, keys))
    if a["causal"]:
        valid = valid & (global_keys[None, :] <= (query_base + np.arange(lanes))[:, None])
    local, surviving = numerics.sads_tile_sphere(scores, valid, m, float(a["radius"]))
    out = np.where(local == NO_INDEX, NO_INDEX, local + key_base).astype(np.int32)
    machine.sram_view(pc, instr, "out", lanes * m, True, work)[...] = out.reshape(-1)
    passes = -(-m // machine.sads_outputs)
    work.sort_rounds = int(passes * np.sum(-(-surviving // machine.sads_inputs)))
    work.compares = lanes * keys


@pytest.mark.parametrize("seed", range(80))
def test_sads_matches_reference(seed):
    rng = np.random.default_rng(seed)
    lanes, keys = int(rng.integers(1, 17)), int(rng.integers(1, 65))
    m = int(rng.integers(1, keys + 1))
    scores = (rng.standard_normal((lanes, keys)) * rng.choice([1, 100])).astype(np.float16)
    if rng.random() < 0.3:
        scores.flat[rng.integers(0, scores.size, 3)] = rng.choice([np.inf, -np.inf, np.nan], 3)
    if rng.random() < 0.3:
        scores = np.round(scores)  # ties
    key_base = int(rng.choice([0, 64, 1000]))
    kv_len = key_base + int(rng.choice([keys, keys + 5, max(0, keys - 7), 0]))
    query_base = key_base + int(rng.choice([-lanes, 0, keys // 2, keys, 5 * keys]))
    machine = _machine(seed)
    machine.regs[1], machine.regs[2] = key_base, query_base
    raw = scores.reshape(-1).view(np.uint8)
    machine.sram[Buffer.TEMP][: raw.size] = raw
    instr = Instruction(
        "sads",
        {
            "scores": Sram("temp", 0, 0),
            "out": Sram("temp", 0, 8192),
            "lanes": lanes,
            "keys": keys,
            "m": m,
            "radius": float(rng.choice([np.inf, 50.0, 0.0])),
            "key_base": 1,
            "query_base": 2,
            "kv_len": kv_len,
            "causal": bool(rng.random() < 0.5),
        },
    )
    _run_both(machine, instr, reference_sads)


def reference_dma_load(machine, instr, pc, work):
    a = instr.args
    rows, row_bytes, stride = a["rows"], a["row_bytes"], a["src_stride"]
    src = machine._dram_rows(pc, instr, "src", rows, row_bytes, stride)
    dst = machine.sram_view(pc, instr, "dst", rows * row_bytes, True, work)
    dst.reshape(rows, row_bytes)[...] = src
    work.dram_read_bytes = rows * row_bytes
    work.dram_requests = 1 if stride == row_bytes or rows == 1 else rows


@pytest.mark.parametrize("rows", [0, 1, 3])
@pytest.mark.parametrize(("row_bytes", "stride"), [(16, 16), (16, 32), (16, 4), (0, 0), (8, 0)])
@pytest.mark.parametrize(("dst", "src"), [(0, 100), (28 * 1024 - 40, 0), (0, (1 << 16) - 40), (0, -8)])
def test_dma_load_matches_reference(rows, row_bytes, stride, dst, src):
    machine = _machine(rows + row_bytes)
    machine.regs[2] = 64
    instr = Instruction(
        "dma.load",
        {"dst": Sram("temp", 0, dst), "src": Dram(2, src), "rows": rows, "row_bytes": row_bytes, "src_stride": stride},
    )
    _run_both(machine, instr, reference_dma_load)


def reference_sads_tile_sphere(scores, valid, count, radius):
    """Top-`count` by a stable argsort over fp64 scores, the sphere clip spelled out (NaN ranks as +inf)."""
    radius = float(np.float32(radius))
    masked = np.where(valid, np.asarray(scores, np.float64), -np.inf)
    with np.errstate(invalid="ignore"):
        row_max = np.max(np.nan_to_num(masked, nan=-np.inf, posinf=np.inf, neginf=-np.inf), axis=-1, keepdims=True)
        below = masked < row_max - radius  # False for NaN, and for every score when the bound is NaN
        in_sphere = valid & (masked != -np.inf) & ~below
    ranked = np.where(in_sphere, np.nan_to_num(masked, nan=np.inf, posinf=np.inf, neginf=-np.inf), -np.inf)
    order = np.argsort(-ranked, axis=-1, kind="stable")[:, :count]
    chosen = np.take_along_axis(in_sphere, order, axis=-1)
    return np.where(chosen, order, NO_INDEX).astype(np.int32), np.count_nonzero(in_sphere, axis=-1)


@pytest.mark.parametrize("seed", range(120))
def test_sads_tile_sphere_matches_reference(seed):
    rng = np.random.default_rng(seed)
    rows, width = int(rng.integers(1, 20)), int(rng.integers(1, 130))
    count = int(rng.integers(1, width + 1))
    dtype = rng.choice([np.float16, np.float32])
    scores = (rng.standard_normal((rows, width)) * rng.choice([1, 1000])).astype(dtype)
    if rng.random() < 0.5:
        scores = np.round(scores)  # ties, and signed zeros below
        scores[rng.random(scores.shape) < 0.2] = rng.choice([0.0, -0.0])
    if rng.random() < 0.3:
        scores.flat[rng.integers(0, scores.size, 3)] = rng.choice([np.inf, -np.inf, np.nan], 3)
    valid = np.ones((rows, width), bool) if rng.random() < 0.5 else rng.random((rows, width)) < 0.7
    radius = float(rng.choice([np.inf, 3.0, 0.0]))
    with np.errstate(invalid="ignore"):  # inf - inf in the clip of a row whose maximum is inf
        local, surviving = numerics.sads_tile_sphere(scores, valid, count, radius)
    ref_local, ref_surviving = reference_sads_tile_sphere(scores, valid, count, radius)
    assert same_bits(local, ref_local)
    assert np.array_equal(surviving, ref_surviving)
