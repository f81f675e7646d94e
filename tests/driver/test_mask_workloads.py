"""`sofa_compiler.mask_workloads`: each pattern is the mask its definition says, seeded and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from sofa_compiler.mask_workloads import (
    GENERATORS,
    Band,
    MaskPatternError,
    MaskWorkload,
    band_mask,
    bigbird,
    bigbird_layout,
    document_lengths,
    document_packing,
    longformer,
    mask_workloads,
    mistral,
)


def reference_band(seq: int, left: int, right: int, dilation: int = 1) -> np.ndarray:
    delta = np.arange(seq)[None, :] - np.arange(seq)[:, None]
    return (delta >= -left) & (delta <= right) & (delta % dilation == 0)


@pytest.mark.parametrize(("left", "right", "dilation"), [(0, 0, 1), (3, 0, 1), (5, 7, 1), (8, 8, 4), (3000, 0, 1)])
def test_band_matches_its_definition_across_row_chunks(left: int, right: int, dilation: int) -> None:
    seq = 2500  # more than one row chunk, not a multiple of it
    np.testing.assert_array_equal(
        band_mask(seq, Band(left, right, dilation)), reference_band(seq, left, right, dilation)
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
    assert small.band() == Band(99, 0)
    np.testing.assert_array_equal(small.mask(), band_mask(512, small.band()))
    assert MaskWorkload("bigbird", 512, {"density": 0.5}).band() is None
