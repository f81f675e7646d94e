"""Run compiled attention kernels on the simulated accelerator from host code.

A `sofa.kernel_call` hands tensors to a kernel. The host stages them the way
the kernel's DRAM interface declares (`passes/kernel_interface.py`): heads flattened,
sequences padded with zeros to whole tiles, Q, K and V rounded to the
datapath's fp16 (`numerics.to_datapath`: saturating, NaN and inf kept; bf16
and fp32 tensors alike round once, directly). The kernel then runs on the
functional machine and the timing model, and its fp16 output is cut back to
the logical shape and widened to fp32 (the host casts it to the model's type).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from dialects import numerics
from dialects.numerics import MaskError
from dialects.sofa import KernelCallOp
from dialects.sofa_isa import ProgramOp
from passes.kernel_interface import KernelInterface, Operand, Staging, Symbol
from passes.lower_to_isa.decode import DecodeStep, DecodeSymbol, stage_decode_inputs, unstage_decode_output
from passes.lower_to_isa.decode_sparse import is_sparse_decode_symbols, stage_sparse_decode_inputs
from passes.lower_to_isa.masked import LaunchGeometry, launch_tables
from sofa_compiler.interpreters.sofa import as_array
from sofa_compiler.interpreters.sofa_isa import run_ir
from sofa_compiler.isa.container import Program
from sofa_compiler.sim.config import HardwareConfig
from sofa_compiler.sim.functional import Machine, run_with_timing
from sofa_compiler.sim.limits import DEFAULT_MAX_INSTRUCTIONS
from sofa_compiler.sim.progress import RunProgress
from sofa_compiler.sim.report import Report, build_report
from sofa_compiler.sim.timing import StreamingTiming, TimingResult, gc_paused, program_units
from sofa_compiler.sim.trace import Timeline

StagedOperands = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]
"""A kernel call's Q, K, V and X (None where the kernel does not take it)."""


class KernelError(Exception):
    """A kernel cannot run on the given tensors."""


def _pad_rows(values: np.ndarray, padded: int) -> np.ndarray:
    """``[B, H, S, d]`` -> ``[B*H*padded, d]`` (of `values`' dtype) with zero rows after each head's S rows."""
    batch, heads, length, depth = values.shape
    out = np.zeros((batch, heads, padded, depth), values.dtype)
    out[:, :, :length] = values
    return out.reshape(-1, depth)


def is_decode_kernel(program: Program) -> bool:
    """Whether the program is a decode kernel (`passes.lower_to_isa.decode`: it has no ``k`` but a prefix or suffix)."""
    names = {symbol.name for symbol in program.symbols}
    return Symbol.K.value not in names and bool(names & {DecodeSymbol.K_PREFIX.value, DecodeSymbol.K_SUFFIX.value})


def is_sparse_decode_kernel(program: Program) -> bool:
    """Whether the program is a sparse decode kernel (`passes.lower_to_isa.decode_sparse`)."""
    return is_sparse_decode_symbols({symbol.name for symbol in program.symbols})


