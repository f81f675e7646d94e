"""What a whole-row top-k baseline selects, in counts: valid keys, budgets, their split over KV tiles,
and what its top-k engine does for them.

Counts only: the baselines are priced by how many keys each row keeps, never
by which (a step's cost is linear in the keys it attends to). Where the keys
of a row fall among its KV tiles is data-dependent; the model spreads a row's
budget over its valid keys evenly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dialects.numerics import keep_count, tile_count
from dialects.sofa import TargetAttr
from passes.tile_plan import AttentionShape
from sofa_compiler.sim.events import Work


@dataclass(frozen=True)
class Rows:
    """One head's query rows: each row's valid keys and the keys it keeps."""

    valid: np.ndarray
    """Valid keys of each query row (upper-left causal: query i sees keys 0..i)."""
    kept: np.ndarray
    """Keys each row keeps: ceil(k * valid) (``fair``), or ceil(k * kv_len) whatever the row's length."""

    @staticmethod
    def of(shape: AttentionShape, fair: bool = True) -> Rows:
        queries = np.arange(shape.q_len)
        valid = np.minimum(queries + 1, shape.kv_len) if shape.causal else np.full(shape.q_len, shape.kv_len)
        if fair:
            kept = np.array([keep_count(shape.keep, int(n)) for n in valid])
        else:
            kept = np.minimum(valid, keep_count(shape.keep, shape.kv_len))
        return Rows(valid.astype(np.int64), kept.astype(np.int64))

    def tiles_needed(self, first: int, count: int, tile: int) -> int:
        """KV tiles holding a valid key of rows ``first .. first + count - 1`` (the rest are fully masked)."""
        return tile_count(int(self.valid[first : first + count].max()), tile)

    def kept_in_tile(self, first: int, count: int, tile: int, index: int) -> int:
        """Keys rows ``first ..`` keep in KV tile `index`: each row's budget spread over its valid keys."""
        valid = self.valid[first : first + count]
        inside = np.clip(valid - index * tile, 0, tile)
        return int(np.round(np.sum(self.kept[first : first + count] * inside / valid)))


def row_topk_work(target: TargetAttr, valid: np.ndarray, kept: np.ndarray) -> Work:
    """The whole-row top-k of rows with `valid` keys keeping `kept`, on the target's `row_topk` engine.

    ``sort``: the streaming 16->4 sort cores, ceil(m / outputs) passes of
    ceil(n / inputs) rounds a row, plus one compare a valid key (the clip, as
    `topk.mask`). ``quickselect``: n + min(m, n - m) expected comparisons a row
    (Floyd and Rivest, CACM 18(3), 1975), done on the same cores' comparators,
    which the cost model runs at `sads_inputs_per_round` a core and cycle.
    """
    if target.row_topk.data == "quickselect":
        return Work(compares=int(np.sum(valid + np.minimum(kept, valid - kept))))
    outputs, inputs = target.sads_outputs_per_round.data, target.sads_inputs_per_round.data
    passes = -(-kept // outputs)
    rounds = passes * -(-valid // inputs)
    return Work(sort_rounds=int(np.sum(rounds)), compares=int(np.sum(valid)))


def group_rows(lanes: int, row_bytes: int, buffer_bytes: int, buffers: int) -> int:
    """Rows per top-k group: the most (a power of two, at most `lanes`) of which `buffers` groups
    of `row_bytes`-long rows fit one SRAM buffer of `buffer_bytes`."""
    rows = 1 << int(math.log2(lanes))
    while rows > 1 and buffers * rows * row_bytes > buffer_bytes:
        rows //= 2
    if buffers * rows * row_bytes > buffer_bytes:
        raise ValueError(f"{buffers} A-hat rows of {row_bytes} bytes do not fit a {buffer_bytes}-byte SRAM buffer")
    return rows
