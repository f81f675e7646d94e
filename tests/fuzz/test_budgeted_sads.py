"""Budgeted SADS (`numerics.sads_budget`): its invariants, and the machine against the golden semantics.

Row budgets move between KV tiles, from far tiles to a row's last two; these
tests pin what must hold whatever the scores: a row never keeps more than
plain SADS would (the budget is conserved: kept plus what is left equals plain
SADS's allowance), never a masked key, plain SADS at ``far = 1``, whole-row
top-k when one tile covers the row; and the compiled kernel (`sads.reset`,
`sads.budget` on the simulator) equals the tiled `sofa` IR run by the
dialect's interpreter, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_compiled_properties import attention_layer, layer_inputs, tiled_ir_outputs

from dialects import numerics
from sofa_compiler.driver import CompileError, compile_model

SHAPES = [(64, 8), (200, 16), (333, 32), (97, 128)]
"""(keys, tile): whole tiles, a partial last tile, one tile covering the row."""


def kept_mask(indices: np.ndarray, length: int) -> np.ndarray:
    """``[rows, Tc, slots]`` global indices -> ``[rows, length]`` bool."""
    flat = indices.reshape(len(indices), -1)
    mask = np.zeros((len(indices), length), bool)
    rows = np.broadcast_to(np.arange(len(indices))[:, None], flat.shape)
    chosen = flat != numerics.NO_INDEX
    mask[rows[chosen], flat[chosen]] = True
    return mask


def scores_and_mask(length: int, causal: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((length, length)).astype(np.float16)
    valid = np.tril(np.ones((length, length), bool)) if causal else rng.random((length, length)) < 0.8
    return scores, valid


def plain_allowance(valid: np.ndarray, tile: int, keep: float) -> np.ndarray:
    """Per row, what plain SADS may keep: sum over tiles of min(m, valid keys in the tile)."""
    m = numerics.keep_count(keep, tile)
    tiles = numerics.tile_count(valid.shape[1], tile)
    padded = np.zeros((len(valid), tiles * tile), bool)
    padded[:, : valid.shape[1]] = valid
    return np.minimum(m, padded.reshape(len(valid), tiles, tile).sum(-1)).sum(-1)


@pytest.mark.parametrize(("length", "tile"), SHAPES)
@pytest.mark.parametrize("far", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("causal", [True, False])
def test_budget_is_conserved_and_masked_keys_are_never_kept(length, tile, far, causal):
    scores, valid = scores_and_mask(length, causal, seed=length + tile)
    keep = 0.25
    indices = numerics.sads(scores, valid, tile, keep, math.inf, far)
    assert indices.shape[-1] == numerics.budget_slots(far, keep, tile)
    kept = kept_mask(indices, length)
    assert not (kept & ~valid).any()
    flat = indices.reshape(length, -1)
    assert all(len(set(row[row >= 0])) == np.count_nonzero(row >= 0) for row in flat)  # no key twice
    allowance = plain_allowance(valid, tile, keep)
    assert (kept.sum(-1) <= allowance).all()
    # Tile by tile: the counter gains min(m, valid), loses what is kept, never goes negative;
    # at the end, kept plus what is left is exactly plain SADS's allowance.
    m, slots = numerics.keep_count(keep, tile), numerics.budget_slots(far, keep, tile)
    last, budget, total = numerics.last_valid_keys(valid), np.zeros(length, np.int64), np.zeros(length, np.int64)
    for j in range(numerics.tile_count(length, tile)):
        window = slice(j * tile, (j + 1) * tile)
        part_scores, part_valid = scores[:, window], valid[:, window]
        if part_valid.shape[1] < tile:  # the padded last tile
            pad = tile - part_valid.shape[1]
            part_scores = np.pad(part_scores, ((0, 0), (0, pad)))
            part_valid = np.pad(part_valid, ((0, 0), (0, pad)))
        distance = numerics.tiles_to_last(last, j * tile, tile)
        far_keys = numerics.far_count(far, keep, tile)
        local, after, _ = numerics.sads_budget_tile(
            part_scores, part_valid, budget, distance, m, far_keys, slots, np.inf
        )
        taken = np.count_nonzero(local != numerics.NO_INDEX, axis=-1)
        own = np.minimum(m, part_valid.sum(-1))
        assert np.array_equal(after, budget + own - taken)
        assert (after >= 0).all()
        assert (taken[distance >= 2] <= far_keys).all()
        budget, total = after, total + taken
    assert np.array_equal(total, kept.sum(-1))
    assert np.array_equal(total + budget, allowance)


@pytest.mark.parametrize(("length", "tile"), SHAPES)
@pytest.mark.parametrize("causal", [True, False])
def test_far_one_is_plain_sads(length, tile, causal):
    scores, valid = scores_and_mask(length, causal, seed=7)
    plain = numerics.sads(scores, valid, tile, 0.25, math.inf)
    assert np.array_equal(numerics.sads(scores, valid, tile, 0.25, math.inf, 1.0), plain)


@pytest.mark.parametrize("causal", [True, False])
def test_one_tile_covering_the_row_is_whole_row_top_k(causal):
    length, keep = 97, 0.25
    scores, valid = scores_and_mask(length, causal, seed=3)
    budgeted = kept_mask(numerics.sads(scores, valid, 128, keep, math.inf, 0.5), length)
    # One tile: the row's last tile spends its whole allowance min(m, valid), the best keys of the row.
    m = numerics.keep_count(keep, 128)
    for row in range(length):
        count = min(m, int(valid[row].sum()))
        ranked = np.where(valid[row], scores[row].astype(np.float64), -np.inf)
        best = np.argsort(-ranked, kind="stable")[:count]
        assert set(np.flatnonzero(budgeted[row])) == set(best)


def test_selection_is_a_prefix_of_sads_order():
    """Within a tile the budgeted choice is the top of plain SADS's order at the same width."""
    scores, valid = scores_and_mask(300, True, seed=11)
    tile, keep, far = 32, 0.25, 0.5
    slots = numerics.budget_slots(far, keep, tile)
    budgeted = numerics.sads(scores, valid, tile, keep, math.inf, far)
    widest = numerics.sads(scores, valid, tile, slots / tile, math.inf)
    assert widest.shape == budgeted.shape
    taken = budgeted != numerics.NO_INDEX
    assert np.array_equal(budgeted[taken], widest[taken])
    assert (np.diff(taken.astype(int), axis=-1) <= 0).all()  # chosen slots come first


