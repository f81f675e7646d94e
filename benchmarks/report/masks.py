"""Flexible masks in the report (issue 17): the masked workloads against the same layer with a dense mask.

Each of `sofa_compiler.mask_workloads.mask_workloads` (Longformer, BigBird, Mistral window, dilated,
document packing) at each of the mode's lengths is compiled with its constant mask and run on the
simulator (one head, d = 128, keep 1.0), next to the same layer with an all-true mask at that length.
Every figure of a row is measured in the report's run; the plan (format, mapping, Bc) is what the
tiling pass chose, read from the compiled module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.report.markdown import fmt, table
from dialects.numerics import tile_count
from dialects.sofa import TargetAttr
from passes.tile_plan import query_lanes
from sofa_compiler.mask_workloads import MaskedRun, mask_workloads, simulate_masked

DEPTH = 128
KEEP = 1.0


@dataclass(frozen=True)
class MaskRow:
    """One masked layer and its dense-mask twin, all measured in the run."""

    workload: str
    seq: int
    density: float
    """Visible (query, key) pairs over S^2."""
    visited: int
    """(query tile, KV tile) pairs the kernel scored (the simulator's DLZS instructions)."""
    format: str
    mapping: str
    tile: int
    pairs: int
    """All (query tile, KV tile) pairs at the plan's tiles."""
    cycles: int
    dram_bytes: int
    dense_visited: int
    dense_cycles: int
    dense_dram_bytes: int
    wall_s: float


def _plan(run: MaskedRun, seq: int) -> tuple[str, str, int, int]:
    """The mask plan's format, mapping, Bc and all (query tile, KV tile) pairs at its tiles; a mask the front
    end turned into causal attention (Mistral's window at S <= window) has none: ``causal``, the kernel's Bc."""
    if not run.plans:
        (tiling,) = run.compiled.tilings.values()
        lanes = query_lanes(TargetAttr(run.compiled.config.as_target_dict()), seq)
        return "causal", "block", tiling.bc, tile_count(seq, lanes) * tile_count(seq, tiling.bc)
    (plan,) = run.plans
    pairs = tile_count(seq, plan.lanes.data) * tile_count(seq, plan.tile.data)
    return plan.format.data, plan.mapping.data, plan.tile.data, pairs


def mask_rows(lengths: tuple[int, ...], log: Callable[[str], None]) -> list[MaskRow]:
    """Every masked workload at each length against an all-true mask of the same length (one dense run per length)."""
    rows = []
    for seq in lengths:
        start = time.perf_counter()
        dense = simulate_masked(np.ones((seq, seq), np.bool_), 1, DEPTH, keep=KEEP)
        log(f"  dense mask, S={seq}: {dense.cycles:,} cycles ({time.perf_counter() - start:.1f} s)")
        for workload in mask_workloads((seq,)):
            start = time.perf_counter()
            mask = workload.mask()
            run = simulate_masked(mask, 1, DEPTH, keep=KEEP)
            wall = time.perf_counter() - start
            rows.append(
                MaskRow(
                    workload.name,
                    seq,
                    float(mask.mean()),
                    run.visited_tiles,
                    *_plan(run, seq),
                    run.cycles,
                    run.dram_bytes,
                    dense.visited_tiles,
                    dense.cycles,
                    dense.dram_bytes,
                    wall,
                )
            )
            log(f"  {workload.name}: {run.cycles:,} cycles, {rows[-1].format}/{rows[-1].mapping} ({wall:.1f} s)")
    return rows


def masks_section(rows: list[MaskRow], seconds: float | None, mode: str) -> str:
    title = "## 6. Flexible masks (issue 17)\n\n"
    if not rows:
        why = f"the {mode} run does not measure it" if seconds is not None else "results from a run before it existed"
        return title + f"**Not in this report:** {why} (`--quick`: S = 4096; the full run: S = 4096-16384).\n"
    took = f" The section took {seconds:.0f} s." if seconds is not None else ""
    body = [
        [
            row.workload,
            f"{row.density:.3f}",
            f"{row.visited / row.pairs:.3f}",
            f"{row.format}/{row.mapping}, Bc {row.tile}",
            f"{row.cycles:,}",
            f"{row.cycles / row.dense_cycles:.3f}",
            f"{row.dram_bytes:,}",
            f"{row.dram_bytes / row.dense_dram_bytes:.3f}",
            fmt(row.wall_s, 3),
        ]
        for row in rows
    ]
    dense = {row.seq: row for row in rows}
    dense_rows = [
        [f"{seq}", f"{row.dense_cycles:,}", f"{row.dense_dram_bytes:,}", f"{row.dense_visited}"]
        for seq, row in sorted(dense.items())
    ]
    return (
        title + "**Measured in this run** (`sofa_compiler.mask_workloads`; one head, d = "
        f"{DEPTH}, keep {KEEP:g}): each masked layer with its constant boolean mask against the same layer with an "
        "all-true mask at the same S. *density*: visible (query, key) pairs over S²; *tiles visited*: (query tile, "
        "KV tile) pairs the kernel scored (the simulator's DLZS instructions) over all pairs at the plan's tiles; "
        "*plan*: the mask format and mapping the analytical "
        "model chose (`passes/mask_model.py`) and the KV tile, read from the compiled module; cycles and DRAM "
        "bytes are the simulator's, their ratios to the dense-mask layer's. Parameters: Longformer window 512 + 16 "
        "global tokens, BigBird 10% of 128 x 128 blocks, Mistral window 4096 (at S = 4096 that is every earlier "
        "key: the front end compiles it as causal attention, no mask plan), dilated window 256 x dilation 4, "
        f"8 packed documents (causal inside each).{took}\n\n"
        + table(
            [
                "workload",
                "density",
                "tiles visited",
                "plan",
                "cycles",
                "/ dense",
                "DRAM bytes",
                "/ dense",
                "wall (s)",
            ],
            body,
        )
        + "\nThe dense-mask layers (measured in this run):\n\n"
        + table(["S", "cycles", "DRAM bytes", "tiles"], dense_rows)
    )
