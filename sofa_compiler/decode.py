"""Running one decode step's attention on the simulator (issue 18).

`compile_decode` turns a `DecodeStep` into a program for a hardware config
(`passes.lower_to_isa.decode`); `run_decode` stages Q and the caches, runs it
with the timing model and returns the output with the simulator's report.
`choose_lowering` (`sofa_compiler.decode_cost`) picks standard or bifurcated.
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
from passes.lower_to_isa.decode_sparse import sparse_decode_program, stage_sparse_decode_inputs
from sofa_compiler.isa.container import Program
from sofa_compiler.isa.ir import ir_to_program
from sofa_compiler.sim.config import HardwareConfig, load_config
from sofa_compiler.sim.functional import Machine, run_with_timing
from sofa_compiler.sim.limits import check_dram_bytes
from sofa_compiler.sim.report import Report, build_report


def target_of(config: HardwareConfig) -> TargetAttr:
    """The `#sofa.target` of a simulator config (the typed attribute the lowering reads)."""
    return TargetAttr(config.as_target_dict())


def compile_decode(
    step: DecodeStep, lowering: DecodeLowering, config: HardwareConfig | None = None, tile: int = DECODE_TILE
) -> Program:
    """The decode kernel of `step` as a binary program for `config` (default: the paper's design)."""
    config = config or load_config(None)
    return ir_to_program(decode_program(step, target_of(config), lowering, tile))


@dataclass(frozen=True)
class DecodeRun:
    """One simulated decode step: its attention output ``[B, Hq, 1, dv]`` and the simulator's report."""

    output: np.ndarray
    report: Report


def run_decode(
    step: DecodeStep,
    lowering: DecodeLowering,
    q: np.ndarray,
    k: Sequence[np.ndarray],
    v: Sequence[np.ndarray],
    config: HardwareConfig | None = None,
    tile: int = DECODE_TILE,
) -> DecodeRun:
    """Compile and simulate `step` on Q ``[B, Hq, 1, d]`` and each sample's cache ``k[b]``/``v[b]`` ``[Hkv, L, d]``."""
    config = config or load_config(None)
    program = compile_decode(step, lowering, config, tile)
    return _simulate(step, program, stage_decode_inputs(step, q, k, v), config)


def run_sparse_decode(
    step: DecodeStep,
    keep: float,
    q: np.ndarray,
    k: Sequence[np.ndarray],
    v: Sequence[np.ndarray],
    config: HardwareConfig | None = None,
    tile: int = DECODE_TILE,
) -> DecodeRun:
    """`run_decode` for the sparse decode kernel (`decode_sparse`): DLZS + SADS select each query's keys."""
    config = config or load_config(None)
    program = ir_to_program(sparse_decode_program(step, target_of(config), keep, tile))
    return _simulate(step, program, stage_sparse_decode_inputs(step, q, k, v), config)


def _simulate(step: DecodeStep, program: Program, inputs: dict[str, np.ndarray], config: HardwareConfig) -> DecodeRun:
    machine = Machine.from_target(config.as_target_dict(), dram_bytes=check_dram_bytes(program.dram_bytes))
    result, timing = run_with_timing(machine, program, inputs, config)
    return DecodeRun(unstage_decode_output(step, result.outputs["o"]), build_report(timing, result.sram_peak))
