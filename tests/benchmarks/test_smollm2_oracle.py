"""The exact-score oracle of `benchmarks/smollm2_oracle.py`: its readings of "keep", checked against each other
and against SADS's numerics; the attention it swaps in, on a tiny random Llama (no download)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.smollm2.perplexity import kept_share
from benchmarks.smollm2_oracle import Selection, floor_keep, keep_mask, row_counts, tile_counts
from tests.benchmarks.test_smollm2_perplexity import MISSING, tiny_llama

torch = pytest.importorskip("torch")
SEQ = 300


def causal_scores(heads: int = 2, seq: int = SEQ) -> torch.Tensor:
    scores = torch.from_numpy(np.random.default_rng(3).standard_normal((heads, seq, seq)).astype(np.float32))
    return torch.where(torch.ones(seq, seq, dtype=torch.bool).tril(), scores, -torch.inf)


def test_row_readings_keep_their_counts() -> None:
    lengths = np.arange(1, SEQ + 1)
    valid = row_counts(Selection("row/valid", None, "valid"), 0.25, SEQ)
    full = row_counts(Selection("row/S", None, "S"), 0.25, SEQ)
    assert (valid == np.ceil(0.25 * lengths)).all()
    assert (full == np.minimum(lengths, 75)).all()
    assert full.sum() > 1.5 * valid.sum()  # ceil(k S) keeps far more than a quarter of the valid keys


@pytest.mark.parametrize("floor", [8, 32])
def test_a_floor_keeps_short_rows_and_the_share(floor: int) -> None:
    counts = row_counts(Selection("f", None, "valid", floor=floor), 0.25, SEQ)
    lengths = np.arange(1, SEQ + 1)
    assert (counts >= np.minimum(floor, lengths)).all()
    assert counts.sum() / lengths.sum() == pytest.approx(0.25, abs=2e-3)
    assert floor_keep(0.25, floor, SEQ) < 0.25


@pytest.mark.parametrize("tile", [32, 64])
def test_the_compilers_keep_per_tile_is_plain_sads_count(tile: int) -> None:
    counts = tile_counts(Selection("t", tile, "Bc"), 0.25, SEQ)
    share = counts.sum() / (SEQ * (SEQ + 1) / 2)
    assert share == pytest.approx(kept_share(SEQ, tile, int(np.ceil(0.25 * tile)), 1.0))
    assert share > 0.25  # the diagonal tile keeps up to m of few valid keys
    per_valid = tile_counts(Selection("v", tile, "valid"), 0.25, SEQ)
    assert (per_valid <= counts).all()


@pytest.mark.parametrize(
    "selection",
    [
        Selection("row/valid", None, "valid"),
        Selection("row/S", None, "S"),
        Selection("row/valid+sink1+win8", None, "valid", 1, 8),
        Selection("tile64/Bc", 64, "Bc"),
        Selection("tile64/valid+sink1+win8", 64, "valid", 1, 8),
    ],
    ids=lambda s: s.name,
)
def test_masks_keep_the_counted_valid_keys(selection: Selection) -> None:
    scores = causal_scores()
    mask = keep_mask(scores, selection, 0.25)
    assert not (mask & torch.isinf(scores)).any()
    if selection.tile is None:
        expected = row_counts(selection, 0.25, SEQ)
    else:
        expected = tile_counts(selection, 0.25, SEQ).sum(axis=1)
    assert (mask.sum(-1).numpy() == expected[None, :]).all()
    rows = torch.arange(100, SEQ)  # rows whose count holds the sink and the window (shorter ones rank them)
    if selection.sink:
        assert mask[:, rows, 0].all()
    if selection.window and selection.tile is None:  # per tile, a diagonal tile of few keys ranks its window
        assert mask[:, rows, rows].all()
        assert mask[:, rows, rows - 7].all()


@pytest.mark.skipif(bool(MISSING), reason=f"benchmark-only packages not installed: {', '.join(MISSING)}")
def test_keep_one_is_dense_and_keep_a_quarter_is_not_on_a_tiny_llama() -> None:
    from benchmarks.smollm2_oracle import ORACLE_ATTENTION, OracleAttention, register, run

    model = tiny_llama()
    ids = np.random.default_rng(1).integers(0, 96, size=(1, 64)).astype(np.int64)
    with torch.no_grad():
        reference = model(input_ids=torch.from_numpy(ids)).logits.numpy()
    dense = OracleAttention(None, 1.0, "exact")
    register(dense)
    model.set_attn_implementation(ORACLE_ATTENTION)
    np.testing.assert_allclose(run(model, ids, dense), reference, atol=1e-5)
    whole = OracleAttention(Selection("row/valid", None, "valid"), 1.0, "exact")
    np.testing.assert_allclose(run(model, ids, whole), reference, atol=1e-5)
    assert whole.kept == whole.valid
    quarter = OracleAttention(Selection("row/valid", None, "valid"), 0.25, "exact")
    assert not np.allclose(run(model, ids, quarter), reference, atol=1e-3)
    assert quarter.kept / quarter.valid == pytest.approx(0.25, abs=0.02)
