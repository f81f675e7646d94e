"""Sparse decode in generation (issue 18): a small random-weight Llama whose cache spans several 64-key tiles.

At keep < 1 the decode graph's attentions run on the sparse decode kernel (the predictor's key
codes beside the resident cache); at keep 1.0 the sparse kernel gives dense decoding's tokens;
at keep 0.25 it reads fewer DRAM bytes per token, and the agreement with dense decoding
(`generation.agreement`) is measured, not assumed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from benchmarks.smollm2.cached_graphs import LlamaShape, build, random_weights
from dialects.sofa import SPARSE_DECODE
from sofa_compiler.driver import CompiledModel, DecodeOptions, compile_model
from sofa_compiler.generation import GenerationError, GenerationSession, GraphPair, Sampling, generate
from sofa_compiler.generation.agreement import perplexity, teacher_forced_nll, token_match, token_nll
from sofa_compiler.runtime import is_decode_kernel, is_sparse_decode_kernel

SHAPE = LlamaShape(hidden=32, layers=2, heads=4, kv_heads=2, head_dim=8, intermediate=64, vocab=50)
PROMPT, CAPACITY, TOKENS = 192, 200, 6
PROMPT_IDS = np.random.default_rng(2).integers(0, SHAPE.vocab, PROMPT)


@pytest.fixture(scope="module")
def models() -> dict[str, CompiledModel]:
    weights = random_weights(SHAPE, seed=1)
    prefill = build(weights, SHAPE, prompt=PROMPT, capacity=CAPACITY, samples=1, decode=False)
    decode = build(weights, SHAPE, prompt=PROMPT, capacity=CAPACITY, samples=1, decode=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "prefill": compile_model(prefill, keep=1.0),
            "dense": compile_model(decode, keep=1.0, decode=DecodeOptions(enabled=True)),
            "sparse 1.0": compile_model(decode, keep=1.0, decode=DecodeOptions(enabled=True, lowering=SPARSE_DECODE)),
            "sparse 0.25": compile_model(decode, keep=0.25, decode=DecodeOptions(enabled=True)),
        }


def greedy(models: dict[str, CompiledModel], name: str) -> tuple[GenerationSession, list, list[float]]:
    session = GenerationSession(GraphPair(models["prefill"], models[name]), Sampling())
    nll: list[float] = []
    reports = generate(session, PROMPT_IDS, TOKENS, lambda r: nll.append(token_nll(session.logits[0], r.tokens[0])))
    return session, reports, nll


def test_keep_below_one_runs_the_sparse_decode_kernel(models: dict[str, CompiledModel]) -> None:
    for name, sparse in (("dense", False), ("sparse 1.0", True), ("sparse 0.25", True)):
        programs = models[name].programs.values()
        assert len(programs) == SHAPE.layers
        assert all(is_decode_kernel(p) and is_sparse_decode_kernel(p) == sparse for p in programs)
    assert [p.host_reason for p in models["sparse 0.25"].placements] == [None] * SHAPE.layers


def test_sparse_kernel_at_keep_one_gives_dense_tokens(models: dict[str, CompiledModel]) -> None:
    dense, _, dense_nll = greedy(models, "dense")
    sparse, _, sparse_nll = greedy(models, "sparse 1.0")
    assert sparse.tokens.tolist() == dense.tokens.tolist()
    assert token_match(dense.tokens, sparse.tokens).rate == 1.0
    assert perplexity(sparse_nll) == pytest.approx(perplexity(dense_nll), rel=1e-3)


def test_teacher_forcing_the_own_text_reproduces_its_likelihood(models: dict[str, CompiledModel]) -> None:
    dense, _, generated_nll = greedy(models, "dense")
    forced = GenerationSession(GraphPair(models["prefill"], models["dense"]), Sampling())
    forced_nll, reports = teacher_forced_nll(forced, PROMPT_IDS, dense.tokens[0])
    assert forced_nll == pytest.approx(generated_nll, abs=1e-9)
    assert len(reports) == TOKENS
    assert forced.tokens.tolist() == dense.tokens.tolist()


def test_keep_quarter_reads_less_and_its_agreement_is_measured(models: dict[str, CompiledModel]) -> None:
    dense, dense_reports, _ = greedy(models, "dense")
    sparse, sparse_reports, _ = greedy(models, "sparse 0.25")
    # Decode steps: the sparse kernel reads codes and a quarter of each tile's rows (the group's union).
    for dense_step, sparse_step in zip(dense_reports[1:], sparse_reports[1:], strict=True):
        assert sparse_step.dram_read_bytes < 0.8 * dense_step.dram_read_bytes
    match = token_match(dense.tokens, sparse.tokens)
    assert match.tokens == TOKENS
    assert match.common_prefix >= 1
    forced = GenerationSession(GraphPair(models["prefill"], models["sparse 0.25"]), Sampling())
    nll, _ = teacher_forced_nll(forced, PROMPT_IDS, dense.tokens[0])
    assert len(nll) == TOKENS
    assert np.isfinite(perplexity(nll))


def test_token_match_counts_before_and_after_the_first_divergence() -> None:
    match = token_match(np.array([1, 2, 3, 4, 5, 6]), np.array([1, 2, 9, 4, 0, 6]))
    assert (match.equal, match.common_prefix, match.equal_after) == (4, 2, 2)
    assert match.rate == pytest.approx(4 / 6)
    assert match.rate_after == pytest.approx(2 / 3)
    same = token_match(np.arange(4), np.arange(4))
    assert (same.rate, same.common_prefix, same.rate_after) == (1.0, 4, 1.0)
    with pytest.raises(GenerationError, match="cannot compare 3 tokens with a reference of 4"):
        token_match(np.arange(4), np.arange(3))
    assert perplexity([np.log(2.0), np.log(8.0)]) == pytest.approx(4.0)


def test_forcing_is_checked(models: dict[str, CompiledModel]) -> None:
    session = GenerationSession(GraphPair(models["prefill"], models["dense"]), Sampling())
    with pytest.raises(GenerationError, match="run the prefill before forcing"):
        session.force(np.array([1]))
    session.prefill(PROMPT_IDS)
    with pytest.raises(GenerationError, match=r"forced tokens must be 1 integer ids, got shape \[2\]"):
        session.force(np.array([1, 2]))
