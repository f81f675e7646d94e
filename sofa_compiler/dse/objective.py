"""The search objective: the paper's Eq. 2-4, with a measured accuracy proxy.

    L = L_en + alpha * L_cmp + beta * L_exp  [+ gamma_c * cycles / dense_cycles + gamma_e * energy / dense_energy]

* ``L_en``: the paper's cross-entropy needs a training loop; here it is the
  mean over layers of the output's relative (Frobenius) error against dense
  attention on the calibration inputs.
* ``L_cmp = sum_i Bc_i k_i / sum_i S_i k_i`` (Eq. 3, sorting cost; with one
  k per layer it is summed per layer).
* ``L_exp``: Eq. 4 prints ``sum_i S_i / Bc_i`` (= sum of Tc_i), up to 384 for
  BERT-base, which would swamp the other terms; it is normalised by its value
  at the smallest tile the cost model considers (Bc = 16), so it lies in (0, 1].
* The optional terms divide simulated cycles and energy by those of dense
  attention (keep = 1, the cost model's tile) on the same layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from passes.tile_plan import TILE_CANDIDATES
from sofa_compiler.dse.problem import LayerResult

MIN_TILE = TILE_CANDIDATES[0]


@dataclass(frozen=True)
class Weights:
    """Objective weights; alpha/beta default to the paper's BERT values (Sec. V-B1)."""

    alpha: float = 0.24
    beta: float = 0.31
    cycles: float = 0.0
    energy: float = 0.0
    max_error: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass(frozen=True)
class Score:
    """A configuration's objective value and its terms."""

    value: float
    error: float
    cmp: float
    exp: float
    cycles: float
    energy_pj: float
    cycles_ratio: float
    energy_ratio: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def score(
    seqs: list[int],
    tiles: list[int],
    keeps: list[float],
    results: list[LayerResult],
    dense: list[LayerResult],
    weights: Weights,
) -> Score:
    """Combine per-layer results into the objective (lower is better)."""
    error = sum(r.error for r in results) / len(results)
    cmp = sum(t * k for t, k in zip(tiles, keeps)) / sum(s * k for s, k in zip(seqs, keeps))
    exp = sum(s / t for s, t in zip(seqs, tiles)) / sum(s / MIN_TILE for s in seqs)
    cycles = sum(r.cycles for r in results)
    energy = sum(r.energy_pj for r in results)
    cycles_ratio = cycles / sum(r.cycles for r in dense)
    energy_ratio = energy / sum(r.energy_pj for r in dense)
    value = error + weights.alpha * cmp + weights.beta * exp
    value += weights.cycles * cycles_ratio + weights.energy * energy_ratio
    return Score(value, error, cmp, exp, cycles, energy, cycles_ratio, energy_ratio)
