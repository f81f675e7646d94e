"""What a search tunes: attention layers, their calibration inputs, and one layer's evaluation.

Heads are independent and run one after another on the accelerator, so a
layer's cycles and energy are those of the simulated heads times
``heads / simulated_heads`` (as the evaluation report does,
`sofa_compiler/workloads.py`); the error proxy is measured on the
simulated heads only. Each layer is evaluated alone on its own calibration
inputs, so a configuration's figures are sums over layers and one layer's
result can be cached and reused by every trial that picks the same
(tile, keep) for it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from xdsl.utils.exceptions import DiagnosticException

from dialects.sofa import TargetAttr
from passes.tile_plan import AttentionShape, PlanError, plan_sram
from sofa_compiler.mask_workloads import MaskWorkload, exact_masked_attention, masked_attention_model
from sofa_compiler.sim.config import HardwareConfig
from sofa_compiler.workloads import WORKLOADS, attention_model, run_kernels

INPUT_NAMES = ("q", "k", "v")
PATTERNS = ("broad", "local", "global")
"""Synthetic attention patterns, cycled over the layers (see `synthetic_inputs`)."""


class DseError(Exception):
    """Bad DSE options or inputs; the message says which."""


@dataclass(frozen=True)
class Layer:
    """One attention layer's shape (batch 1)."""

    heads: int
    seq: int
    depth: int
    causal: bool = False
    mask: MaskWorkload | None = field(default=None, repr=False)
    """A constant mask pattern (``[seq, seq]``, built on demand); None: unmasked. Out of the repr, so the
    fingerprints of unmasked problems stay as they were; `Problem.fingerprint` adds it where present."""

    def shape(self, heads: int, keep: float) -> AttentionShape:
        return AttentionShape(1, heads, heads, self.seq, self.seq, self.depth, self.depth, keep, self.causal)


@dataclass(frozen=True)
class LayerResult:
    """One layer at one (tile, keep): error against dense, and simulated figures scaled to all heads."""

    error: float
    cycles: float
    energy_pj: float
    wall_s: float = 0.0
    failure: str = ""
    """Why the compile failed (a misfit the pre-check did not catch); the figures are then meaningless."""


@dataclass
class Problem:
    """Layers to tune, on one target, with calibration inputs of `simulated_heads` heads per layer."""

    name: str
    layers: list[Layer]
    config: HardwareConfig
    inputs: list[dict[str, np.ndarray]]
    simulated_heads: int
    radius: float | None = None
    """SADS sphere radius in logits; None: no clip."""
    references: list[np.ndarray] = field(default_factory=list)
    pruned: Mapping[tuple[int, float], str] = field(default_factory=dict)
    """(tile, keep) pairs a first stage ruled out for every layer (the mask search's analytical model),
    with the reason: told to the search as pruned, never simulated."""

    def __post_init__(self) -> None:
        if not self.references:
            self.references = [dense_attention(layer, values) for layer, values in zip(self.layers, self.inputs)]

    def fingerprint(self) -> str:
        """A hash of everything a layer result depends on (stored with the study, checked on resume)."""
        digest = hashlib.sha256()
        digest.update(self.config.config_hash().encode())
        digest.update(repr((self.layers, self.simulated_heads, self.radius)).encode())
        if masks := [layer.mask for layer in self.layers if layer.mask is not None]:
            digest.update(repr((masks, sorted(self.pruned))).encode())
        for values in self.inputs:
            for name in INPUT_NAMES:
                digest.update(np.ascontiguousarray(values[name]).tobytes())
        return digest.hexdigest()[:16]

    def fit_problem(self, index: int, tile: int, keep: float) -> str | None:
        """Why (tile, keep) cannot run layer `index` on the target, or None (checked before simulating)."""
        layer = self.layers[index]
        if reason := self.pruned.get((tile, keep)):
            return f"layer {index}: {reason}"
        if tile > max(16, layer.seq):
            return f"layer {index}: tile {tile} exceeds the layer's {layer.seq} keys"
        try:
            plan_sram(TargetAttr(self.config.as_target_dict()), layer.shape(layer.heads, keep), tile)
        except PlanError as error:
            return f"layer {index}: tile {tile} does not fit the target's SRAM: {error}"
        return None


def dense_attention(layer: Layer, values: dict[str, np.ndarray]) -> np.ndarray:
    """Exact softmax attention in float64: the reference the error proxy compares against (under the layer's
    mask, if any)."""
    if layer.mask is not None:
        mask = layer.mask.mask()
        heads = values["q"].shape[1]
        return np.stack([exact_masked_attention(*(values[n][0, h] for n in INPUT_NAMES), mask) for h in range(heads)])[
            None
        ]
    q, k, v = (values[name].astype(np.float64) for name in INPUT_NAMES)
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(layer.depth)
    if layer.causal:
        logits = np.where(np.tril(np.ones(logits.shape[-2:], bool)), logits, -np.inf)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights @ v