LAYERS = [
    dict(batch=1, kv_heads=1, heads=2, sq=300, skv=300, depth=16, vdepth=8, mask="causal", tile=32),
    dict(batch=2, kv_heads=1, heads=3, sq=70, skv=150, depth=8, vdepth=4, mask="causal", tile=16),
    dict(batch=1, kv_heads=2, heads=2, sq=33, skv=200, depth=8, vdepth=8, mask="none", tile=64),
    dict(batch=1, kv_heads=1, heads=1, sq=40, skv=90, depth=8, vdepth=8, mask="key-padding", tile=16),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda c: f"{c['mask']}-{c['sq']}x{c['skv']}-Bc{c['tile']}")
@pytest.mark.parametrize("far", [0.5, 0.75])
def test_simulator_equals_the_tiled_ir(layer, far):
    c = {**layer, "seed": 5}
    compiled = compile_model(attention_layer(c), keep=0.25, tile=c["tile"], far=far)
    (program,) = compiled.programs.values()
    assert "sads.budget" in {getattr(instr, "op", None) for instr in program.code}
    inputs = layer_inputs(c)
    outputs, _ = compiled.run(inputs)
    (actual,) = outputs.values()
    assert np.isfinite(actual).all()
    args = tuple(inputs[name] for name in compiled.input_names())
    np.testing.assert_array_equal(actual, tiled_ir_outputs(compiled.ir("tiled"), args))
    plain = compile_model(attention_layer(c), keep=0.25, tile=c["tile"])
    assert not np.array_equal(actual, next(iter(plain.run(inputs)[0].values()))) or c["mask"] != "causal"


def test_far_is_checked():
    layer = attention_layer({**LAYERS[0], "seed": 1})
    with pytest.raises(CompileError, match="far"):
        compile_model(layer, keep=0.25, far=1.5)
    with pytest.raises(CompileError, match="coordinated"):
        compile_model(layer, keep=0.25, far=0.5, pipeline="separate")


def test_budgeted_sads_that_does_not_fit_is_a_compile_error():
    """At keep 0.5, Bc = 128 budgeted SADS's 2m = 128 index slots a lane overflow SRAM at d = 64: the library
    call raises `CompileError` (the tools' clean error), not the tiling pass's `DiagnosticException`."""
    wide = dict(batch=1, kv_heads=2, heads=8, sq=512, skv=512, depth=64, vdepth=64, mask="causal", seed=1)
    compile_model(attention_layer(wide), keep=0.5, tile=128)  # plain SADS fits
    with pytest.raises(CompileError, match=r"cannot tile sofa.attention for this target: .* does not fit"):
        compile_model(attention_layer(wide), keep=0.5, tile=128, far=0.75)
