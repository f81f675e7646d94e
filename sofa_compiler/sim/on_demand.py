"""Semantics of the on-demand K/V instructions: kvmark, kvlist, kvgen, kvround and dma.scatter.

Together they let a kernel generate only the K/V rows that some query
selected (paper §2.1): a first pass marks every key SADS selects in a
bitmap (`kvmark`), a generation pass lists each tile's marked keys
(`kvlist`), computes just those rows on the K/V-generation array (`kvgen`,
one hidden chunk at a time, in fp32), rounds them to the datapath's fp16
(`kvround`) and writes them to their DRAM rows
(`dma.scatter`), and the attention pass gathers them as usual.
"""

from __future__ import annotations

import numpy as np

from dialects import numerics
from sofa_compiler.isa.encoding import Instruction
from sofa_compiler.sim.events import Buffer, Work
from sofa_compiler.sim.state import MachineState
from sofa_compiler.sim.traps import Trap, TrapKind

KVGEN_SET, KVGEN_ACCUMULATE, KVGEN_BIAS = 0, 1, 2
"""`kvgen` modes: out = x.W, out += x.W, out = bias + x.W."""


def _kvgen(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    window, hidden, cols, mode = a["window"], a["hidden"], a["cols"], a["mode"]
    indices = machine._index_list(pc, instr, work)
    rel = machine._window_rows(pc, instr, indices)
    w = machine.sram_view(pc, instr, "w", hidden * cols, False, work).reshape(hidden, cols)
    if mode != KVGEN_SET and w.dtype != np.float32:
        raise Trap(pc, str(instr), f"kvgen mode {mode} accumulates in f32: dtype must be f32")
    if len(indices):
        top = int(rel.max()) + 1
        x = machine.sram_view(pc, instr, "x", top * hidden, False, work).reshape(top, hidden)
        unread = top - len(indices)
        work.sram_read_bytes[Buffer(a["x"].buffer)] -= unread * hidden * x.dtype.itemsize
        out = machine.sram_view(pc, instr, "out", top * cols, True, work).reshape(top, cols)
        out_buffer = Buffer(a["out"].buffer)
        work.sram_write_bytes[out_buffer] -= unread * cols * out.dtype.itemsize
        init = None
        if mode == KVGEN_ACCUMULATE:
            init = out[rel]
            work.sram_read_bytes[out_buffer] = work.sram_read_bytes.get(out_buffer, 0) + init.nbytes
        elif mode == KVGEN_BIAS:
            init = machine.sram_view(pc, instr, "bias", cols, False, work)[None, :]
        rows = numerics.kv_rows(x[rel], w, init)
        out[rel] = numerics.to_fp16_saturating(rows) if out.dtype == np.float16 else rows
    work.macs = len(indices) * hidden * cols
    work.dense_ops = 2 * window * hidden * cols


def _kvround(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    cols = a["cols"]
    indices = machine._index_list(pc, instr, work)
    rel = machine._window_rows(pc, instr, indices)
    if len(indices):
        top = int(rel.max()) + 1
        src = machine.sram_view(pc, instr, "src", top * cols, False, work).reshape(top, cols)
        out = machine.sram_view(pc, instr, "out", top * cols, True, work).reshape(top, cols)
        unread = top - len(indices)
        work.sram_read_bytes[Buffer(a["src"].buffer)] -= unread * cols * src.dtype.itemsize
        work.sram_write_bytes[Buffer(a["out"].buffer)] -= unread * cols * out.dtype.itemsize
        out[rel] = numerics.to_datapath(src[rel])


def _bitmap(machine: MachineState, instr: Instruction, pc: int, keys: int, write: bool, work: Work) -> np.ndarray:
    return machine.sram_view(pc, instr, "bitmap", -(-keys // 8), write, work)


def _kvmark(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    lanes, m, keys = a["lanes"], a["m"], a["keys"]
    idx = machine.sram_view(pc, instr, "idx", lanes * m, False, work)
    chosen = idx[idx >= 0].astype(np.int64)
    if chosen.size and int(chosen.max()) >= keys:
        raise Trap(pc, str(instr), f"index {int(chosen.max())} is outside the bitmap's {keys} keys", TrapKind.ADDRESS)
    bitmap = _bitmap(machine, instr, pc, keys, True, work)
    bits = np.unpackbits(bitmap, bitorder="little")[:keys]
    bits[chosen] = 1
    bitmap[...] = np.packbits(bits, bitorder="little")
    work.compares = lanes * m


def _kvlist(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    window = a["window"]
    base = machine.regs[a["key_base"]]
    if base < 0:
        raise Trap(pc, str(instr), f"key_base r{a['key_base']} = {base} is negative", TrapKind.ADDRESS)
    keys = base + window
    bitmap = _bitmap(machine, instr, pc, keys, bool(a["clear"]), work)
    # Only the bytes that hold the window's bits are read (and, with clear, written).
    for counter in (work.sram_read_bytes, work.sram_write_bytes):
        if counter:
            counter[Buffer(a["bitmap"].buffer)] -= base // 8
    bits = np.unpackbits(bitmap, bitorder="little")[:keys]
    listed = np.flatnonzero(bits[base:]) + base
    out = np.concatenate([[len(listed)], listed]).astype(np.int32)
    machine.sram_view(pc, instr, "out", len(out), True, work)[...] = out
    if a["clear"]:
        bits[base:] = 0
        bitmap[...] = np.packbits(bits, bitorder="little")[: len(bitmap)]
    work.compares = window


def _dma_scatter(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    indices = machine._index_list(pc, instr, work)
    rel = machine._window_rows(pc, instr, indices)
    row_bytes, stride = a["row_bytes"], a["dst_stride"]
    if len(indices):
        if stride < row_bytes and len(indices) > 1:
            raise Trap(pc, str(instr), f"dst_stride {stride} < row_bytes {row_bytes}: rows would overlap")
        dst = machine._dram_indexed_rows(pc, instr, "dst", indices, row_bytes, stride, work)
        src = machine.sram_view(pc, instr, "src", (int(rel.max()) + 1) * row_bytes, False, work)
        work.sram_read_bytes[Buffer(a["src"].buffer)] = len(indices) * row_bytes
        dst[indices] = src.reshape(-1, row_bytes)[rel]
    work.dram_write_bytes = len(indices) * row_bytes


HANDLERS = {"kvgen": _kvgen, "kvround": _kvround, "kvmark": _kvmark, "kvlist": _kvlist, "dma.scatter": _dma_scatter}
