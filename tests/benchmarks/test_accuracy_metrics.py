"""The paper's accuracy metrics (benchmarks/report/selection.py, accuracy.py and calibration.py).

Relations rather than pinned figures, so that a change of the datapath's
rounding moves the numbers without breaking the tests: two-phase DLZS recalls
no more than one-phase DLZS, the index error falls with the number of
segments, a smaller sphere sorts fewer entries, and the paper's own figures
are met where the numerics can reproduce them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.report import accuracy, calibration
from benchmarks.report.render_models import lm_section, load_lm_table
from benchmarks.report.selection import (
    ExactReference,
    Heads,
    gaussian,
    predicted_scores,
    row_topk_mask,
    selected_mask,
    sphere_share,
)
from dialects import numerics
from dialects.sofa.attrs import TargetAttr
from sofa_compiler.driver import compile_model
from sofa_compiler.workloads import Workload, attention_model
from tests.fp16_tolerance import FP16_MODEL_RTOL


@pytest.fixture(scope="module")
def heads() -> Heads:
    return gaussian(np.random.default_rng(0), 512, 64)


def test_selected_and_topk_masks_on_a_hand_example() -> None:
    indices = np.array([[[0, 1], [5, numerics.NO_INDEX]]])  # one row, two tiles of m = 2
    assert selected_mask(indices, 6).tolist() == [[True, True, False, False, False, True]]
    exact = np.array([[0.0, 3.0, 1.0, 3.0, -1.0, 2.0]])
    valid = np.array([[True, True, True, True, False, True]])
    # keep 0.5 of 5 valid keys: the best 3, ties to the lower index
    assert row_topk_mask(exact, valid, 0.5).tolist() == [[False, True, False, True, False, True]]


def test_the_oracle_selects_its_own_tiles_and_keep_one_is_exact(heads: Heads) -> None:
    reference = ExactReference.of(heads)
    exact = reference.scores
    oracle = reference.quality(exact, 64, 0.25, math.inf)
    assert oracle.tile_recall == 1.0
    assert oracle.sorted_share == 1.0
    # n * ceil(keep * Bc) = keep * S keys per row: the index error is the recall's complement
    assert oracle.index_error == pytest.approx(1.0 - oracle.row_recall)
    dense = reference.quality(exact, 64, 1.0, math.inf)
    assert (dense.index_error, dense.row_recall) == (0.0, 1.0)


def test_two_phase_dlzs_recalls_no_more_than_one_phase(heads: Heads) -> None:
    points = {(p.predictor, p.keep): p for p in accuracy.keep_sweep("gaussian", heads, 64, (1.0, 0.25, 0.1))}
    for keep in (0.25, 0.1):
        one, two = points["dlzs", keep], points["dlzs-2phase", keep]
        assert two.row_recall <= one.row_recall
        assert two.tile_recall <= one.tile_recall
        assert points["exact", keep].row_recall >= one.row_recall
    assert points["dlzs-2phase", 1.0].rel_error < FP16_MODEL_RTOL  # keep 1: only the 16-bit datapath rounds


def test_no_two_phase_without_projections(heads: Heads) -> None:
    bare = Heads(heads.q, heads.k, heads.v)
    assert predicted_scores("dlzs-2phase", bare) is None
    assert {p.predictor for p in accuracy.keep_sweep("bare", bare, 64, (0.25,))} == {"dlzs", "mul4", "exact"}


def test_index_error_falls_as_the_segments_fall(heads: Heads) -> None:
    points = accuracy.segment_sweep("gaussian", heads)
    for predictor in accuracy.SELECTION_PREDICTORS:
        errors = [p.index_error for p in sorted(points, key=lambda p: p.segments) if p.predictor == predictor]
        assert errors == sorted(errors), predictor
    whole_row = next(p for p in points if p.predictor == "exact" and p.segments == 1)
    assert whole_row.index_error == 0.0


def test_a_smaller_sphere_sorts_fewer_entries(heads: Heads) -> None:
    points = accuracy.radius_sweep("gaussian", heads, 64)
    assert [p.radius for p in points] == list(accuracy.RADII)
    shares = [p.sorted_share for p in points]
    recalls = [p.row_recall for p in points]
    assert shares == sorted(shares, reverse=True)
    assert shares[0] == 1.0
    assert shares[-1] < 0.5
    assert recalls == sorted(recalls, reverse=True)


def test_sphere_share_counts_entries_within_the_radius_of_their_tile() -> None:
    scores = np.array([[4.0, 3.0, 0.0, 1.0]])
    valid = np.array([[True, True, True, False]])
    assert sphere_share(scores, valid, 2, 1.5) == 1.0  # 4 and 3 in the first tile; 0, its tile's max, alone
    assert sphere_share(scores, valid, 2, 0.5) == pytest.approx(2 / 3)  # 3 is out
    assert sphere_share(scores, valid, 2, math.inf) == 1.0


def test_sads_index_error_near_the_papers_3_percent() -> None:
    """§3.2: about 3 % at S = 1024, n = 4, top 25 % (different K indices than the exact whole-row top-k)."""
    seq, n, keep, paper = calibration.PAPER_SADS
    for make in (gaussian,):
        points = accuracy.segment_sweep("g", make(np.random.default_rng(0), seq, 64), keep, (n,))
        exact = next(p for p in points if p.predictor == "exact")
        assert abs(exact.index_error - paper) < 0.015


def test_rass_reproduces_the_fig15_example() -> None:
    phases = calibration.rass_phases(calibration.FIG15_BUCKETS, calibration.FIG15_PHASE_KEYS)
    assert [sorted(phase) for phase in phases] == [[2, 3, 5, 6], [0, 1, 4, 7]]
    in_order = calibration.in_order_loads(calibration.FIG15_BUCKETS, 4, calibration.FIG15_IN_ORDER_GROUP)
    assert sum(map(len, phases)) / in_order - 1 == pytest.approx(calibration.PAPER_RASS_SAVING)
    assert calibration.in_order_loads(calibration.FIG15_BUCKETS, 4, 1) == 16
    assert calibration.in_order_loads(calibration.FIG15_BUCKETS, 4, 4) == 8


def test_workload_points_use_the_compilers_tile() -> None:
    """The tile the sweep measures at is the one `compile_model` picks for the same attention."""
    workload = Workload("t", "T", 2, 64, 256, True)
    compiled = compile_model(attention_model(2, 256, 64, True), keep=0.25)
    tiles = {
        op.sparsity.tile_size
        for stage in compiled.stages
        for op in stage.snapshot.walk()
        if getattr(op, "sparsity", None) is not None
    }
    tile = accuracy.compiled_tile(TargetAttr(compiled.config.as_target_dict()), workload, 2, 256, 0.25)
    assert tiles == {tile}
    points = accuracy.workload_points(workload, 256, tile, 16)
    assert {p.segments for p in points} == {numerics.tile_count(256, tile)}
    assert all(0.0 <= p.index_error < 1.0 and p.rows == 16 for p in points)


def test_the_lm_table_is_read_from_its_file(tmp_path: Path) -> None:
    sweep = {
        "model": "SmolLM2-135M",
        "tokens": 2048,
        "reference": {"perplexity": 10.0},
        "points": [
            {"keep": 1.0, "perplexity": 10.0, "ratio": 1.0},
            {"keep": 0.25, "perplexity": 10.05, "ratio": 1.005},
            {"keep": 0.25, "setting": "tuned.json", "perplexity": 10.02, "ratio": 1.002, "cycles": 5},
            {"keep": 0.25, "perplexity": 10.01, "ratio": 1.001, "cycles": 4, "far": 0.75, "tile": 128},
            {"keep": 0.2786, "setting": "share.json", "perplexity": 10.03, "ratio": 1.003, "cycles": 3, "kept": 0.25},
        ],
    }
    path = tmp_path / "ppl.json"
    path.write_text(json.dumps(sweep))
    text = lm_section(load_lm_table(path))
    assert "not measured in this run" in text
    assert "| 0.25 | uniform | plain | n/a | 10.05 | 1.005 | n/a |" in text
    assert "| 0.25 | tuned.json | plain | n/a | 10.02 | 1.002 | 5 |" in text
    assert "| 0.25 | uniform | budgeted, far 0.75, Bc 128 | n/a | 10.01 | 1.001 | 4 |" in text
    assert "| 0.2786 | share.json | plain | 0.25 | 10.03 | 1.003 | 3 |" in text  # the true share kept
    path.write_text("{not json")
    assert "is not readable JSON" in lm_section(load_lm_table(path))
    assert "does not exist" in lm_section(load_lm_table(tmp_path / "missing.json"))


def test_sufa_rescales_in_sads_order_are_the_max_ensure_events(heads: Heads) -> None:
    """The SU-FA calibration row counts what the golden SU-FA kernel counts, and the orders rank as the paper says."""
    selected, counts = calibration.rescale_counts(heads, 64, 0.25)
    descending, by_key, ascending = counts.values()
    predicted = predicted_scores("dlzs-2phase", heads)
    assert predicted is not None
    valid = np.ones(predicted.shape[-2:], dtype=bool)
    indices = numerics.sads(predicted, valid, 64, 0.25, math.inf)
    bias = numerics.mask_to_bias(None, False, 512, 512)
    _, max_updates = numerics.sufa(heads.q, heads.k, heads.v, indices, bias, 1 / 8, 64)
    assert descending == max_updates
    assert descending < by_key < ascending
    assert ascending == selected - 512 * 8  # every score but each (row, tile)'s first
