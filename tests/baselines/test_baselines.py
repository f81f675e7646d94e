"""The fair separate-stage baseline and the paper's vanilla accelerator, as relations (no pinned figures)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException

from dialects.numerics import tile_count
from dialects.sofa import Sofa, TargetAttr
from passes.kernel_interface import Symbol
from passes.tile_plan import AttentionShape
from sofa_compiler.baselines import Layer, Rows, fair_separate, paper_vanilla
from sofa_compiler.baselines.pipelines import AHAT_BYTES, INDEX_BYTES, element_bytes
from sofa_compiler.sim.config import ConfigError, load_config, parse_config
from sofa_compiler.sim.events import Unit

CONFIG = load_config(None)
SEQ, DEPTH, TILE, KEEP = 512, 64, 32, 0.25


def shape(causal: bool, keep: float = KEEP, heads: int = 1) -> AttentionShape:
    return AttentionShape(1, heads, heads, SEQ, SEQ, DEPTH, DEPTH, keep, causal)


def layer(causal: bool, row_topk: str = "sort", predictor: str = "dlzs", keep: float = KEEP) -> Layer:
    return Layer(TargetAttr({"row_topk": row_topk}), shape(causal, keep), TILE, predictor)


def config(row_topk: str = "sort"):
    return CONFIG.with_values({"target.row_topk": row_topk})


def test_rows_keep_a_share_of_their_valid_keys():
    rows = Rows.of(shape(causal=True))
    assert list(rows.valid[:3]) == [1, 2, 3]
    assert rows.valid[-1] == SEQ
    assert all(kept == math.ceil(KEEP * valid) for kept, valid in zip(rows.kept, rows.valid, strict=True))
    # Every row keeps about k of its valid keys (ceil adds under one key a row).
    assert KEEP <= rows.kept.sum() / rows.valid.sum() < KEEP + 1 / rows.valid.mean()
    plain = Rows.of(shape(causal=False))
    assert (plain.valid == SEQ).all()
    assert (plain.kept == math.ceil(KEEP * SEQ)).all()


def test_kept_keys_are_spread_over_the_tiles_that_hold_them():
    rows = Rows.of(shape(causal=True))
    for first in (0, 128, 384):
        needed = rows.tiles_needed(first, 128, TILE)
        assert needed == tile_count(first + 128, TILE)
        total = sum(rows.kept_in_tile(first, 128, TILE, j) for j in range(needed))
        assert abs(total - rows.kept[first : first + 128].sum()) <= needed


def test_the_topk_engine_is_a_target_parameter_that_moves_the_cycles():
    sort, quick = (fair_separate(layer(True, engine), config(engine)) for engine in ("sort", "quickselect"))
    assert quick.cycles < sort.cycles
    assert quick.dram_bytes == sort.dram_bytes
    assert sort.timing.work.sort_rounds > 0
    assert quick.timing.work.sort_rounds == 0


def test_the_topk_engine_has_two_values():
    with pytest.raises(VerifyException, match="row_topk"):
        TargetAttr({"row_topk": "heap"})
    with pytest.raises(ConfigError, match=r'target\.row_topk = .heap.: must be one of "sort", "quickselect"'):
        parse_config('[target]\nrow_topk = "heap"\n')
    assert load_config(None).target["row_topk"] == "sort"


def test_the_topk_engine_round_trips_through_the_ir():
    attr = TargetAttr({"row_topk": "quickselect"})
    text = io.StringIO()
    Printer(stream=text).print_attribute(attr)
    assert text.getvalue() == '#sofa.target<row_topk = "quickselect">'
    ctx = Context()
    ctx.load_dialect(Sofa)
    assert Parser(ctx, text.getvalue()).parse_attribute() == attr
    assert TargetAttr().config_hash() != attr.config_hash()  # a different machine for the baselines
    with pytest.raises(ParseError, match="row_topk' must be one of"):
        Parser(ctx, "#sofa.target<row_topk = 3>").parse_attribute()


def test_causal_skips_fully_masked_tiles_in_every_phase():
    causal, full = fair_separate(layer(True), CONFIG), fair_separate(layer(False), CONFIG)
    assert causal.cycles < full.cycles
    # Every phase's traffic is about halved: the tiles below the diagonal, of 128-row query tiles.
    tiles = tile_count(SEQ, TILE)
    needed = sum(tile_count((qt + 1) * 128, TILE) for qt in range(SEQ // 128))
    ratio = needed / (SEQ // 128 * tiles)
    assert causal.dram_bytes / full.dram_bytes == pytest.approx(ratio, rel=0.08)
    assert causal.timing.work.shift_adds / full.timing.work.shift_adds == pytest.approx(ratio)


@pytest.mark.parametrize("causal", [True, False])
def test_ahat_is_spilled_once_and_the_selection_written_as_an_index_list(causal: bool):
    """Everything the baseline writes: A-hat once (its valid tiles), the index lists, the output."""
    run, rows = fair_separate(layer(causal), CONFIG), Rows.of(shape(causal))
    needed = sum(rows.tiles_needed(qt * 128, 128, TILE) for qt in range(SEQ // 128))
    ahat = needed * 128 * TILE * AHAT_BYTES
    out = SEQ * DEPTH * element_bytes()[Symbol.OUT]
    assert run.timing.work.dram_write_bytes == ahat + int(rows.kept.sum()) * INDEX_BYTES + out


def test_predictor_energy_differs_when_the_predictor_differs():
    dlzs, mul4 = (fair_separate(layer(True, predictor=p), CONFIG) for p in ("dlzs", "mul4"))
    assert mul4.timing.work.mul4_macs == dlzs.timing.work.shift_adds > 0
    assert mul4.energy["dlzs"] > dlzs.energy["dlzs"]  # the prediction array's energy: 4-bit MACs cost more
    same = CONFIG.with_values({"energy.mul4_pj_per_cycle": CONFIG.energy["dlzs_pj_per_cycle"]})
    mul4_at_dlzs_power = fair_separate(layer(True, predictor="mul4"), same)
    assert mul4_at_dlzs_power.energy["dlzs"] < mul4.energy["dlzs"]


def test_vanilla_sends_ahat_and_a_through_dram():
    vanilla, fewer = (paper_vanilla(layer(True, predictor="mul4", keep=k), CONFIG) for k in (0.5, 0.25))
    # A (the selected scores) goes out and back once, and the index list is written once and read by
    # both formal phases: the traffic that follows the keep ratio.
    kept = Rows.of(shape(True, 0.5)).kept.sum() - Rows.of(shape(True, 0.25)).kept.sum()
    moved = vanilla.dram_bytes - fewer.dram_bytes
    assert moved == 2 * kept * AHAT_BYTES + 3 * kept * INDEX_BYTES
    assert vanilla.timing.units[Unit.DLZS].busy > 0
    assert vanilla.timing.work.mul4_macs > 0


def test_more_heads_cost_proportionally():
    one = fair_separate(layer(False), CONFIG)
    two = fair_separate(Layer(TargetAttr(), shape(False, heads=2), TILE), CONFIG)
    assert two.dram_bytes == 2 * one.dram_bytes
    assert 1.9 * one.cycles < two.cycles <= 2 * one.cycles + 1000


def test_bad_layers_are_clear_errors():
    with pytest.raises(ValueError, match="unknown predictor 'exact'"):
        Layer(TargetAttr(), shape(True), TILE, "exact")
    with pytest.raises(ValueError, match="positive"):
        Layer(TargetAttr(), shape(True), 0)
    assert np.isfinite(paper_vanilla(layer(False, predictor="mul4"), CONFIG).energy_pj)
