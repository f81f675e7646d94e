"""Running one decode step's attention on the simulator (issue 18).

`compile_decode` turns a `DecodeStep` into a program for a hardware config
(`passes.lower_to_isa.decode`); `run_decode` stages Q and the caches, runs it
with the timing model and returns the output with the simulator's report.
`SparseDecode(keep)` in place of a lowering runs the sparse decode kernel
(`passes.lower_to_isa.decode_sparse`). `choose_lowering`
(`sofa_compiler.decode_cost`) picks standard or bifurcated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dialects.sofa import TargetAttr
from passes.lower_to_isa.decode import (
    DECODE_TILE,
    DecodeLowering,
    DecodeStep,
    decode_program,
    stage_decode_inputs,
    unstage_decode_output,
)
from passes.lower_to_isa.decode_sparse import SparseDecode, sparse_decode_program, stage_sparse_decode_inputs
from sofa_compiler.isa.container import Program
from sofa_compiler.isa.ir import ir_to_program
from sofa_compiler.sim.config import HardwareConfig, load_config
from sofa_compiler.sim.functional import Machine, run_with_timing
from sofa_compiler.sim.limits import check_dram_bytes
from sofa_compiler.sim.report import Report, build_report


def target_of(config: HardwareConfig) -> TargetAttr:
    """The `#sofa.target` of a simulator config (the typed attribute the lowering reads)."""
    return TargetAttr(config.as_target_dict())


DecodeKernelKind = DecodeLowering | SparseDecode
"""A dense decode lowering (standard or bifurcated), or sparse decode at a keep ratio."""


def compile_decode(
    step: DecodeStep, kind: DecodeKernelKind, config: HardwareConfig | None = None, tile: int = DECODE_TILE
) -> Program:
    """The decode kernel of `step` as a binary program for `config` (default: the paper's design)."""
    target = target_of(config or load_config(None))
    if isinstance(kind, SparseDecode):
        return ir_to_program(sparse_decode_program(step, target, kind.keep, tile))
    return ir_to_program(decode_program(step, target, kind, tile))


@dataclass(frozen=True)
class DecodeRun:
    """One simulated decode step: its attention output ``[B, Hq, 1, dv]`` and the simulator's report."""

    output: np.ndarray
    report: Report


def run_decode(
    step: DecodeStep,
    kind: DecodeKernelKind,
    q: np.ndarray,
    k: Sequence[np.ndarray],
    v: Sequence[np.ndarray],
    config: HardwareConfig | None = None,
    tile: int = DECODE_TILE,
) -> DecodeRun:
    """Compile and simulate `step` on Q ``[B, Hq, 1, d]`` and each sample's cache ``k[b]``/``v[b]`` ``[Hkv, L, d]``."""
    config = config or load_config(None)
    program = compile_decode(step, kind, config, tile)
    stage = stage_sparse_decode_inputs if isinstance(kind, SparseDecode) else stage_decode_inputs
    machine = Machine.from_target(config.as_target_dict(), dram_bytes=check_dram_bytes(program.dram_bytes))
    result, timing = run_with_timing(machine, program, stage(step, q, k, v), config)
    return DecodeRun(unstage_decode_output(step, result.outputs["o"]), build_report(timing, result.sram_peak))
