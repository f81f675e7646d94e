"""benchmarks/coordinated_vs_separate.py on a small layer: every pipeline, both masks, cost beside accuracy."""

from __future__ import annotations

import math

import pytest

from benchmarks.coordinated_vs_separate import PIPELINES, measure, print_table
from sofa_compiler.sim.config import load_config
from sofa_compiler.workloads import Workload


@pytest.fixture(scope="module")
def results():
    config = load_config(None)
    return {
        causal: measure(Workload("small", "small", 4, 64, 512, causal), 1, 0.25, config, lambda _: None)
        for causal in (True, False)
    }


def test_every_pipeline_has_finite_costs_and_accuracy(results):
    for rows in results.values():
        assert set(rows) == set(PIPELINES)
        for row in rows.values():
            assert all(math.isfinite(value) and value > 0 for value in (row.dram_bytes, row.cycles, row.energy_uj))
            assert 0 <= row.error < 10
            assert 0 < row.cosine <= 1 + 1e-9


def test_coordinated_moves_less_than_both_baselines(results):
    for rows in results.values():
        assert rows["coordinated"].dram_bytes < rows["fair separate"].dram_bytes
        assert rows["coordinated"].dram_bytes < rows["paper vanilla"].dram_bytes


def test_causal_costs_less_in_every_pipeline(results):
    for pipeline in PIPELINES:
        assert results[True][pipeline].cycles < results[False][pipeline].cycles
        assert results[True][pipeline].dram_bytes < results[False][pipeline].dram_bytes


def test_table_prints_both_masks(results, capsys):
    print_table(results)
    text = capsys.readouterr().out
    assert "fair separate (causal)" in text
    assert "paper vanilla" in text
    assert "out error" in text
