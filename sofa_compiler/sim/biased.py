"""Run-time additive masks and softcap in the simulator: `softcap`, `sads.bias` and `sufa.bias` (docs/isa.md).

The SADS and SU-FA units share one score-cap register (`MachineState.softcap`), set by `softcap` in a
kernel's prologue; `sufa.step` and `fa2.step` apply it too (`semantics.attention_tile`). A biased kernel
loads, for every visited (query tile, KV tile) pair, the fp32 bias tile the host staged at launch; SADS
ranks ``cap(scale * A-hat) + bias`` (`numerics.biased_ranking`, the same kernel as the `sofa` dialect's
interpreter) and SU-FA adds the bias to the exact scores.
"""

from __future__ import annotations

import numpy as np

from dialects import numerics
from sofa_compiler.isa.encoding import Instruction
from sofa_compiler.sim.events import Work
from sofa_compiler.sim.semantics import attention_tile, select_tile
from sofa_compiler.sim.state import MachineState


def _softcap(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    machine.softcap = float(instr.args["cap"])


def _sads_bias(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    lanes, keys = a["lanes"], a["keys"]
    scores = machine.sram_view(pc, instr, "scores", lanes * keys, False, work).reshape(lanes, keys)
    bias = machine.sram_view(pc, instr, "bias", lanes * keys, False, work).reshape(lanes, keys)
    ranked = numerics.biased_ranking(scores, bias, float(a["scale"]), machine.softcap)
    select_tile(machine, instr, pc, work, ~np.isneginf(bias), ranked)
    # In line with the clip, each score also takes a multiply-add (scale, bias) and, capped, a tanh.
    work.compares += lanes * keys * (2 if machine.softcap else 1)


def _sufa_bias(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    bias = machine.sram_view(pc, instr, "bias", a["lanes"] * a["window"], False, work)
    attention_tile(machine, instr, pc, work, bias.reshape(a["lanes"], a["window"]))


HANDLERS = {"softcap": _softcap, "sads.bias": _sads_bias, "sufa.bias": _sufa_bias}
