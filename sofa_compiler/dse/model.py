"""`sofa-dse MODEL.onnx --inputs calib.npz`: per-layer KV tile and keep for any ONNX model.

The model is compiled once (dense, keep 1.0) and run on the calibration
inputs with every kernel call answered by the golden numerics instead of the
simulator; each call's Q, K and V are captured. The simulator equals the
golden numerics bit for bit (tests/sim), so nothing here depends on which of
the two runs a kernel, and the golden numerics are far faster.

Per layer, each (Bc, keep) of the grid is scored on the captured activations
alone: the relative error of `numerics.sofa_attention` against dense
attention, on every ``row_step``-th query row (rows are independent in SADS
and SU-FA, so a subset of rows measures the same selection). Layers are then
given (Bc, keep) by a Lagrangian allocation: minimise the summed error under
a mean-keep budget. With the ``perplexity`` objective, the model's own loss
(perplexity of the calibration tokens, for a causal LM whose input is token
ids and whose output is logits) picks among the allocations of a few
multipliers; each loss evaluation is one whole forward pass of the model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dialects import numerics
from dialects.sofa import PLAIN_SADS
from sofa_compiler.dse.problem import DseError
from sofa_compiler.isa.encoding import Instruction
from sofa_compiler.runtime import KernelRunner
from sofa_compiler.tuning import LayerTuning, Tuning

Log = Callable[[str], None]
OBJECTIVES = ("attention", "perplexity")
"""The accuracy term: per-layer attention-output error, or the model's own loss on the calibration tokens."""


@dataclass(frozen=True)
class KernelSpec:
    """What a kernel computes besides its operands: the causal flag and the softmax scale (from its code)."""

    causal: bool
    scale: float


def kernel_spec(code: Sequence[Any]) -> KernelSpec:
    """The causal flag (a selection instruction's) and the scale (SU-FA's) of a compiled kernel."""
    causal = scale = None
    for instr in code:
        if not isinstance(instr, Instruction):
            continue
        if causal is None and "causal" in instr.args:
            causal = bool(instr.args["causal"])
        if scale is None and "scale" in instr.args:
            scale = float(instr.args["scale"])
    if causal is None or scale is None:
        raise DseError("a compiled kernel has no selection or SU-FA instruction to read its causal flag and scale")
    return KernelSpec(causal, scale)


@dataclass(frozen=True)
class Selection:
    """One layer's sparsity: KV tile Bc, keep ratio, sphere radius (logits), predictor and budgeted SADS's far."""

    tile: int
    keep: float
    radius: float = math.inf
    predictor: str = "dlzs"
    far: float = PLAIN_SADS


@dataclass(frozen=True)
class Captured:
    """One kernel call's operands: Q ``[B, H, S, d]``, K and V ``[B, Hkv, S, d]``."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    spec: KernelSpec

    def bias(self, rows: np.ndarray | None = None) -> np.ndarray:
        length = self.q.shape[2]
        bias = numerics.mask_to_bias(None, self.spec.causal, length, self.k.shape[2])
        return bias if rows is None else bias[rows]


def golden_attention(call: Captured, selection: Selection | None, rows: np.ndarray | None = None) -> np.ndarray:
    """The kernel's output by the golden numerics (None: dense), on all query rows or on ``rows``."""
    q = call.q if rows is None else call.q[:, :, rows]
    bias = call.bias(rows)
    if selection is None:
        return numerics.dense_attention(q, call.k, call.v, bias, call.spec.scale)
    s = selection
    scale = call.spec.scale
    return numerics.sofa_attention(q, call.k, call.v, bias, scale, s.keep, s.tile, s.radius, s.predictor, s.far)


@dataclass
class GoldenRunner(KernelRunner):
    """A `KernelRunner` that answers kernel calls with the golden numerics, optionally capturing operands.

    ``selections`` gives each call (in program order) its sparsity; None or a
    missing entry: dense attention.
    """

    selections: Sequence[Selection | None] = ()
    capture: bool = False
    captured: list[Captured] = field(default_factory=list)
    calls: int = 0

    def call(self, name: str, q: np.ndarray, *tensors: np.ndarray) -> np.ndarray:
        if name not in self.programs or len(tensors) != 2:
            raise DseError(f"kernel '{name}': the golden evaluation takes Q, K and V (K/V generation is not supported)")
        index, self.calls = self.calls, self.calls + 1
        if self.progress is not None:
            self.progress.kernel(f"{name} (call {index + 1})")
        k, v = tensors
        call = Captured(np.asarray(q, np.float32), np.asarray(k, np.float32), np.asarray(v, np.float32),
                        kernel_spec(self.programs[name].code))  # fmt: skip
        if self.capture:
            self.captured.append(call)
        selection = self.selections[index] if index < len(self.selections) else None
        return golden_attention(call, selection)


