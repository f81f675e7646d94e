"""`sofa_compiler.dse.mask_search`: the model prunes, the simulator measures the survivors."""

from __future__ import annotations

import pytest

from dialects.sofa import TargetAttr
from sofa_compiler.dse.mask_search import MaskSearchError, stage_one, two_stage_search
from sofa_compiler.mask_workloads import MaskWorkload
from sofa_compiler.sim.config import load_config

MASK = MaskWorkload("longformer", 512, {"window": 64, "global_tokens": 4}).mask()


def target() -> TargetAttr:
    return TargetAttr(load_config().as_target_dict())


def test_stage_one_keeps_the_candidates_within_the_margin() -> None:
    priced, survivors = stage_one(target(), MASK, 1, 32, (1.0, 0.5), margin=1.1)
    for keep in (1.0, 0.5):
        at_keep = [p for p in priced if p.keep == keep]
        best = at_keep[0].candidate.cycles
        assert best == min(p.candidate.cycles for p in at_keep)
        assert {p.tile for p in at_keep} >= {16, 32}  # several tiles priced
        kept = [p for p in survivors if p.keep == keep]
        assert kept == [p for p in at_keep if p.candidate.cycles <= 1.1 * best]
    _, everything = stage_one(target(), MASK, 1, 32, (1.0,), margin=100.0)
    assert len(everything) > len([p for p in survivors if p.keep == 1.0])


@pytest.mark.parametrize(
    ("keeps", "margin", "message"), [((1.0,), 0.9, "margin must be >= 1"), ((0.0,), 1.5, "keeps must lie in")]
)
def test_bad_options_are_clear_errors(keeps: tuple[float, ...], margin: float, message: str) -> None:
    with pytest.raises(MaskSearchError, match=message):
        stage_one(target(), MASK, 1, 32, keeps, margin)


def test_stage_two_runs_the_models_plan_of_each_survivor() -> None:
    result = two_stage_search(MASK, 1, 32, keeps=(1.0, 0.5), margin=1.5)
    assert {(m.tile, m.keep) for m in result.measured} == {(p.tile, p.keep) for p in result.survivors}
    for point in result.measured:
        top = next(p for p in result.priced if (p.tile, p.keep) == (point.tile, point.keep)).candidate
        assert (point.format, point.mapping) == (top.format, top.mapping)
        assert point.estimated_cycles == top.cycles
        assert 0.3 < point.model_over_simulator < 3
    assert all(m.error < 1e-2 for m in result.measured if m.keep == 1.0)  # exact up to the 16-bit datapath
    fastest = result.fastest(1.0)
    assert fastest.cycles == min(m.cycles for m in result.measured if m.keep == 1.0)
    assert result.model_choice(1.0).keep == 1.0
    with pytest.raises(MaskSearchError, match="no measured candidate"):
        result.fastest(0.5, max_error=0.0)
