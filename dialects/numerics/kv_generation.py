"""K/V generation: the K and V rows the K/V-generation array computes from tokens."""

from __future__ import annotations

import numpy as np

from dialects.numerics.formats import ieee_arithmetic

KVGEN_CHUNK = 64
"""Hidden elements the K/V-generation array reduces per accumulation step."""


@ieee_arithmetic
def kv_rows(x: np.ndarray, w: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
    """K/V generation: ``init + x . W`` as fp32, reduced over the hidden dimension in steps of `KVGEN_CHUNK`.

    ``x`` is ``[rows, H]``, ``w`` ``[H, cols]`` and ``init`` broadcastable to
    ``[rows, cols]`` (the bias, or the partial sums of earlier hidden columns;
    None is zero). Each step's dot products are exact-ish fp64 sums rounded
    to fp32 and added to an fp32 accumulator, so a program that splits H into
    chunks starting at multiples of `KVGEN_CHUNK` gets the same bits as one
    pass over all of H.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    rows, hidden = x.shape
    acc = np.zeros((rows, w.shape[1]), np.float32)
    if init is not None:
        acc += np.asarray(init, np.float32)
    for start in range(0, hidden, KVGEN_CHUNK):
        stop = min(start + KVGEN_CHUNK, hidden)
        step = x[:, start:stop].astype(np.float64) @ w[start:stop].astype(np.float64)
        acc += step.astype(np.float32)
    return acc
