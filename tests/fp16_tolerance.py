"""Tolerances that the 16-bit datapath explains (docs/isa.md, "Numerics"), shared by the tests.

SU-FA computes on fp16 Q, K and V, rounds P = exp(s - m) to fp16 for the PV
product (relative error at most the unit roundoff u = 2^-11 per weight) and
writes O as fp16. O is a convex combination of V rows, so rounding P moves it
by at most 2u max|V| and rounding O by at most u max|V|: against exact
attention on the *stored* (fp16) inputs the error is at most 3u max|V|.
"""

import numpy as np

FP16_UNIT_ROUNDOFF = 2.0**-11


def fp16(values: np.ndarray) -> np.ndarray:
    """Values as the datapath stores them (fp16), as fp64."""
    return np.asarray(values).astype(np.float16).astype(np.float64)


def fp16_attention_atol(values: np.ndarray) -> float:
    """The absolute bound 3u max|V| on SU-FA's output against exact attention on fp16 inputs."""
    return 3 * FP16_UNIT_ROUNDOFF * float(np.max(np.abs(values)))


def assert_fp16_close(out: np.ndarray, expected: np.ndarray, values: np.ndarray) -> None:
    """`out` within `fp16_attention_atol(values)` of `expected` (exact attention on the fp16 inputs)."""
    np.testing.assert_allclose(out, expected, rtol=0, atol=fp16_attention_atol(values))
