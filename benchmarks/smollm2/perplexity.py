"""Perplexity of an ONNX causal LM (input_ids [1, S] -> logits [1, S, V]): onnxruntime against SOFA.

The reference is onnxruntime running the whole exported model dense. SOFA's
figure comes from `sofa_compiler.compile(model, keep=K).run(...)`: every
attention the front end claims runs on the simulated accelerator, the rest in
onnxruntime host partitions. Perplexity is exp of the mean negative
log-likelihood of tokens 2..S given the logits at positions 1..S-1. Every
figure is measured in the calling process; nothing is read from a file.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from dialects import numerics
from sofa_compiler.driver import CompiledModel, compile_model
from sofa_compiler.frontend.placement import Placement
from sofa_compiler.generation.agreement import log_softmax
from sofa_compiler.tuning import Tuning

Log = Callable[[str], None]


def perplexity(logits: np.ndarray, input_ids: np.ndarray) -> float:
    """exp(mean NLL) of input_ids[1:] under logits[:-1] (batch 1), in float64."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1, logits.shape[-1])
    ids = np.asarray(input_ids).reshape(-1)
    if logits.shape[0] != ids.shape[0] or ids.shape[0] < 2:
        raise ValueError(f"logits for {logits.shape[0]} positions do not fit {ids.shape[0]} tokens (need >= 2)")
    log_probs = log_softmax(logits[:-1])
    nll = -log_probs[np.arange(log_probs.shape[0]), ids[1:]]
    return float(np.exp(nll.mean()))


@dataclass(frozen=True)
class Reference:
    """onnxruntime on the whole model, dense."""

    perplexity: float
    run_s: float


@dataclass(frozen=True)
class KeepPoint:
    """SOFA at one keep ratio."""

    keep: float
    perplexity: float
    ratio: float  # perplexity / onnxruntime's
    compile_s: float
    run_s: float
    attention_nodes: int
    on_accelerator: int  # attention nodes that became kernel calls
    host_reasons: dict[str, int]  # why attention nodes run on the host, with counts
    compile_warnings: dict[str, int]  # warnings the compiler raised (node names elided), with counts
    kernel_calls: int  # simulated kernel calls in the run
    cycles: int  # simulated cycles, summed over the kernel calls (0 when none ran)
    setting: str = "uniform"  # "uniform" (one keep for every layer) or the tuning file that set each layer
    far: float = 1.0  # budgeted SADS's far-tile ratio (1.0: plain SADS)
    tile: int | None = None  # the uniform KV tile Bc asked for (None: the cost model's choice or the tuning's)
    kept: float | None = None  # true share of the valid (causal) keys SADS keeps, mean over the kernels


