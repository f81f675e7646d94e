"""A generation session: prefill once, then decode steps whose KV cache stays resident in DRAM.

    pair = GraphPair(compile_model(prefill_onnx, keep=1.0), compile_model(decode_onnx, keep=1.0))
    session = GenerationSession(pair, Sampling())            # greedy
    first = session.prefill(prompt_ids)                      # StepReport of the prompt
    while session.can_step:
        report = session.step()                              # one token per sample
    session.tokens                                           # [M, generated] int64

Every attention runs on the simulator (the graphs' other ops on the host); each `StepReport`
gives that step's simulated cycles, its latency at the target clock, the kernels' DRAM
traffic, the host's writes into the resident images and the energy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from passes.kernel_interface import Symbol
from sofa_compiler.driver import CompiledModel, CompileError
from sofa_compiler.generation.contract import (
    CACHE_LENGTH,
    INPUT_IDS,
    LOGITS,
    GenerationError,
    GraphPair,
    past_key,
    past_value,
    present_key,
    present_value,
)
from sofa_compiler.generation.resident import ResidentRunner
from sofa_compiler.sim.progress import RunProgress
from sofa_compiler.sim.report import combine_reports


@dataclass(frozen=True)
class Sampling:
    """Greedy decoding (temperature 0), or softmax sampling at `temperature` from a seeded generator."""

    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.temperature >= 0 and np.isfinite(self.temperature)):
            raise GenerationError(f"temperature must be a finite number >= 0, got {self.temperature}")


@dataclass(frozen=True)
class StepReport:
    """One graph run of a session: the prefill (step 0) or a decode step, and the tokens it chose."""

    step: int
    tokens: list[int]
    """The token chosen for each sample."""
    cache_length: int
    """Tokens in the cache after this step."""
    kernels: int
    cycles: int
    latency_us: float
    """Simulated time of the step's kernels at the target clock."""
    dram_read_bytes: int
    dram_write_bytes: int
    host_write_bytes: int
    """Bytes the host wrote into the kernels' resident DRAM images (the rows that changed)."""
    energy_pj: float
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GenerationSession:
    """Holds the graphs, the KV cache, the resident DRAM images and the tokens across steps."""

    def __init__(
        self,
        pair: GraphPair,
        sampling: Sampling,
        progress: RunProgress | None = None,
        max_instructions: int | None = None,
    ):
        pair.check()
        self.pair = pair
        self.sampling = sampling
        self.random = np.random.default_rng(sampling.seed)
        extra = {} if max_instructions is None else {"max_instructions": max_instructions}
        # One runner per graph: each keeps its own call sites' DRAM images (its kernels, its layouts).
        self.runners = {
            phase: ResidentRunner(model.programs, model.config, progress, **extra)
            for phase, model in (("prefill", pair.prefill), ("decode", pair.decode))
        }
        self.cache: dict[str, np.ndarray] = {}
        self.length = 0
        self.generated: list[np.ndarray] = []
        self.logits: np.ndarray | None = None
        """The last run's next-token logits ``[M, V]`` (float64), from which its tokens were chosen."""
        self.steps = 0

    @property
    def tokens(self) -> np.ndarray:
        """The generated tokens so far, ``[M, count]``."""
        if not self.generated:
            return np.zeros((self.pair.samples, 0), np.int64)
        return np.stack(self.generated, axis=1)

    @property
    def can_step(self) -> bool:
        return bool(self.generated) and self.length < self.pair.capacity

    def prefill(self, prompt: np.ndarray) -> StepReport:
        """Run the prompt (``[S]`` or ``[1, S]`` token ids) and choose each sample's first token."""
        prompt = np.asarray(prompt)
        if prompt.ndim == 1:
            prompt = prompt[None, :]
        length = self.pair.prompt_length
        if prompt.shape != (1, length) or not np.issubdtype(prompt.dtype, np.integer):
            raise GenerationError(
                f"the prompt must be {length} integer token ids (the prefill graph's length), "
                f"got {prompt.dtype} of shape {list(prompt.shape)}"
            )
        if self.generated:
            raise GenerationError("this session has already run its prefill")
        outputs, report = self._run(self.pair.prefill, "prefill", {INPUT_IDS: prompt.astype(np.int64)})
        samples, capacity = self.pair.samples, self.pair.capacity
        for layer in range(self.pair.layers):
            for present, past in ((present_key(layer), past_key(layer)), (present_value(layer), past_value(layer))):
                prompt_cache = outputs[present]
                cache = np.zeros((samples, prompt_cache.shape[1], capacity, prompt_cache.shape[3]), prompt_cache.dtype)
                cache[:, :, :length] = prompt_cache
                self.cache[past] = cache
        self.length = length
        logits = np.repeat(outputs[LOGITS][:, -1], samples, axis=0)
        return self._finish(report, logits)

    def step(self) -> StepReport:
        """One decode step: every sample's last token in, its next token out; the cache grows by one row."""
        if not self.generated:
            raise GenerationError("run the prefill before a decode step")
        if self.length >= self.pair.capacity:
            raise GenerationError(f"the KV cache is full ({self.pair.capacity} tokens)")
        samples = self.pair.samples
        inputs = {
            INPUT_IDS: self.generated[-1][:, None].astype(np.int64),
            CACHE_LENGTH: np.full(samples, self.length, np.int64),
            **self.cache,
        }
        outputs, report = self._run(self.pair.decode, "decode", inputs)
        # The next step's cache is what the decode kernels' resident images hold (call site i is
        # layer i); the graph's present_* outputs only where a kernel keeps no K/V (it generates them).
        runner = self.runners["decode"]
        for layer in range(self.pair.layers):
            for symbol, present, past in (
                (Symbol.K, present_key(layer), past_key(layer)),
                (Symbol.V, present_value(layer), past_value(layer)),
            ):
                resident = runner.cache(layer, symbol, outputs[present].shape)
                self.cache[past] = outputs[present] if resident is None else resident
        self.length += 1
        return self._finish(report, outputs[LOGITS][:, -1])

    def force(self, tokens: np.ndarray) -> None:
        """Teacher forcing: `tokens` (one per sample) replace the ones the last run chose; the next step feeds them."""
        tokens = np.asarray(tokens)
        if not self.generated:
            raise GenerationError("run the prefill before forcing a token")
        if tokens.shape != (self.pair.samples,) or not np.issubdtype(tokens.dtype, np.integer):
            shape = list(tokens.shape)
            raise GenerationError(f"forced tokens must be {self.pair.samples} integer ids, got shape {shape}")
        self.generated[-1] = tokens.astype(np.int64)

    def _run(self, model: CompiledModel, phase: str, inputs: dict[str, np.ndarray]) -> tuple[dict, Callable]:
        runner = self.runners[phase]
        runner.start_run()
        start = time.perf_counter()
        try:
            outputs, _ = model.run(inputs, runner=runner)
        except CompileError as error:
            raise GenerationError(str(error)) from None
        wall = time.perf_counter() - start

        def report(tokens: list[int]) -> StepReport:
            runs = [run.report for run in runner.runs]
            total = combine_reports(runs) if runs else None
            return StepReport(
                step=self.steps,
                tokens=tokens,
                cache_length=self.length,
                kernels=len(runs),
                cycles=total.total_cycles if total else 0,
                latency_us=total.time_us if total else 0.0,
                dram_read_bytes=total.dram_read_bytes if total else 0,
                dram_write_bytes=total.dram_write_bytes if total else 0,
                host_write_bytes=sum(runner.written_bytes),
                energy_pj=total.total_energy_pj if total else 0.0,
                wall_s=wall,
            )

        return outputs, report

    def _finish(self, report: Callable[[list[int]], StepReport], logits: np.ndarray) -> StepReport:
        self.logits = np.asarray(logits, np.float64)
        tokens = self._choose(self.logits)
        self.generated.append(tokens)
        result = report([int(t) for t in tokens])
        self.steps += 1
        return result

    def _choose(self, logits: np.ndarray) -> np.ndarray:
        """One token per row of ``[M, V]`` logits: the argmax, or a draw at the sampling temperature."""
        if self.sampling.temperature == 0:
            return np.argmax(logits, axis=-1).astype(np.int64)
        scaled = logits / self.sampling.temperature
        weights = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        return np.array([self.random.choice(len(row), p=row) for row in weights], np.int64)


def generate(
    session: GenerationSession,
    prompt: np.ndarray,
    new_tokens: int,
    on_step: Callable[[StepReport], None] | None = None,
) -> list[StepReport]:
    """Prefill and `new_tokens - 1` decode steps: `new_tokens` tokens per sample; each step's report."""
    if new_tokens < 1:
        raise GenerationError(f"the number of new tokens must be at least 1, got {new_tokens}")
    room = session.pair.capacity - session.pair.prompt_length + 1
    if new_tokens > room:
        raise GenerationError(
            f"{new_tokens} new tokens do not fit: the decode cache holds {session.pair.capacity} tokens, "
            f"the prompt takes {session.pair.prompt_length} (at most {room} new tokens)"
        )
    reports = [session.prefill(prompt)]
    if on_step is not None:
        on_step(reports[-1])
    while len(reports) < new_tokens:
        reports.append(session.step())
        if on_step is not None:
            on_step(reports[-1])
    return reports
