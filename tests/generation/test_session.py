"""Generation with a resident KV cache: a small random-weight Llama (same builder as SmolLM2's graphs).

Greedy tokens equal onnxruntime's on the same prefill and decode-step graphs; a decode step
writes only the new rows into the resident DRAM images; bad requests get clear errors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from benchmarks.smollm2.cached_graphs import LlamaShape, build, onnxruntime_greedy, random_weights
from sofa_compiler.driver import DecodeOptions, compile_model
from sofa_compiler.generation import GenerationError, GenerationSession, GraphPair, Sampling, generate
from sofa_compiler.generation.contract import past_key, past_value
from sofa_compiler.generation.resident import changed_rows

SHAPE = LlamaShape(hidden=32, layers=2, heads=4, kv_heads=2, head_dim=8, intermediate=64, vocab=50)
PROMPT, CAPACITY = 8, 16


def graphs(samples: int):
    weights = random_weights(SHAPE, seed=1)
    return (
        build(weights, SHAPE, prompt=PROMPT, capacity=CAPACITY, samples=samples, decode=False),
        build(weights, SHAPE, prompt=PROMPT, capacity=CAPACITY, samples=samples, decode=True),
    )


def compiled(samples: int) -> GraphPair:
    prefill, decode = graphs(samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decode_kernel = DecodeOptions(enabled=True)
        return GraphPair(compile_model(prefill, keep=1.0), compile_model(decode, keep=1.0, decode=decode_kernel))


@pytest.fixture(scope="module")
def pair() -> GraphPair:
    return compiled(1)


PROMPT_IDS = np.random.default_rng(2).integers(0, SHAPE.vocab, PROMPT)


def test_every_attention_runs_on_the_accelerator(pair: GraphPair) -> None:
    for model in (pair.prefill, pair.decode):
        assert [p.host_reason for p in model.placements] == [None] * SHAPE.layers


def test_greedy_tokens_equal_onnxruntime(pair: GraphPair) -> None:
    prefill, decode = graphs(1)
    expected = onnxruntime_greedy(prefill, decode, PROMPT_IDS, CAPACITY - PROMPT + 1)
    session = GenerationSession(pair, Sampling())
    reports = generate(session, PROMPT_IDS, CAPACITY - PROMPT + 1)
    assert session.tokens.tolist() == expected.tolist()
    assert len(set(expected[0].tolist())) > 3  # the random model does not just repeat one token
    assert [r.cache_length for r in reports] == list(range(PROMPT, CAPACITY + 1))
    assert not session.can_step


def test_a_decode_step_writes_only_the_new_rows(pair: GraphPair) -> None:
    session = GenerationSession(pair, Sampling())
    prefill, first, *steps = generate(session, PROMPT_IDS, 6)
    assert all(r.kernels == SHAPE.layers and r.cycles > 0 and r.energy_pj > 0 for r in (prefill, first, *steps))
    # The first decode step loads the whole cache into the decode kernels' images; later steps write
    # the query and one K/V row per head and layer, the same amount each step.
    assert len({r.host_write_bytes for r in steps}) == 1
    assert steps[0].host_write_bytes * 4 < first.host_write_bytes
    # The kernel itself reads the whole (fixed-capacity) cache every step.
    assert len({r.dram_read_bytes for r in steps}) == 1


def test_the_next_steps_cache_is_read_from_the_resident_images(pair: GraphPair) -> None:
    session = GenerationSession(pair, Sampling())
    generate(session, PROMPT_IDS, 3)
    for layer in range(SHAPE.layers):
        for name in (past_key(layer), past_value(layer)):
            cache = session.cache[name]
            # In the datapath's fp16, as the kernels' DRAM holds it; rows past the length still empty.
            assert np.array_equal(cache, cache.astype(np.float16).astype(np.float32))
            assert np.abs(cache[:, :, : session.length]).sum(axis=-1).all()
            assert not cache[:, :, session.length :].any()


def test_samples_decode_together_and_seeded_sampling_repeats() -> None:
    pair = compiled(3)
    greedy = GenerationSession(pair, Sampling())
    generate(greedy, PROMPT_IDS, 4)
    prefill, decode = graphs(3)
    assert greedy.tokens.tolist() == onnxruntime_greedy(prefill, decode, PROMPT_IDS, 4).tolist()
    drawn = []
    for _ in range(2):
        session = GenerationSession(pair, Sampling(temperature=2.0, seed=7))
        generate(session, PROMPT_IDS, 4)
        drawn.append(session.tokens)
    assert drawn[0].shape == (3, 4)
    assert np.array_equal(drawn[0], drawn[1])
    assert ((drawn[0] >= 0) & (drawn[0] < SHAPE.vocab)).all()


@pytest.mark.parametrize(
    ("prompt", "tokens", "message"),
    [
        (np.arange(PROMPT - 1), 2, "the prompt must be 8 integer token ids"),
        (np.linspace(0, 1, PROMPT), 2, "the prompt must be 8 integer token ids"),
        (PROMPT_IDS, 0, "at least 1"),
        (PROMPT_IDS, CAPACITY, "do not fit: the decode cache holds 16 tokens"),
    ],
)
def test_bad_requests_are_clear_errors(pair: GraphPair, prompt: np.ndarray, tokens: int, message: str) -> None:
    with pytest.raises(GenerationError, match=message):
        generate(GenerationSession(pair, Sampling()), prompt, tokens)


def test_misuse_is_a_clear_error(pair: GraphPair) -> None:
    session = GenerationSession(pair, Sampling())
    with pytest.raises(GenerationError, match="run the prefill before a decode step"):
        session.step()
    with pytest.raises(GenerationError, match="temperature must be"):
        Sampling(temperature=-1.0)
    with pytest.raises(GenerationError, match=r"the decode graph's input_ids must be \[M, 1\], got \[1, 8\]"):
        GraphPair(pair.prefill, pair.prefill).check()


def test_changed_rows_counts_rows_that_differ() -> None:
    old = np.zeros((4, 3), np.float16)
    new = old.copy()
    new[2, 1] = 1
    assert changed_rows(old, new) == 1
    assert changed_rows(None, new) == 4
    assert changed_rows(old[:3], new) == 4
