"""How the issue-17 mask benchmarks exit: a bad option is one clear line, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from sofa_compiler.dse.mask_search import MaskSearchError
from sofa_compiler.mask_workloads import MaskPatternError


def run(main: Callable[[], int]) -> None:
    """Exit with `main`'s status, or with an ``error: ...`` line for a mask pattern or search option it rejects."""
    try:
        sys.exit(main())
    except (MaskPatternError, MaskSearchError) as error:
        sys.exit(f"error: {error}")
