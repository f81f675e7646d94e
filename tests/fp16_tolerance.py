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


FP16_MODEL_RTOL = 2e-3
"""The accelerator at keep 1.0 against an fp32 reference (onnxruntime) on the same, unrounded inputs,
as ``max|out - ref| / max|ref|``: the datapath rounds Q, K and V (u = 2^-11 each, reaching the output
through the scores and through V), P and O, so 4u = 2e-3. Measured 1e-4 to 4e-4 on N(0, 1) inputs;
it was 1e-4 with fp32 storage. Also the bound between two tilings of the same selection (P is
rounded relative to each KV tile's maximum)."""


def assert_close_to_fp32_reference(actual: np.ndarray, expected: np.ndarray) -> None:
    """`actual` within `FP16_MODEL_RTOL` of `expected`, elementwise, relative to ``max|expected|``."""
    expected = np.asarray(expected)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=FP16_MODEL_RTOL, atol=FP16_MODEL_RTOL * scale)
