"""The ranges of SOFA's sparsity knobs, each checked in one function.

Every layer that takes a keep ratio, KV tile or sphere radius (IR
attributes, pass options, CLI flags, tuning files) asks these functions and
puts its own prefix on the answer (``--keep``, ``tuning layer 3: keep``...),
so the rules and their wording live here only.
"""

from __future__ import annotations

import math

NO_RADIUS = math.inf
"""The SADS sphere radius that clips nothing; the one spelling of "no radius" (printed ``inf``)."""


PLAIN_SADS = 1.0
"""The budgeted-SADS ``far`` ratio that moves nothing: every tile keeps ``m`` (plain SADS)."""


def far_problem(far: float) -> str | None:
    """Why ``far`` is not a budgeted-SADS far-tile ratio (0 < far <= 1), or None."""
    if 0.0 < far <= 1.0:
        return None
    return f"must satisfy 0 < far <= 1, got {far}"


def keep_problem(keep: float, symbol: str = "keep") -> str | None:
    """Why ``keep`` is not a top-k keep ratio (0 < k <= 1), or None; `symbol` names it in the message."""
    if 0.0 < keep <= 1.0:
        return None
    return f"must satisfy 0 < {symbol} <= 1, got {keep}"


def tile_problem(tile: int) -> str | None:
    """Why ``tile`` is not a KV tile size Bc (at least 1), or None."""
    if tile >= 1:
        return None
    return f"must be at least 1, got {tile}"


def radius_problem(radius: float) -> str | None:
    """Why ``radius`` is not a sphere radius (positive, or `NO_RADIUS`), or None."""
    if radius > 0.0:
        return None
    return f"must be positive (or inf), got {radius}"


def sphere_radius(given: float | None) -> float:
    """The radius an option or flag asks for: `NO_RADIUS` when it is not given.

    The edges (CLI flags, pass options, tuning files) spell "no clip" as an
    absent value; inside the compiler it is always `NO_RADIUS`.
    """
    return NO_RADIUS if given is None else given
