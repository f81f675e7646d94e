"""How far one decoder's text agrees with a reference decoder's: token match and teacher-forced perplexity.

Issue 18's sparse decode check compares greedy generation at keep < 1 against dense decoding
(keep 1.0) from the same prompt:

* `token_match`: position by position over the generated tokens, the fraction equal to the
  reference's, the length of the common prefix (up to the first divergence) and the fraction
  equal after it (once the texts diverge, later positions compare continuations of different
  texts, so this part says little);
* `teacher_forced_nll`: the reference's tokens fed to a decoder one by one (`GenerationSession.force`),
  the negative log-likelihood it gives each next reference token; `perplexity` is ``exp(mean NLL)``.
  Scored by the reference decoder itself this is the reference's own perplexity of its text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sofa_compiler.generation.contract import GenerationError
from sofa_compiler.generation.session import GenerationSession, StepReport


@dataclass(frozen=True)
class TokenMatch:
    """Agreement of a token sequence with a reference of the same length."""

    tokens: int
    equal: int
    """Positions where both hold the same token."""
    common_prefix: int
    """Tokens before the first divergence (all of them if none)."""
    equal_after: int
    """Equal positions after the first divergence (0 if none)."""

    @property
    def rate(self) -> float:
        """Fraction of positions equal."""
        return self.equal / self.tokens if self.tokens else 1.0

    @property
    def rate_after(self) -> float:
        """Fraction of the positions after the first divergence that are equal (1.0 where there is none)."""
        rest = self.tokens - self.common_prefix - 1
        return self.equal_after / rest if rest > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate, "rate_after": self.rate_after}


def token_match(reference: np.ndarray, tokens: np.ndarray) -> TokenMatch:
    """`TokenMatch` of one sample's `tokens` against `reference` (1-D, equal lengths)."""
    reference, tokens = np.asarray(reference).ravel(), np.asarray(tokens).ravel()
    if reference.shape != tokens.shape:
        raise GenerationError(f"cannot compare {len(tokens)} tokens with a reference of {len(reference)}")
    same = reference == tokens
    diverged = np.flatnonzero(~same)
    prefix = int(diverged[0]) if len(diverged) else len(same)
    after = int(same[prefix + 1 :].sum()) if len(diverged) else 0
    return TokenMatch(len(same), int(same.sum()), prefix, after)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def token_nll(logits: np.ndarray, token: int) -> float:
    """Negative log-likelihood of `token` under one row of logits."""
    return float(-log_softmax(logits)[token])


def perplexity(nll: list[float]) -> float:
    return math.exp(sum(nll) / len(nll)) if nll else 1.0


def teacher_forced_nll(
    session: GenerationSession,
    prompt: np.ndarray,
    reference: np.ndarray,
    on_step: Callable[[StepReport], None] | None = None,
) -> tuple[list[float], list[StepReport]]:
    """The NLL `session`'s decoder gives each token of `reference` (sample 0's, 1-D), fed its predecessors.

    Prefill on `prompt` scores ``reference[0]``; each decode step is fed ``reference[i]`` and
    scores ``reference[i + 1]``. Returns the NLLs and the runs' reports.
    """
    reference = np.asarray(reference, np.int64).ravel()
    if session.pair.samples != 1:
        raise GenerationError("teacher forcing scores one sample: use a decode graph with M = 1")
    reports = [session.prefill(prompt)]
    nll = []
    for index, token in enumerate(reference.tolist()):
        if index:
            reports.append(session.step())
        if on_step is not None:
            on_step(reports[-1])
        assert session.logits is not None
        nll.append(token_nll(session.logits[0], token))
        session.force(np.array([token]))
    return nll, reports