@dataclass
class Sweep:
    model: str
    tokens: int
    reference: Reference
    points: list[KeepPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference(model: str | Path, input_ids: np.ndarray) -> Reference:
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    start = time.perf_counter()
    (logits,) = session.run(None, {name: input_ids})[:1]
    return Reference(perplexity(logits, input_ids), time.perf_counter() - start)


class KernelProgress:
    """A `RunProgress` that reports each kernel call on `log` as it starts (one line per call)."""

    def __init__(self, total: int, log: Log, label: str) -> None:
        self.total, self.log, self.label = total, log, label
        self.started = 0
        self.start = time.perf_counter()

    def kernel(self, name: str) -> None:
        self.started += 1
        elapsed = time.perf_counter() - self.start
        self.log(f"  {self.label}: kernel call {self.started}/{self.total} ({name}) after {elapsed:.0f} s")

    def functional(self, executed: int, fraction: float) -> None:
        pass  # one line per kernel call is enough for a log


NODE_NAME = re.compile(r"node '[^']*'")
"""Node names in warnings, elided so that one warning per layer groups into one line with a count."""
UNPAIRED = "placed on the accelerator by the importer, but the compiled model has no kernel call for it"


def _host_reason(placement: Placement) -> str:
    return placement.host_reason if placement.host_reason is not None else UNPAIRED


@dataclass(frozen=True)
class Selecting:
    """How SADS selects in a run: budgeted SADS's ``far`` (1.0: plain SADS) and a uniform KV tile (None: chosen)."""

    far: float = 1.0
    tile: int | None = None


@lru_cache(maxsize=64)
def kept_share(seq: int, tile: int, m: int, far: float) -> float:
    """The share of a causal S x S attention's valid keys that (budgeted) SADS keeps at Bc = tile, m keys a tile.

    Without a sphere clip (the benchmark sets none) the count depends on the row lengths alone, so
    random scores give the exact figure: m/Bc is the nominal keep, this is what the selection keeps.
    """
    valid = np.tri(seq, dtype=bool)
    scores = np.random.default_rng(0).standard_normal((seq, seq))
    chosen = numerics.sads(scores, valid, tile, m / tile, np.inf, far)
    return float(np.count_nonzero(chosen != numerics.NO_INDEX) / np.count_nonzero(valid))


def compiled_kept_share(compiled: CompiledModel, seq: int, far: float) -> float | None:
    """Mean `kept_share` over the compiled kernels (None when no kernel records its tiling)."""
    shares = [kept_share(seq, t.bc, t.m, far) for t in compiled.tilings.values()]
    return float(np.mean(shares)) if shares else None


def _compile(
    model: str | Path, keep: float, tuning: Tuning | None = None, selecting: Selecting = Selecting()
) -> tuple[CompiledModel, float, Counter[str]]:
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = compile_model(model, keep=keep, tile=selecting.tile, tuning=tuning, far=selecting.far)
    return compiled, time.perf_counter() - start, Counter(NODE_NAME.sub("node <name>", str(w.message)) for w in caught)


def mean_keep(tuning: Tuning, layers: int, default: float = 1.0) -> float:
    """The mean keep ratio a tuning gives `layers` attention layers (layers it omits take `default`)."""
    keeps = [
        entry.keep if (entry := tuning.layers.get(i)) is not None and entry.keep is not None else default
        for i in range(layers)
    ]
    return sum(keeps) / max(1, layers)


def measure(
    model: str | Path,
    input_ids: np.ndarray,
    keep: float,
    reference_ppl: float,
    log: Log | None = None,
    tuning: tuple[str, Tuning] | None = None,
    selecting: Selecting = Selecting(),
) -> KeepPoint:
    """Compile `model` at `keep` (or with a named per-layer tuning), run it on `input_ids`: the perplexity."""
    say = log or (lambda _: None)
    setting, layers = tuning if tuning is not None else ("uniform", None)
    if layers is not None:
        selecting = replace(selecting, tile=None)  # the tuning sets each layer's tile
    compiled, compile_s, caught = _compile(model, keep, layers, selecting)
    if layers is not None:
        keep = round(mean_keep(layers, len(compiled.placements), keep), 4)
    say(f"  keep {keep}: compiled in {compile_s:.1f} s; running {len(compiled.programs)} kernels")
    placements = compiled.placements
    # A placement paired with no kernel call did not reach the accelerator, whatever the importer recorded.
    on_accelerator = sum(p.host_reason is None and p.kernel is not None for p in placements)
    progress = KernelProgress(on_accelerator, say, f"keep {keep}")
    name = compiled.input_names()[0]
    start = time.perf_counter()
    outputs, report = compiled.run({name: input_ids}, progress)
    run_s = time.perf_counter() - start
    ppl = perplexity(next(iter(outputs.values())), input_ids)
    say(f"  keep {keep}: ran in {run_s:.1f} s, perplexity {ppl:.4f}")
    return KeepPoint(
        keep=keep,
        perplexity=ppl,
        ratio=ppl / reference_ppl,
        compile_s=compile_s,
        run_s=run_s,
        attention_nodes=len(placements),
        on_accelerator=on_accelerator,
        host_reasons=dict(
            Counter(_host_reason(p) for p in placements if p.host_reason is not None or p.kernel is None)
        ),
        compile_warnings=dict(caught),
        kernel_calls=len(report.kernels),
        cycles=report.total.total_cycles if report.total is not None else 0,
        setting=setting,
        far=selecting.far,
        tile=selecting.tile,
        kept=compiled_kept_share(compiled, int(input_ids.shape[-1]), selecting.far),
    )


def sweep(
    model: str | Path,
    input_ids: np.ndarray,
    keeps: Sequence[float],
    log: Log | None = None,
    tunings: Sequence[tuple[str, Tuning]] = (),
    selectings: Sequence[Selecting] = (Selecting(),),
) -> Sweep:
    """onnxruntime's dense perplexity, then SOFA at each uniform keep and with each named per-layer tuning,
    each under every selection of `selectings` (plain SADS by default)."""
    say = log or (lambda _: None)
    say(f"onnxruntime: dense reference on {input_ids.shape[1]} tokens")
    result = Sweep(str(model), int(input_ids.shape[1]), reference(model, input_ids))
    say(f"onnxruntime: perplexity {result.reference.perplexity:.4f} ({result.reference.run_s:.1f} s)")
    dense = result.reference.perplexity
    for selecting in selectings:
        say(f"selection: far {selecting.far:g}, tile {selecting.tile or 'chosen'}")
        for keep in keeps:
            result.points.append(measure(model, input_ids, keep, dense, log, None, selecting))
        for tuning in tunings:
            say(f"tuning {tuning[0]}")
            result.points.append(measure(model, input_ids, 1.0, dense, log, tuning, selecting))
    return result


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def render(result: Sweep, text: str) -> str:
    """The sweep as text; every figure was measured in the run that produced `result`."""
    ref = result.reference
    lines = [
        f"model: {result.model}",
        f"text: the first {result.tokens} tokens of {text} ({result.tokens - 1} predicted tokens)",
        "every figure below was measured in this run",
        f"onnxruntime (whole model, dense): perplexity {ref.perplexity:.4f}, run {ref.run_s:.2f} s",
        "",
        "| keep (mean) | valid keys kept | per-layer setting | SADS | perplexity | ratio to dense | vs onnxruntime"
        " | attention on accelerator | compile s | run s | simulated cycles |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in result.points:
        kept = "-" if p.kept is None else f"{p.kept:.3f}"
        sads = ("plain" if p.far == 1.0 else f"budgeted, far {p.far:g}") + (f", Bc {p.tile}" if p.tile else "")
        lines.append(
            f"| {p.keep} | {kept} | {p.setting} | {sads} | {p.perplexity:.4f} | {p.ratio:.4f}"
            f" | {100 * (p.ratio - 1):+.4f}%"
            f" | {p.on_accelerator}/{p.attention_nodes} | {p.compile_s:.1f} | {p.run_s:.1f} | {p.cycles:,} |"
        )
    for p in result.points:
        for reason, count in sorted(p.host_reasons.items()):
            lines.append(f"keep {p.keep}: {count} attention node(s) on the host: {reason}")
        for message, count in sorted(p.compile_warnings.items()):
            lines.append(f"keep {p.keep}: {count} warning(s): {message}")
    dense = next((p for p in result.points if p.keep == 1.0 and p.setting == "uniform" and p.far == 1.0), None)
    if dense is not None:
        verdict = "yes" if abs(dense.ratio - 1) <= 1e-3 else "NO"
        lines.append(
            f"keep 1.0 equals onnxruntime within 0.1%: {verdict} (difference {100 * abs(dense.ratio - 1):.4f}%)"
        )
    return "\n".join(lines)
