"""The functional machine's state: memories, registers, semaphores, SU-FA accumulators, and access to them.

DRAM and each SRAM are flat ``uint8`` arrays; instructions read and write
typed views (``.view(np.float16)`` and so on) through `sram_view` and the
DRAM row helpers, which check bounds and alignment, keep the SRAM peak and
count the bytes each instruction moves. What the instructions do is in
`sofa_compiler/sim/semantics.py` and `sofa_compiler/sim/on_demand.py`;
running a program is `sofa_compiler/sim/functional.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Self

import numpy as np

from dialects import numerics
from dialects.sofa import TARGET_DEFAULTS
from dialects.sofa_isa import ELEM_BYTES, SEMAPHORES, elem_type
from sofa_compiler.isa.container import Program
from sofa_compiler.isa.encoding import Instruction
from sofa_compiler.sim.events import Buffer, Event, SramPeak, Work
from sofa_compiler.sim.limits import DEFAULT_MAX_INSTRUCTIONS, check_dram_bytes
from sofa_compiler.sim.traps import Trap, TrapKind

NP_ELEM = {"u8": np.uint8, "i8": np.int8, "f16": np.float16, "f32": np.float32, "i32": np.int32}

DEFAULT_SRAM = {buffer: int(TARGET_DEFAULTS[f"{buffer}_sram"]) for buffer in Buffer}
"""The paper's SRAM sizes, from the dialect's one definition of the hardware defaults."""


class InputError(ValueError):
    """Program inputs do not match the symbol table."""


class MachineState:
    """The state of a SOFA machine with `sram_sizes` bytes per buffer and `dram_bytes` of DRAM.

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
        # Checked before allocating; the zeroed pages are not touched until written.
        self.dram = np.zeros(check_dram_bytes(int(dram_bytes)), np.uint8)
        self._dram_clean = True
        self.lanes = lanes
        self.sads_inputs = sads_inputs
        self.sads_outputs = sads_outputs
        self.reset()

    @classmethod
    def from_target(cls, target: Mapping[str, Any], dram_bytes: int = 1 << 26) -> Self:
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

    def reset(
        self, max_instructions: int = DEFAULT_MAX_INSTRUCTIONS, on_event: Callable[[Event], None] | None = None
    ) -> None:
        """A fresh machine: memories zero, no events; the run's budget and event sink (default: `events`)."""
        # Per-instruction decode caches, keyed by id(instr); each entry holds the
        # instruction itself, so the id stays unique while the entry lives.
        self._decoded: dict[int, tuple[Any, ...]] = {}
        self._operands: dict[tuple[int, str], tuple[Any, ...]] = {}
        self._memo: dict[str, tuple[tuple[str, tuple[int, ...], bytes], Any]] = {}
        self._all_true: dict[tuple[int, ...], np.ndarray] = {}
        for array in self.sram.values():
            array.fill(0)
        if not self._dram_clean:
            self.dram.fill(0)
        self._dram_clean = False
        self.regs = [0] * 16
        self.sems = [0] * SEMAPHORES
        self.signallers: list[set[str]] = [set() for _ in range(SEMAPHORES)]
        self.sufa_state: numerics.SufaState | None = None
        self.sufa_shape = (0, 0)
        self.softcap = 0.0  # the SADS and SU-FA units' score-cap register (`softcap`; 0: no cap)
        self.sads_budget: np.ndarray | None = None  # budgeted SADS's per-lane row budgets (`sads.reset`)
        self.lz_latch: Any = None  # the DLZS LZEs' latched Q codes (`semantics.LzLatch`)
        self.events: list[Event] = []
        self.record: Callable[[Event], None] = on_event or self.events.append
        self.max_instructions = max_instructions
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
