"""Budgeted SADS in the simulator: `sads.reset` and `sads.budget` (docs/isa.md).

The SADS unit holds one budget counter per lane (`MachineState.sads_budget`);
`sads.reset` zeroes them when a query tile starts, and each `sads.budget`
adds the tile's plain allowance, selects by `numerics.sads_budget_tile` and
takes off what it kept. The lane's distance to its last valid key's tile comes
from the same causal and padding bounds that make the validity mask.
"""

from __future__ import annotations

import numpy as np

from dialects import numerics
from sofa_compiler.isa.encoding import Instruction
from sofa_compiler.sim.events import Work
from sofa_compiler.sim.state import MachineState
from sofa_compiler.sim.traps import Trap


def _sads_reset(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    machine.sads_budget = np.zeros(instr.args["lanes"], np.int64)


def lane_bounds(lanes: int, key_base: int, keys: int, query_base: int, kv_len: int, causal: bool) -> tuple:
    """Per lane of one tile: the validity mask ``[lanes, keys]`` and the last valid key (global, -1: none)."""
    global_keys = key_base + np.arange(keys)
    last = np.full(lanes, kv_len - 1, np.int64)
    valid = np.broadcast_to(global_keys < kv_len, (lanes, keys))
    if causal:
        queries = query_base + np.arange(lanes)
        valid = valid & (global_keys[None, :] <= queries[:, None])
        last = np.minimum(last, queries)
    return valid, last


def _sads_budget(machine: MachineState, instr: Instruction, pc: int, work: Work) -> None:
    a = instr.args
    lanes, keys, slots = a["lanes"], a["keys"], a["m"]
    budget = machine.sads_budget
    if budget is None or len(budget) != lanes:
        opened = "no sads.reset before" if budget is None else f"sads.reset opened {len(budget)} lanes"
        raise Trap(pc, str(instr), f"budgeted SADS over {lanes} lanes: {opened}")
    scores = machine.sram_view(pc, instr, "scores", lanes * keys, False, work).reshape(lanes, keys)
    key_base = machine.regs[a["key_base"]]
    valid, last = lane_bounds(lanes, key_base, keys, machine.regs[a["query_base"]], a["kv_len"], bool(a["causal"]))
    distance = numerics.tiles_to_last(last, key_base, keys)
    local, machine.sads_budget, surviving = numerics.sads_budget_tile(
        scores, valid, budget, distance, a["quota"], a["far"], slots, float(a["radius"])
    )
    out = machine.sram_view(pc, instr, "out", lanes * slots, True, work).reshape(local.shape)
    out[...] = np.where(local == numerics.NO_INDEX, numerics.NO_INDEX, local + key_base).astype(np.int32)
    # Cost (docs/cost-model.md): as `sads`, but a lane's sort core stops after the keys it keeps:
    # ceil(kept / outputs) passes of ceil(|FR| / inputs) rounds; the budget update is one add a lane.
    kept = np.count_nonzero(local != numerics.NO_INDEX, axis=-1)
    passes = -(-kept // machine.sads_outputs)
    work.sort_rounds = int(np.sum(passes * -(-surviving // machine.sads_inputs)))
    work.compares = lanes * keys


HANDLERS = {"sads.reset": _sads_reset, "sads.budget": _sads_budget}