def relative_error(output: np.ndarray, reference: np.ndarray) -> float:
    reference = np.asarray(reference, np.float64)
    return float(np.linalg.norm(np.asarray(output, np.float64) - reference) / max(np.linalg.norm(reference), 1e-30))


def sampled_rows(length: int, row_step: int) -> np.ndarray:
    """Every ``row_step``-th query row, ending at the last (the longest causal row)."""
    return np.arange(length - 1, -1, -row_step)[::-1]


def layer_errors(
    calls: Sequence[Captured],
    grids: Sequence[Sequence[tuple[int, float]]],
    row_step: int,
    radius: float = math.inf,
    log: Log | None = None,
    far: float = PLAIN_SADS,
) -> list[dict[tuple[int, float], float]]:
    """Per layer, the attention-output error of each (tile, keep) of its grid on the captured activations."""
    result = []
    for index, (call, grid) in enumerate(zip(calls, grids, strict=True)):
        start = time.perf_counter()
        rows = sampled_rows(call.q.shape[2], row_step)
        reference = golden_attention(call, None, rows)
        errors = {}
        for tile, keep in grid:
            output = golden_attention(call, Selection(tile, keep, radius, far=far), rows)
            errors[(tile, keep)] = relative_error(output, reference)
        result.append(errors)
        if log is not None:
            took = time.perf_counter() - start
            log(f"layer {index}: {len(grid)} (Bc, keep) scored in {took:.1f} s (best error {min(errors.values()):.4f})")
    return result


def allocate(errors: Sequence[dict[tuple[int, float], float]], mean_keep: float) -> list[tuple[int, float]]:
    """Per layer (tile, keep) minimising the summed error with the layers' mean keep at most `mean_keep`.

    Lagrangian relaxation of the multiple-choice knapsack: each layer takes
    ``argmin error + lam * keep``; ``lam`` is bisected to the smallest value
    whose choice meets the budget. Ties prefer the lower keep, then the larger tile.
    """

    def choose(lam: float) -> list[tuple[int, float]]:
        return [min(table, key=lambda c: (table[c] + lam * c[1], c[1], -c[0])) for table in errors]

    def mean(choice: list[tuple[int, float]]) -> float:
        return sum(keep for _, keep in choice) / len(choice)

    smallest = min(min(keep for _, keep in table) for table in errors)
    if mean_keep < smallest - 1e-12:
        raise DseError(f"--mean-keep {mean_keep} is below the smallest keep of the grid ({smallest})")
    low, high = 0.0, 1.0
    while mean(choose(high)) > mean_keep + 1e-12:
        high *= 2
        if high > 1e12:
            break
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (low, middle) if mean(choose(middle)) <= mean_keep + 1e-12 else (middle, high)
    return choose(high)


def as_tuning(choice: Sequence[tuple[int, float]], meta: dict[str, Any]) -> Tuning:
    return Tuning(layers={i: LayerTuning(tile, keep) for i, (tile, keep) in enumerate(choice)}, meta=meta)


def causal_lm_perplexity(logits: np.ndarray, token_ids: np.ndarray) -> float:
    """exp(mean NLL) of token_ids[1:] under logits[:-1] (batch 1), in float64: a causal LM's own loss."""
    logits = np.asarray(logits, np.float64).reshape(-1, np.shape(logits)[-1])
    ids = np.asarray(token_ids).reshape(-1)
    if logits.shape[0] != ids.shape[0] or ids.shape[0] < 2:
        raise DseError(
            f"--objective perplexity needs a causal LM (token ids [1, S] -> logits [1, S, V]); "
            f"the output has {logits.shape[0]} positions for {ids.shape[0]} tokens"
        )
    predicted = logits[:-1]
    peak = predicted.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(predicted - peak).sum(axis=1)) + peak[:, 0]
    return float(np.exp((log_norm - predicted[np.arange(len(predicted)), ids[1:]]).mean()))
