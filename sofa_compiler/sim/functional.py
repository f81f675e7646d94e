"""The functional SOFA machine: executes programs in order on numpy memories.

DRAM and each SRAM are flat ``uint8`` arrays; instructions read and write
typed views (``.view(np.float16)`` and so on), one whole tile per
instruction, so Python overhead is paid per tile, never per element. The
arithmetic is `dialects.numerics`, the same kernels as the `sofa` dialect's
interpreter, so results match it bit for bit.

Every executed instruction appends an `Event` with its `Work` (see
`sofa_compiler/sim/events.py`); the timing model turns events into cycles.

Run as a module for a quick check::

    python -m sofa_compiler.sim.functional prog.sofa [--inputs in.npz] [--seed 0] [--expected-hash HEX]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from dialects import numerics
from dialects.sofa import TARGET_DEFAULTS
from dialects.sofa_isa import BY_MNEMONIC, ELEM_BYTES, LOOP_MNEMONICS, MAX_LOOP_DEPTH, SEMAPHORES, elem_type
from sofa_compiler.isa.container import Program, RawWord
from sofa_compiler.isa.encoding import Instruction, format_instruction
from sofa_compiler.sim import on_demand
from sofa_compiler.sim.events import Buffer, Event, SramPeak, Unit, Work
from sofa_compiler.sim.timing import gc_paused
from sofa_compiler.sim.traps import Trap, TrapKind

NP_ELEM = {"u8": np.uint8, "i8": np.int8, "f16": np.float16, "f32": np.float32, "i32": np.int32}

DEFAULT_SRAM = {buffer: int(TARGET_DEFAULTS[f"{buffer}_sram"]) for buffer in Buffer}
"""The paper's SRAM sizes, from the dialect's one definition of the hardware defaults."""


class InputError(ValueError):
    """Program inputs do not match the symbol table."""


@dataclass
class FunctionalResult:
    outputs: dict[str, np.ndarray]
    events: list[Event]
    sram_peak: SramPeak
    instructions_executed: int
    registers: list[int] = field(default_factory=list)


def _wrap32(value: int) -> int:
    return ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def check_loops(code: list[Any]) -> None:
    """Trap unless every `loop` body lies inside the program and inside its enclosing loop, depth <= 4."""
    stack: list[int] = []  # end pcs (exclusive) of open loops
    for pc, instr in enumerate(code):
        while stack and pc >= stack[-1]:
            stack.pop()
        if isinstance(instr, Instruction) and instr.op in LOOP_MNEMONICS:
            end = pc + 1 + instr.args["body"]
            if end > len(code):
                raise Trap(pc, str(instr), f"loop body ends at pc={end}, past the end of the program ({len(code)})")
            if stack and end > stack[-1]:
                raise Trap(pc, str(instr), f"loop body ends at pc={end}, past its enclosing loop's end ({stack[-1]})")
            stack.append(end)
            if len(stack) > MAX_LOOP_DEPTH:
                raise Trap(pc, str(instr), f"loops nest {len(stack)} deep; the hardware supports {MAX_LOOP_DEPTH}")


class Machine:
    """A SOFA machine with `sram_sizes` bytes per buffer and `dram_bytes` of DRAM.

    ``lanes`` (optional) is the target's query lanes; instructions asking for
    more trap. ``sads_inputs``/``sads_outputs`` describe one round of a SADS
    sort core (12 new inputs in, top 4 out), which sets the rounds SADS needs.
    """

    def __init__(
        self,
        sram_sizes: Mapping[Buffer | str, int] | None = None,
        dram_bytes: int = 1 << 26,
        lanes: int | None = None,
        sads_inputs: int = 12,
        sads_outputs: int = 4,
    ):
        sizes = {Buffer(k): int(v) for k, v in (sram_sizes or DEFAULT_SRAM).items()}
        self.sram_sizes = sizes
        self.sram = {b: np.zeros(sizes.get(b, 0), np.uint8) for b in Buffer}
        self.dram = np.zeros(int(dram_bytes), np.uint8)
        self.lanes = lanes
        self.sads_inputs = sads_inputs
        self.sads_outputs = sads_outputs
        self.reset()

    @classmethod
    def from_target(cls, target: Mapping[str, Any], dram_bytes: int = 1 << 26) -> Machine:
        sizes = {
            Buffer.TOKEN: target["token_sram"],
            Buffer.WEIGHT: target["weight_sram"],
            Buffer.TEMP: target["temp_sram"],
        }
        return cls(
            sizes,
            dram_bytes,
            int(target["lanes"]),
            int(target["sads_inputs_per_round"]),
            int(target["sads_outputs_per_round"]),
        )

    def reset(self) -> None:
        # Per-instruction decode caches, keyed by id(instr); each entry holds the
        # instruction itself, so the id stays unique while the entry lives.
        self._decoded: dict[int, tuple[Any, ...]] = {}
        self._operands: dict[tuple[int, str], tuple[Any, ...]] = {}
        self._memo: dict[str, tuple[tuple[str, tuple[int, ...], bytes], Any]] = {}
        self._all_true: dict[tuple[int, ...], np.ndarray] = {}
        for array in self.sram.values():
            array.fill(0)
        self.dram.fill(0)
        self.regs = [0] * 16
        self.sems = [0] * SEMAPHORES
        self.signallers: list[set[str]] = [set() for _ in range(SEMAPHORES)]
        self.sufa_state: numerics.SufaState | None = None
        self.sufa_shape = (0, 0)
        self.events: list[Event] = []
        self.peak = SramPeak()
        self.executed = 0

    # -- memory access ---------------------------------------------------------

    def memo(self, kind: str, data: np.ndarray, compute: Any) -> Any:
        """``compute(data)``, reused while the same bytes come back (e.g. one Q tile over all KV tiles).

        Keyed on the full contents, so it is a pure cache: no write can make it stale.
        """
        key = (data.dtype.str, data.shape, data.tobytes())
        hit = self._memo.get(kind)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = compute(data)
        self._memo[kind] = (key, value)
        return value

    def all_true(self, shape: tuple[int, ...]) -> np.ndarray:
        """A read-only all-True mask of `shape`, made once per shape."""
        mask = self._all_true.get(shape)
        if mask is None:
            mask = np.ones(shape, bool)
            mask.flags.writeable = False
            self._all_true[shape] = mask
        return mask

    def _addr(self, operand: Any) -> int:
        return self.regs[operand.reg] + operand.offset

    def sram_view(self, pc: int, instr: Instruction, name: str, count: int, write: bool, work: Work) -> np.ndarray:
        """A typed view of `count` elements of SRAM operand `name`, with bounds and alignment checks."""
        decoded = self._operands.get((id(instr), name))
        if decoded is None:
            operand = instr.args[name]
            elem = elem_type(instr.spec.field(name), instr.args)
            decoded = (
                instr,
                operand.reg,
                operand.offset,
                Buffer(operand.buffer),
                elem,
                ELEM_BYTES[elem],
                NP_ELEM[elem],
            )
            self._operands[(id(instr), name)] = decoded
        _, reg, offset, buffer, elem, size, np_elem = decoded
        start = self.regs[reg] + offset
        nbytes = count * size
        if start < 0:
            raise Trap(pc, str(instr), f"{name}: SRAM address {start} is negative", TrapKind.ADDRESS)
        if start % size:
            raise Trap(pc, str(instr), f"{name}: {buffer} address {start} is not {size}-byte aligned ({elem})")
        capacity = self.sram_sizes.get(buffer, 0)
        if start + nbytes > capacity:
            raise Trap(
                pc,
                str(instr),
                f"SRAM overflow: {name} needs {buffer}[{start}:{start + nbytes}] but {buffer} holds {capacity} bytes",
                TrapKind.SRAM_OVERFLOW,
            )
        peak = self.peak.bytes_used
        if start + nbytes > peak[buffer]:
            peak[buffer] = start + nbytes
        counter = work.sram_write_bytes if write else work.sram_read_bytes
        counter[buffer] = counter.get(buffer, 0) + nbytes
        return self.sram[buffer][start : start + nbytes].view(np_elem)

    def _dram_rows(self, pc: int, instr: Instruction, name: str, rows: int, row_bytes: int, stride: int) -> np.ndarray:
        """A [rows, row_bytes] strided view of DRAM operand `name`."""
        start = self._dram_start(pc, instr, name, rows, row_bytes, stride)
        return np.lib.stride_tricks.as_strided(self.dram[start:], shape=(rows, row_bytes), strides=(stride, 1))

    def _dram_indexed_rows(
        self, pc: int, instr: Instruction, name: str, indices: np.ndarray, row_bytes: int, stride: int, work: Work
    ) -> np.ndarray:
        """The DRAM rows of operand `name` that a gather or scatter of non-empty `indices` touches.

        Returns a [max index + 1, row_bytes] strided view (index it with `indices`)
        and sets the instruction's DRAM request count: one per run of consecutive
        rows when rows are packed, else one per row.
        """
        rows = self._dram_rows(pc, instr, name, int(indices.max()) + 1, row_bytes, stride)
        if indices.min() < 0:
            raise Trap(pc, str(instr), f"negative row index {int(indices.min())}", TrapKind.ADDRESS)
        contiguous = stride == row_bytes
        work.dram_requests = int(1 + np.count_nonzero(np.diff(np.sort(indices)) != 1)) if contiguous else len(indices)
        return rows

    def _dram_start(self, pc: int, instr: Instruction, name: str, rows: int, row_bytes: int, stride: int) -> int:
        """The address of DRAM operand `name`, checked to hold `rows` rows of `row_bytes` every `stride` bytes."""
        start = self._addr(instr.args[name])
        last = start + (rows - 1) * stride + row_bytes
        if start < 0 or last > len(self.dram):
            raise Trap(
                pc,
                str(instr),
                f"{name}: DRAM range [{start}, {last}) is outside DRAM [0, {len(self.dram)})",
                TrapKind.ADDRESS,
            )
        return start

    def _index_list(self, pc: int, instr: Instruction, work: Work) -> np.ndarray:
        listed = self.sram_view(pc, instr, "list", 1, False, work)
        count = int(listed[0])
        window = instr.args["window"]
        if not 0 <= count <= window:
            raise Trap(pc, str(instr), f"index list count {count} outside [0, window={window}]", TrapKind.ADDRESS)
        return self.sram_view(pc, instr, "list", 1 + count, False, work)[1:].astype(np.int64)

    def _window_rows(self, pc: int, instr: Instruction, indices: np.ndarray) -> np.ndarray:
        base = self.regs[instr.args["key_base"]]
        rel = indices - base
        window = instr.args["window"]
        # Two reductions show the usual case (all inside); the mask is built only to name the first outsider.
        if not rel.size or (int(rel.min()) >= 0 and int(rel.max()) < window):
            return rel
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

    # -- execution --------------------------------------------------------------

    def load(self, program: Program, inputs: Mapping[str, Any], expected_config_hash: str | bytes | None = None):
        """Check the header, write the DRAM image and the inputs."""
        if expected_config_hash is not None:
            expected = (
                bytes.fromhex(expected_config_hash) if isinstance(expected_config_hash, str) else expected_config_hash
            )
            # An all-zero hash marks a hand-written program not bound to one target.
            unbound = program.config_hash == bytes(len(program.config_hash))
            if expected != program.config_hash and not unbound:
                raise Trap(
                    0,
                    "program header",
                    f"config-hash mismatch: program was built for {program.config_hash.hex()[:16]}..., "
                    f"this machine is {expected.hex()[:16]}...",
                    TrapKind.CONFIG_HASH,
                )
        if program.dram_bytes > len(self.dram):
            raise Trap(
                0,
                "program header",
                f"program needs {program.dram_bytes} bytes of DRAM, the machine has {len(self.dram)}",
                TrapKind.ADDRESS,
            )
        for seg in program.segments:
            if seg.address + len(seg.data) > len(self.dram):
                raise Trap(
                    0, "program header", f"DRAM image segment at {seg.address} lies outside DRAM", TrapKind.ADDRESS
                )
            self.dram[seg.address : seg.address + len(seg.data)] = np.frombuffer(seg.data, np.uint8)
        wanted = {s.name for s in program.symbols if s.kind == "input"}
        unknown = sorted(set(inputs) - wanted)
        if unknown:
            raise InputError(
                f"unknown input(s) {', '.join(unknown)}; the program's inputs are {', '.join(sorted(wanted))}"
            )
        for sym in program.symbols:
            if sym.address + sym.size > len(self.dram):
                raise Trap(0, "program header", f"symbol '{sym.name}' lies outside DRAM", TrapKind.ADDRESS)
            if sym.kind != "input":
                continue
            if sym.name not in inputs:
                raise InputError(f"missing input '{sym.name}' ({sym.dtype} {list(sym.shape)})")
            value = np.asarray(inputs[sym.name])
            if tuple(value.shape) != sym.shape:
                raise InputError(
                    f"input '{sym.name}' has shape {list(value.shape)}, the program expects {list(sym.shape)}"
                )
            if value.dtype != sym.np_dtype:
                raise InputError(f"input '{sym.name}' has dtype {value.dtype}, the program expects {sym.np_dtype}")
            raw = np.ascontiguousarray(value).view(np.uint8).reshape(-1)
            self.dram[sym.address : sym.address + sym.size] = raw

    def read_outputs(self, program: Program) -> dict[str, np.ndarray]:
        out = {}
        for sym in program.symbols:
            if sym.kind == "output":
                raw = self.dram[sym.address : sym.address + sym.size].copy()
                out[sym.name] = raw.view(sym.np_dtype).reshape(sym.shape)
        return out

    def prepare_tokens(self, code: list[Any]) -> None:
        """Record which units signal each semaphore (for the functional deadlock check)."""
        self.signallers = [set() for _ in range(SEMAPHORES)]
        for instr in code:
            if isinstance(instr, Instruction):
                for bit in range(SEMAPHORES):
                    if instr.signal >> bit & 1:
                        self.signallers[bit].add(instr.unit)

    def run(
        self,
        program: Program,
        inputs: Mapping[str, Any],
        expected_config_hash: str | bytes | None = None,
        max_instructions: int = 1 << 32,
    ) -> FunctionalResult:
        """Execute `program` from pc 0 to `halt`; traps raise `Trap`."""
        self.reset()
        self.load(program, inputs, expected_config_hash)
        code = program.code
        check_loops(code)
        self.prepare_tokens(code)
        # One instruction is one small tile: BLAS threads only add synchronisation
        # (10x slower on a loaded 2-core machine), so the simulator runs them single-threaded.
        with gc_paused(), threadpool_limits(limits=1, user_api="blas"):
            self._run_code(code, max_instructions)
        return FunctionalResult(self.read_outputs(program), self.events, self.peak, self.executed, list(self.regs))

    def _run_code(self, code: list[Any], max_instructions: int) -> None:
        stack: list[list[int]] = []  # [start, end, remaining]
        pc = 0
        while True:
            if pc >= len(code):
                raise Trap(pc, "end of program", "ran past the last instruction without 'halt'")
            instr = code[pc]
            if isinstance(instr, RawWord):
                raise Trap(pc, str(instr), f"illegal instruction: {instr.reason}")
            if instr.op == "halt":
                self.execute(instr, pc)
                break
            if instr.op in LOOP_MNEMONICS:
                self.execute(instr, pc)
                count = instr.args["count"] if instr.op == "loop" else self.regs[instr.args["count"]]
                body_end = pc + 1 + instr.args["body"]
                if count > 0:
                    stack.append([pc + 1, body_end, count])
                    pc += 1
                    continue
                # A run-time count of zero or less skips the body (e.g. fully masked KV tiles).
                pc = body_end
            else:
                self.execute(instr, pc)
                if self.executed > max_instructions:
                    raise Trap(pc, str(instr), f"instruction budget of {max_instructions} exhausted")
                pc += 1
            while stack and pc == stack[-1][1]:
                stack[-1][2] -= 1
                if stack[-1][2] > 0:
                    pc = stack[-1][0]
                    break
                stack.pop()

    def execute(self, instr: Instruction, pc: int) -> Event:
        """Execute one instruction (a `loop` only records its event) and append its Event."""
        # Loops execute the same instruction many times; decode and format it once.
        decoded = self._decoded.get(id(instr))
        if decoded is None:
            handler = _HANDLERS.get(instr.op)
            if handler is None or instr.op not in BY_MNEMONIC:
                raise Trap(pc, str(instr), f"illegal instruction '{instr.op}'")
            signals = tuple(bit for bit in range(SEMAPHORES) if instr.signal >> bit & 1)
            decoded = (instr, handler, Unit(instr.unit), signals, format_instruction(instr))
            self._decoded[id(instr)] = decoded
        _, handler, unit, signals, text = decoded
        if self.lanes is not None and instr.args.get("lanes", 0) > self.lanes:
            raise Trap(pc, str(instr), f"lanes = {instr.args['lanes']} exceeds the target's {self.lanes} lanes")
        if instr.wait:
            self._take_tokens(instr, pc)
        work = Work()
        handler(self, instr, pc, work)
        sems = self.sems
        for bit in signals:
            sems[bit] += 1
        event = Event(pc, unit, instr.op, instr.wait, instr.signal, work, text)
        self.events.append(event)
        self.executed += 1
        return event

    def _take_tokens(self, instr: Instruction, pc: int) -> None:
        for bit in range(SEMAPHORES):
            if not instr.wait >> bit & 1:
                continue
            if self.sems[bit] <= 0 and not (self.signallers[bit] - {instr.unit}):
                who = "no instruction signals it" if not self.signallers[bit] else "only its own unit signals it"
                raise Trap(
                    pc,
                    str(instr),
                    f"token deadlock: waits on s{bit} whose count is 0 and {who}",
                    TrapKind.DEADLOCK,
                )
            # Program order is a legal schedule unless another unit signals later;
            # the count may then go negative (the timing model decides the real order).
            self.sems[bit] -= 1


# ---------------------------------------------------------------------------
# Instruction semantics
# ---------------------------------------------------------------------------


def _ctrl(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
    args = instr.args
    if instr.op == "set" and args["rd"]:
        machine.regs[args["rd"]] = _wrap32(args["imm"])
    elif instr.op == "addi" and args["rd"]:
        machine.regs[args["rd"]] = _wrap32(machine.regs[args["rs"]] + args["imm"])


def _dma_load(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
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


def _dma_gather(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
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


def _dma_store(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    rows, row_bytes, stride = a["rows"], a["row_bytes"], a["dst_stride"]
    dst = machine._dram_rows(pc, instr, "dst", rows, row_bytes, stride)
    if stride < row_bytes and rows > 1:
        raise Trap(pc, str(instr), f"dst_stride {stride} < row_bytes {row_bytes}: rows would overlap")
    src = machine.sram_view(pc, instr, "src", rows * row_bytes, False, work)
    dst[...] = src.reshape(rows, row_bytes)
    work.dram_write_bytes = rows * row_bytes
    work.dram_requests = 1 if stride == row_bytes or rows == 1 else rows


def _dlzs_key(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
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


def _dlzs_score(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    lanes, keys, depth = a["lanes"], a["keys"], a["depth"]
    q = machine.sram_view(pc, instr, "q", lanes * depth, False, work).reshape(lanes, depth)
    khat = machine.sram_view(pc, instr, "khat", keys * depth, False, work).reshape(keys, depth)
    q_power, nonzero_q = machine.memo("dlzs.q", q, lambda q: (numerics.q_lz_power(q), _nonzero_columns(q)))
    out = numerics.dlzs_score_power(q_power, khat)
    machine.sram_view(pc, instr, "out", lanes * keys, True, work)[...] = out.reshape(-1)
    work.lz_encodes = lanes * depth
    nonzero_k = _nonzero_columns(khat)
    work.shift_adds = int(nonzero_q @ nonzero_k)


def _mul4_score(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    lanes, keys, depth = a["lanes"], a["keys"], a["depth"]
    q = machine.sram_view(pc, instr, "q", lanes * depth, False, work).reshape(lanes, depth)
    k = machine.sram_view(pc, instr, "k", keys * depth, False, work).reshape(keys, depth)
    out = numerics.mul4_score(q, k)
    machine.sram_view(pc, instr, "out", lanes * keys, True, work)[...] = out.reshape(-1)
    work.mul4_macs = lanes * keys * depth


def _nonzero_columns(values: np.ndarray) -> np.ndarray:
    """``np.count_nonzero(values, axis=0)`` as int64; fp16 is tested on its bits (faster, same answer)."""
    if values.dtype == np.float16:
        return ((values.view(np.int16) & np.int16(0x7FFF)) != 0).sum(axis=0, dtype=np.int64)
    return np.count_nonzero(values, axis=0).astype(np.int64)


def _sads(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    lanes, keys, m = a["lanes"], a["keys"], a["m"]
    scores = machine.sram_view(pc, instr, "scores", lanes * keys, False, work).reshape(lanes, keys)
    key_base = machine.regs[a["key_base"]]
    query_base = machine.regs[a["query_base"]]
    last_key = key_base + keys - 1
    if last_key < a["kv_len"] and (not a["causal"] or last_key <= query_base):
        # Every key of the tile is valid for every lane (the causal bound holds for the first lane).
        valid = machine.all_true((lanes, keys))
    else:
        global_keys = key_base + np.arange(keys)
        valid = np.broadcast_to(global_keys < a["kv_len"], (lanes, keys))
        if a["causal"]:
            valid = valid & (global_keys[None, :] <= (query_base + np.arange(lanes))[:, None])
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


def _rass(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
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


def _sufa_init(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
    machine.sufa_state = numerics.SufaState.empty(instr.args["lanes"], instr.args["vdepth"])
    machine.sufa_shape = (instr.args["lanes"], instr.args["vdepth"])


def _check_sufa(machine: Machine, instr: Instruction, pc: int) -> numerics.SufaState:
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


def _sufa_step(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    state = _check_sufa(machine, instr, pc)
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
    # SADS never selects masked keys, so selected slots carry no extra bias.
    q64 = machine.memo("sufa.q", q, lambda q: q.astype(np.float64))
    partial = numerics.sufa_tile_step(q64, k, v, slots, None, float(a["scale"]))
    machine.sufa_state = numerics.sufa_accumulate(state, partial)
    selected = lanes * m - empty_slots
    work.macs = selected * (depth + vdepth)
    work.exps = selected + 2 * lanes
    work.compares = lanes * min(2, m) + lanes
    work.max_updates = partial.max_updates
    work.dense_ops = 2 * lanes * window * (depth + vdepth)


def _fa2_step(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
    """The baseline's FlashAttention-2 step: the same numbers as sufa.step, FA-2's costs.

    FA-2 does not know where the maximum is, so it compares every score
    against the running max and rescales l and o by exp(m_old - m_new) on
    every tile (paper §4.1, lines 5-8), instead of SU-FA's two compares per
    lane and one merge.
    """
    _sufa_step(machine, instr, pc, work)
    a = instr.args
    lanes, vdepth = a["lanes"], a["vdepth"]
    selected = work.macs // (a["depth"] + vdepth)
    work.compares = selected + lanes
    work.exps = selected + lanes
    work.macs += lanes * (vdepth + 1)
    work.max_updates = 0


def _topk_mask(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
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


def _sufa_norm(machine: Machine, instr: Instruction, pc: int, work: Work) -> None:
    state = _check_sufa(machine, instr, pc)
    out = numerics.sufa_finish(state)
    machine.sram_view(pc, instr, "out", out.size, True, work)[...] = out.reshape(-1)
    work.divs = out.size


_HANDLERS = {
    "halt": _ctrl,
    "set": _ctrl,
    "addi": _ctrl,
    "loop": _ctrl,
    "loopr": _ctrl,
    "barrier": _ctrl,
    "post": _ctrl,
    "dma.load": _dma_load,
    "dma.gather": _dma_gather,
    "dma.store": _dma_store,
    "dlzs.key": _dlzs_key,
    "dlzs.score": _dlzs_score,
    "sads": _sads,
    "rass": _rass,
    "sufa.init": _sufa_init,
    "sufa.step": _sufa_step,
    "fa2.step": _fa2_step,
    "mul4.score": _mul4_score,
    "topk.mask": _topk_mask,
    "sufa.norm": _sufa_norm,
    **on_demand.HANDLERS,
}


def random_inputs(program: Program, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random inputs for every input symbol (floats N(0,1), ints small)."""
    rng = np.random.default_rng(seed)
    out = {}
    for sym in program.symbols:
        if sym.kind != "input":
            continue
        if sym.np_dtype.kind == "f":
            out[sym.name] = rng.standard_normal(sym.shape).astype(sym.np_dtype)
        else:
            out[sym.name] = rng.integers(-8, 8, sym.shape).astype(sym.np_dtype)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sofa_compiler.sim.functional", description=__doc__.split("\n")[0])
    parser.add_argument("program", help="a .sofa container")
    parser.add_argument("--inputs", help=".npz with one array per input symbol (default: random)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    parser.add_argument("--expected-hash", help="the machine's target config hash (hex); mismatch traps")
    parser.add_argument("--dram-bytes", type=int, default=None, help="DRAM size (default: the program's)")
    args = parser.parse_args(argv)
    from sofa_compiler.isa.container import ContainerError

    try:
        with open(args.program, "rb") as handle:
            program = Program.from_bytes(handle.read())
        if args.inputs:
            with np.load(args.inputs) as data:
                inputs = {k: data[k] for k in data.files}
        else:
            inputs = random_inputs(program, args.seed)
        machine = Machine(DEFAULT_SRAM, args.dram_bytes or program.dram_bytes)
        result = machine.run(program, inputs, args.expected_hash)
    except Trap as trap:
        print(str(trap), file=sys.stderr)
        return 2
    except (OSError, ContainerError, InputError, ValueError) as error:
        print(f"sofa-sim: error: {error}", file=sys.stderr)
        return 1
    print(f"instructions executed: {result.instructions_executed}")
    for name, value in result.outputs.items():
        flat = value.reshape(-1)
        print(f"output {name}: {value.dtype} {list(value.shape)} sum={float(np.sum(flat, dtype=np.float64)):.6g}")
        with np.printoptions(precision=6, threshold=16, edgeitems=4):
            print(f"  {flat[:8]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
