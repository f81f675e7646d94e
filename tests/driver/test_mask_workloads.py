"""`sofa_compiler.mask_workloads`: each pattern is the mask its definition says, seeded and deterministic."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sofa_compiler
from dialects.numerics import BandMask, tile_mask_of_array, tile_mask_of_band
from sofa_compiler.mask_workloads import (
    GENERATORS,
    MaskPatternError,
    MaskWorkload,
    band_mask,
    bigbird,
    bigbird_layout,
    document_lengths,
    document_packing,
    longformer,
    mask_workloads,
    masked_attention_model,
    mistral,
    nonempty_tiles,
    simulate_masked,
)
from tests.fp16_tolerance import assert_close_to_fp32_reference


def reference_band(seq: int, left: int, right: int, dilation: int = 1) -> np.ndarray:
    delta = np.arange(seq)[None, :] - np.arange(seq)[:, None]
    return (delta >= -left) & (delta <= right) & (delta % dilation == 0)


@pytest.mark.parametrize(("left", "right", "dilation"), [(0, 0, 1), (3, 0, 1), (5, 7, 1), (8, 8, 4), (3000, 0, 1)])
def test_band_matches_its_definition_across_row_chunks(left: int, right: int, dilation: int) -> None:
    seq = 2500  # more than one row chunk, not a multiple of it
    np.testing.assert_array_equal(
        band_mask(seq, BandMask(left, right, dilation=dilation)), reference_band(seq, left, right, dilation)
    )


def test_mistral_is_causal_with_a_window() -> None:
    mask = mistral(64, window=16)
    assert mask[40, 25]
    assert not mask[40, 24]
    assert not mask[40, 41]
    assert mask.sum(axis=1).max() == 16
    np.testing.assert_array_equal(mistral(64, window=64), np.tril(np.ones((64, 64), bool)))


def test_longformer_global_tokens_see_and_are_seen_by_all() -> None:
    mask = longformer(256, window=32, global_tokens=4)
    assert mask[:4].all()
    assert mask[:, :4].all()
    np.testing.assert_array_equal(mask[4:, 4:], reference_band(256, 16, 16)[4:, 4:])


@pytest.mark.parametrize("density", [0.05, 0.1, 0.25, 0.5])
def test_bigbird_layout_has_the_requested_block_density(density: float) -> None:
    blocks = 128
    layout = bigbird_layout(blocks, density, seed=3)
    assert np.count_nonzero(layout) == round(density * blocks * blocks)
    assert layout[0].all()
    assert layout[:, 0].all()
    assert all(layout[i, max(i - 1, 0) : i + 2].all() for i in range(blocks))  # the window
    np.testing.assert_array_equal(layout, bigbird_layout(blocks, density, seed=3))
    assert not np.array_equal(layout, bigbird_layout(blocks, density, seed=4))


def test_bigbird_dense_mask_repeats_the_layout() -> None:
    mask = bigbird(4096, density=0.25, block=128, seed=1)
    layout = bigbird_layout(32, 0.25, seed=1)
    np.testing.assert_array_equal(mask[::128, ::128], layout)
    assert mask.mean() == pytest.approx(layout.mean())


def test_document_packing_is_block_diagonal() -> None:
    lengths = document_lengths(300, 5, seed=2)
    assert lengths.sum() == 300
    assert (lengths >= 1).all()
    assert len(lengths) == 5
    mask = document_packing(300, documents=5, causal=False, seed=2)
    start = 0
    for length in lengths:
        end = start + length
        assert mask[start:end, start:end].all()
        assert not mask[start:end, end:].any()
        assert not mask[start:end, :start].any()
        start = end
    np.testing.assert_array_equal(document_packing(300, 5, causal=True, seed=2), mask & np.tri(300, dtype=bool))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bigbird_layout(64, 0.01), "below the window and global blocks' own density"),
        (lambda: bigbird(1000, 0.1, block=128), "multiple of block"),
        (lambda: mistral(64, window=0), "window must be >= 1"),
        (lambda: document_lengths(4, 5), "do not fit"),
        (lambda: MaskWorkload("swiss-cheese", 64), "unknown mask pattern"),
    ],
)
def test_bad_parameters_are_clear_errors(call, message: str) -> None:
    with pytest.raises(MaskPatternError, match=message):
        call()


def test_the_workload_list_covers_every_pattern_and_length() -> None:
    workloads = mask_workloads()
    assert {w.pattern for w in workloads} == set(GENERATORS)
    assert {w.seq for w in workloads} == {4096, 8192, 16384}
    assert len({w.name for w in workloads}) == len(workloads)
    small = MaskWorkload("mistral", 512, {"window": 100})
    assert small.band() == BandMask(99, 0)
    np.testing.assert_array_equal(small.mask(), band_mask(512, small.band()))
    assert MaskWorkload("bigbird", 512, {"density": 0.5}).band() is None


def masked_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    scores = np.where(mask, q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]), -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


@pytest.mark.parametrize("constant", [True, False])
def test_masked_attention_model_computes_masked_attention(constant: bool) -> None:
    seq, depth = 256, 16
    mask = MaskWorkload("longformer", seq, {"window": 32, "global_tokens": 2}).mask()
    model = masked_attention_model(2, seq, depth, mask, constant=constant)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, seq, depth)).astype(np.float32) for _ in range(3))
    feeds = {"q": q, "k": k, "v": v} | ({} if constant else {"mask": mask})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = sofa_compiler.compile(model, keep=1.0)
    outputs, _ = compiled.run(feeds)
    assert compiled.programs  # a boolean mask runs on the accelerator, constant or given at run time (tables at launch)
    assert_close_to_fp32_reference(outputs["o"], masked_reference(q, k, v, mask))


def test_nonempty_tiles_counts_tiles_with_a_kept_key() -> None:
    mask = np.zeros((300, 200), bool)
    mask[0, 0] = mask[299, 199] = mask[130, 70] = mask[131, 71] = True
    assert nonempty_tiles(mask, 128, 64) == 3  # rows 300 and keys 200: partial last tiles count too
    assert nonempty_tiles(np.ones((256, 256), bool), 128, 64) == 8


def test_an_unmasked_layer_visits_every_tile() -> None:
    run = simulate_masked(None, 1, 32, seq=384)
    tiling = next(iter(run.compiled.tilings.values()))
    assert run.visited_tiles == nonempty_tiles(np.ones((384, 384), bool), 128, tiling.bc) == 3 * tiling.tc
    assert run.cycles > 0
    assert run.dram_bytes > 0


@pytest.mark.parametrize(
    ("pattern", "params"), [("mistral", {"window": 300}), ("dilated", {"window": 20, "dilation": 3})]
)
def test_the_closed_form_has_the_dense_masks_tile_structure(pattern: str, params: dict) -> None:
    workload = MaskWorkload(pattern, 1000, params)
    band = workload.band()
    assert band is not None
    from_band = tile_mask_of_band(band, 1000, 1000, 128, 64)
    from_mask = tile_mask_of_array(workload.mask(), 128, 64)
    np.testing.assert_array_equal(from_band.row_ptr, from_mask.row_ptr)
    np.testing.assert_array_equal(from_band.col_idx, from_mask.col_idx)
    np.testing.assert_array_equal(from_band.partial, from_mask.partial)