def synthetic_inputs(layer: Layer, index: int, heads: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded calibration inputs with a BERT-like attention pattern per layer (cycled by index).

    Trained BERT heads attend broadly, to nearby tokens, or to a few special
    tokens ([CLS]/[SEP]); random Q/K give only the first. So layer ``i``
    gets ``PATTERNS[i % 3]``: ``broad`` (random Q/K), ``local`` (a shared
    smooth positional code in Q and K, so neighbours score high) or
    ``global`` (a few key positions aligned with every query). These are
    synthetic stand-ins; pass real activations with ``--calibration``.
    """
    rng = np.random.default_rng([seed, index])
    shape = (1, heads, layer.seq, layer.depth)
    q, k, v = (rng.standard_normal(shape) for _ in INPUT_NAMES)
    pattern = PATTERNS[index % len(PATTERNS)]
    strength = 1.0 + 0.5 * (index // len(PATTERNS))  # deeper layers are sharper
    if pattern == "broad":
        q *= strength  # unit-variance logits (times the depth factor)
    elif pattern == "local":
        width = 8
        codes = rng.standard_normal((layer.seq + width, layer.depth))
        codes = np.cumsum(codes, axis=0)
        codes = (codes[width:] - codes[:-width]) / np.sqrt(width)
        codes /= np.linalg.norm(codes, axis=1, keepdims=True) / np.sqrt(layer.depth)
        q = 0.4 * q + 0.9 * strength * codes
        k = 0.4 * k + 0.9 * strength * codes
    else:
        anchor = rng.standard_normal(layer.depth)
        anchor /= np.linalg.norm(anchor) / np.sqrt(layer.depth)
        special = rng.choice(layer.seq, size=max(2, layer.seq // 128), replace=False)
        q = 0.7 * q + 0.6 * strength * anchor
        k[..., special, :] += 0.8 * strength * anchor
    return {name: array.astype(np.float32) for name, array in zip(INPUT_NAMES, (q, k, v))}


def load_calibration(path: str | Path, layers: list[Layer], heads: int) -> list[dict[str, np.ndarray]]:
    """Calibration inputs from an .npz: ``layer<i>.q/k/v`` per layer, or ``q/k/v`` shared by all layers.

    Arrays are ``[1, H, S, d]`` (or ``[H, S, d]``); the first ``heads`` heads are used.
    """
    try:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise DseError(f"{path}: cannot read calibration inputs: {error}") from None
    result = []
    for index, layer in enumerate(layers):
        values = {}
        for name in INPUT_NAMES:
            key = f"layer{index}.{name}" if f"layer{index}.{name}" in arrays else name
            if key not in arrays:
                raise DseError(f"{path}: no '{name}' or 'layer{index}.{name}' array for layer {index}")
            array = np.asarray(arrays[key], np.float32)
            array = array[None] if array.ndim == 3 else array
            expected = (1, layer.heads, layer.seq, layer.depth)
            if array.ndim != 4 or array.shape[0] != 1 or array.shape[2:] != expected[2:] or array.shape[1] < heads:
                raise DseError(f"{path}: '{key}' has shape {list(array.shape)}, layer {index} needs {list(expected)}")
            values[name] = np.ascontiguousarray(array[:, :heads])
        result.append(values)
    return result


def workload_problem(
    workload: str,
    config: HardwareConfig,
    layers: int | None = None,
    heads: int = 1,
    seed: int = 0,
    calibration: str | Path | None = None,
    radius: float | None = None,
) -> Problem:
    """A model of `layers` copies of a benchmark workload's attention layer (e.g. BERT-base: 12 x S=512)."""
    known = {w.name: w for w in WORKLOADS}
    if workload not in known:
        raise DseError(f"unknown workload '{workload}' (choose from {', '.join(known)})")
    spec = known[workload]
    count = layers or 1
    if count < 1:
        raise DseError(f"--layers must be at least 1, got {count}")
    if not 1 <= heads <= spec.heads:
        raise DseError(f"--heads must be between 1 and {spec.heads} for {workload}, got {heads}")
    shape = Layer(spec.heads, spec.seq, spec.depth, spec.causal)
    stack = [shape] * count
    if calibration is not None:
        inputs = load_calibration(calibration, stack, heads)
    else:
        inputs = [synthetic_inputs(shape, index, heads, seed) for index in range(count)]
    return Problem(f"{workload}x{count}", stack, config, inputs, heads, radius)


def evaluate_layer(problem: Problem, index: int, tile: int | None, keep: float) -> LayerResult:
    """Compile and simulate layer `index` at (tile, keep); error is relative Frobenius vs dense attention.

    Runs on a Dask worker. BLAS is pinned to one thread so results are
    bit-identical whatever the worker count (and workers do not oversubscribe cores).
    """
    from sofa_compiler.driver import CompileError, compile_model

    layer = problem.layers[index]
    heads = problem.simulated_heads
    start = time.perf_counter()
    with threadpool_limits(1):
        if layer.mask is None:
            model = attention_model(heads, layer.seq, layer.depth, layer.causal)
        else:
            model = masked_attention_model(heads, layer.seq, layer.depth, layer.mask.mask())
        try:
            compiled = compile_model(model, problem.config, keep=keep, tile=tile, radius=problem.radius)
        except (CompileError, DiagnosticException) as error:
            return LayerResult(math.nan, math.nan, math.nan, time.perf_counter() - start, f"layer {index}: {error}")
        outputs, runs = run_kernels(compiled, problem.inputs[index])
    output = next(iter(outputs.values())).astype(np.float64)
    reference = problem.references[index]
    error = float(np.linalg.norm(output - reference) / max(np.linalg.norm(reference), 1e-30))
    scale = layer.heads / heads
    cycles = sum(run.report.total_cycles for run in runs) * scale
    energy = sum(run.report.total_energy_pj for run in runs) * scale
    return LayerResult(error, float(cycles), float(energy), time.perf_counter() - start)
