"""The issue-17 benchmarks at small sizes: their printed relations hold (tiles visited == non-empty, cost tracks
density, top-k inside a mask, the two-stage search's verdict lines)."""

from __future__ import annotations

import re

import pytest

from benchmarks import mask_analysis_speed, masks_combined, masks_density, masks_two_stage


def test_masks_density_cost_tracks_density(capsys: pytest.CaptureFixture[str]) -> None:
    assert masks_density.main(["--seq", "2048", "--depth", "64", "--densities", "0.25,0.5"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(
        r"^\s+(\d+)%\s+([\d.]+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+(\d+)$", out, re.M
    )
    assert [row[0] for row in rows] == ["25", "50"]
    for _, _, _, _, cycle_ratio, _, byte_ratio, visited, nonempty in rows:
        assert visited == nonempty
        assert float(cycle_ratio) <= masks_density.GOAL
        assert float(byte_ratio) <= masks_density.GOAL
    assert "tiles visited == non-empty: True" in out


def test_masks_combined_prints_both_layers(capsys: pytest.CaptureFixture[str]) -> None:
    assert masks_combined.main(["--seq", "2048", "--depth", "64", "--density", "0.25", "--pattern", "local"]) == 0
    rows = re.findall(r"^(\S+ ?\S*)\s+([\d.]+)\s+([\d.e+-]+)\s+([\d.e+-]+)\s+(\d+)", capsys.readouterr().out, re.M)
    errors = {(label.strip(), float(keep)): float(error) for label, keep, error, _, _ in rows}
    assert len(errors) == 4
    assert errors[("25% bl.", 1.0)] < 1e-2  # exact up to the 16-bit datapath
    assert errors[("25% bl.", 0.25)] > errors[("25% bl.", 1.0)]


def test_mask_analysis_speed_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert mask_analysis_speed.main(["--seq", "4096", "--repeat", "1", "--patterns", "bigbird,mistral"]) == 0
    out = capsys.readouterr().out
    assert "closed/block" in out  # Mistral's window is a band
    assert "slowest whole plan" in out


def test_masks_two_stage_names_both_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert masks_two_stage.main(["--seq", "1024", "--depth", "64", "--keeps", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"keep 1: model's first choice Bc \d+ \w+/\w+ .* simulator's fastest Bc \d+", out)
    assert "model/simulator over all survivors" in out