def decode_step_of(program: Program, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> DecodeStep:
    """The `DecodeStep` a decode kernel runs for logical Q ``[B, Hq, 1, d]`` and K/V ``[B, Hkv, L, d|dv]``.

    The prefix is the ``kp`` rows per KV head; every sample's cache is K's L rows, which must
    equal the prefix and the suffix the kernel streams.
    """
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise KernelError("a decode kernel takes 4-D Q, K and V")
    batch, q_heads, _, depth = q.shape
    kv_heads, length = k.shape[1], k.shape[2]
    rows = {symbol.name: symbol.shape[0] for symbol in program.symbols}
    prefix = rows.get(DecodeSymbol.K_PREFIX.value, 0) // kv_heads
    suffix = rows.get(DecodeSymbol.K_SUFFIX.value, 0) // (kv_heads * batch)
    if prefix + suffix != length or q.shape[2] != 1:
        raise KernelError(
            f"tensors of shape Q {list(q.shape)}, K {list(k.shape)} do not fit the decode kernel"
            f" ({prefix} prefix and {suffix} suffix rows, one query)"
        )
    return DecodeStep(batch, q_heads, kv_heads, depth, (length,) * batch, prefix, v.shape[3])


def stage_kernel_inputs(program: Program, operands: StagedOperands) -> dict[str, np.ndarray]:
    """The input symbols of any kernel (an attention kernel's or a decode kernel's) for one call."""
    q, k, v, x = operands
    if not is_decode_kernel(program):
        return stage_attention_inputs(program, q, k, v, x)
    if k is None or v is None:
        raise KernelError("a decode kernel reads K and V: pass Q, K and V")
    q, k, v = _as_float(q), _as_float(k), _as_float(v)
    step = decode_step_of(program, q, k, v)
    prefix = step.prefix
    if any(not (cache[:, :, :prefix] == cache[:1, :, :prefix]).all() for cache in (k, v)):
        raise KernelError(f"the decode kernel shares the first {prefix} cache rows, but the samples' rows differ")
    stage = stage_sparse_decode_inputs if is_sparse_decode_kernel(program) else stage_decode_inputs
    return stage(step, q, list(k), list(v))


def unstage_kernel_output(program: Program, o: np.ndarray, operands: StagedOperands) -> np.ndarray:
    """Any kernel's output cut back to the logical ``[B, Hq, Sq, dv]`` (fp32)."""
    q, k, v, _ = operands
    if not is_decode_kernel(program):
        return unstage_attention_output(program, o, q.shape)
    if k is None or v is None:
        raise KernelError("a decode kernel reads K and V: pass Q, K and V")
    step = decode_step_of(program, np.asarray(q), np.asarray(k), np.asarray(v))
    return unstage_decode_output(step, o).astype(np.float32)


def kernel_interface(program: Program) -> KernelInterface:
    """The DRAM interface a program's symbol table declares (`passes.kernel_interface`)."""
    try:
        return KernelInterface.of_symbols({symbol.name: symbol.kind for symbol in program.symbols})
    except ValueError as error:
        raise KernelError(str(error)) from None


def generates_kv(program: Program) -> bool:
    """Whether the kernel generates K/V on chip from tokens (it then takes Q and X only)."""
    return kernel_interface(program).generates


def kernel_operands(program: Program) -> tuple[str, ...]:
    """The tensors a `sofa.kernel_call` passes, in order: Q, then K and V unless generated, then X on demand."""
    if is_decode_kernel(program):
        return (Operand.Q.value, Operand.K.value, Operand.V.value)
    return tuple(operand.value for operand in kernel_interface(program).operands)


def _staged(staging: Staging, tensor: np.ndarray, padded: int) -> np.ndarray:
    """One input symbol's rows made from its operand (`Staging` says how)."""
    match staging:
        case Staging.ROWS:
            return _pad_rows(numerics.to_datapath(_as_float(tensor)), padded)
        case Staging.TOKENS_I8:
            x_int, _ = numerics.quantize_token_rows(np.asarray(tensor, np.float64))
            return _pad_rows(x_int[:, None], padded).astype(np.int8)
        case Staging.TOKEN_EXPONENTS:
            _, exponent = numerics.quantize_token_rows(np.asarray(tensor, np.float64))
            return _pad_rows(exponent[:, None, :, None], padded).astype(np.int8)
        case Staging.TOKENS_F32:
            return _pad_rows(np.asarray(tensor, numerics.ACCUMULATOR.numpy)[:, None], padded)


def _as_float(tensor: np.ndarray) -> np.ndarray:
    """A tensor as a numpy float array (an integer or bf16-as-object array becomes fp32; floats keep their type)."""
    tensor = np.asarray(tensor)
    return tensor if tensor.dtype.kind == "f" else tensor.astype(np.float32)


def stage_attention_inputs(
    program: Program, q: np.ndarray, k: np.ndarray | None, v: np.ndarray | None, x: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The kernel's input symbols for logical Q ``[B,Hq,Sq,d]``, K/V ``[B,Hkv,Skv,*]``.

    On-demand kernels also take the tokens X ``[B, Skv, H]``, which the host
    writes as 8-bit rows with one exponent each (`numerics.quantize_token_rows`);
    kernels that generate K/V on chip take X (also as fp32 rows) instead of K and V.
    """
    interface = kernel_interface(program)
    padded_q = program.symbol(Symbol.Q.value).shape[0] // (q.shape[0] * q.shape[1])
    if interface.generates:
        if x is None:
            raise KernelError("this kernel generates K/V from tokens: pass Q and X")
        padded_kv = program.symbol(Symbol.X32.value).shape[0] // x.shape[0]
        kv_length = x.shape[1]
    else:
        if k is None or v is None:
            raise KernelError("this kernel reads K and V: pass Q, K and V")
        padded_kv = program.symbol(Symbol.K.value).shape[0] // (k.shape[0] * k.shape[1])
        kv_length = k.shape[2]
    if padded_q < q.shape[2] or padded_kv < kv_length:
        raise KernelError(
            f"tensors of shape Q {list(q.shape)} with {kv_length} keys do not fit the kernel's layout"
            f" ({padded_q} query and {padded_kv} key rows per head)"
        )
    if interface.on_demand and x is None:
        raise KernelError("this kernel predicts from tokens: pass X as its fourth operand")
    operands = {Operand.Q: q, Operand.K: k, Operand.V: v, Operand.X: x}
    staged = {}
    for spec in interface.inputs():
        assert spec.operand is not None
        assert spec.staging is not None
        padded = padded_q if spec.operand is Operand.Q else padded_kv
        staged[spec.name.value] = _staged(spec.staging, operands[spec.operand], padded)  # type: ignore[arg-type]
    return staged


def stage_launch_mask(
    program: Program, mask: np.ndarray | None, q_shape: tuple[int, ...], kv_len: int
) -> LaunchStaging:
    """A run-time mask's index lists and bitmaps (bias tiles for an additive mask's kernel), built on the host
    from the actual mask (`lower_to_isa.masked.launch_tables`) and padded to the kernel's worst-case symbols."""
    if mask is None:
        raise KernelError("this kernel takes a run-time mask: pass it as its last operand")
    batch, q_heads, q_len, _ = q_shape
    address = program.symbol(Symbol.MASK_GEOMETRY.value).address
    data = next(segment.data for segment in program.segments if segment.address == address)
    geometry = LaunchGeometry.of_words(np.frombuffer(data, "<i4"))
    start = time.perf_counter()
    try:
        tables = launch_tables(geometry, np.asarray(mask), batch, q_heads, q_len, kv_len)
    except MaskError as error:
        raise KernelError(f"cannot run this mask on the accelerator: {error}") from None
    seconds = time.perf_counter() - start
    staged = {}
    tiles = (Symbol.MASK_BITS, tables.bitmaps) if tables.bias is None else (Symbol.MASK_BIAS, tables.bias)
    for symbol, values in ((Symbol.MASK_TABLE, tables.words), tiles):
        declared = program.symbol(symbol.value)
        padded = np.zeros(declared.shape, values.dtype)
        if values.size > padded.size:
            raise KernelError(f"the mask's {symbol.value} ({values.size} entries) exceeds the kernel's worst case")
        padded.reshape(-1)[: values.size] = values
        staged[symbol.value] = padded
    return LaunchStaging(staged, seconds)


@dataclass(frozen=True)
class LaunchStaging:
    """A run-time mask's staged tables and the host time spent building them (reported, not hidden)."""

    inputs: dict[str, np.ndarray]
    seconds: float


def unstage_attention_output(program: Program, o: np.ndarray, q_shape: tuple[int, ...]) -> np.ndarray:
    batch, heads, length, _ = q_shape
    padded_q = program.symbol(Symbol.Q.value).shape[0] // (batch * heads)
    return o.reshape(batch, heads, padded_q, -1)[:, :, :length].astype(np.float32)


@dataclass
class KernelRun:
    """One kernel execution: which kernel, its timing and its report."""

    kernel: str
    timing: TimingResult
    report: Report
    mask_build_seconds: float = 0.0
    """Host time spent building a run-time mask's index lists and bitmaps at launch (0 without one)."""


@dataclass
class KernelRunner:
    """Runs a model's kernels on one hardware configuration and keeps every run."""

    programs: Mapping[str, Program]
    config: HardwareConfig
    progress: RunProgress | None = None
    runs: list[KernelRun] = field(default_factory=list)
    timeline: Timeline | None = None
    """Where given, each call is appended to it, for a model trace."""
    ir_programs: Mapping[str, ProgramOp] | None = None
    """Where given, each kernel runs op by op on the `sofa_isa` IR interpreter instead of the binary's machine."""
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS
    """Each kernel run's instruction budget (the tools' --max-instructions)."""
    keep_events: bool = False
    """Keep every event and its schedule in each run's `timing` (for traces); otherwise only the totals."""

    def call(self, name: str, q: np.ndarray, *tensors: np.ndarray) -> np.ndarray:
        """Run kernel `name` on Q and its other operands: K, V (and X on demand), or X alone when it generates K/V,
        then a run-time mask where the kernel takes one."""
        if name not in self.programs:
            raise KernelError(f"no kernel named '{name}' (kernels: {', '.join(self.programs) or 'none'})")
        program = self.programs[name]
        operands = kernel_operands(program)
        if len(tensors) + 1 != len(operands):
            raise KernelError(f"kernel '{name}' takes {', '.join(operands)}, got {len(tensors) + 1} operands")
        given = dict(zip(operands[1:], tensors, strict=True))
        k, v, x = given.get("k"), given.get("v"), given.get("x")
        machine = Machine.from_target(self.config.as_target_dict(), dram_bytes=program.dram_bytes)
        call_operands = (q, k, v, x)
        inputs = self.stage(name, program, call_operands)
        launch = None
        if not is_decode_kernel(program) and kernel_interface(program).launch_mask:
            assert k is not None  # masked kernels read host-given K (stage_attention_inputs checked)
            launch = stage_launch_mask(program, given.get("mask"), q.shape, k.shape[2])
            inputs.update(launch.inputs)
        progress = self.progress
        if progress is not None:
            progress.kernel(f"{name} (call {len(self.runs) + 1})")
        # Events stream into the timing model as they happen: memory stays bounded however long the kernel runs.
        # A model trace (`timeline`) needs every event, so it keeps them.
        keep_events = self.keep_events or self.timeline is not None
        if self.ir_programs is None:
            functional = progress.functional if progress is not None else None
            result, timing = run_with_timing(
                machine, program, inputs, self.config, self.max_instructions, functional, keep_events
            )
        else:
            schedule = StreamingTiming(self.config, None, keep_events, units=program_units(program))
            with gc_paused():
                result = run_ir(self.ir_programs[name], inputs, machine, self.config.config_hash(),
                                self.max_instructions, schedule.add)  # fmt: skip
                timing = schedule.finish()
        seconds = launch.seconds if launch is not None else 0.0
        self.runs.append(KernelRun(name, timing, build_report(timing, result.sram_peak), seconds))
        if self.timeline is not None:
            self.timeline.kernel(name, timing)
        return unstage_kernel_output(program, result.outputs[Symbol.OUT.value], call_operands)

    def stage(self, name: str, program: Program, operands: StagedOperands) -> dict[str, np.ndarray]:
        """The DRAM contents of kernel `name`'s input symbols for one call (a resident cache overrides this)."""
        del name
        return stage_kernel_inputs(program, operands)


@register_impls
class KernelFunctions(InterpreterFunctions):
    """`sofa.kernel_call` for xDSL's interpreter, backed by a `KernelRunner`."""

    def __init__(self, runner: KernelRunner):
        super().__init__()
        self.runner = runner

    @impl(KernelCallOp)
    def run_kernel_call(self, interpreter: Interpreter, op: KernelCallOp, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self.runner.call(op.kernel.data, *(as_array(a) for a in args)),)
