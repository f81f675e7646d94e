"""What the whole-row baselines compute: exact attention over each row's top ceil(k * valid) predicted keys.

The priced phase programs count work; this is their functional side, so that a
comparison can put accuracy beside cost where the pipelines select
differently (whole-row top-k here, per-tile SADS in SOFA).
"""

from __future__ import annotations

import numpy as np

from dialects import numerics
from sofa_compiler.baselines.rows import Rows


def row_topk_bias(scores: np.ndarray, rows: Rows) -> np.ndarray:
    """0 where a row keeps a key (its `rows.kept` best valid predicted scores), -inf elsewhere.

    ``scores`` is one head's A-hat ``[q_len, kv_len]``; keys past a row's valid
    length (causal) are never kept. Ties go to the lower key index.
    """
    bias = np.full(scores.shape, -np.inf)
    for row, (valid, kept) in enumerate(zip(rows.valid, rows.kept, strict=True)):
        candidates = np.asarray(scores[row, :valid], np.float64)
        chosen = np.argsort(-candidates, kind="stable")[:kept]
        bias[row, chosen] = 0.0
    return bias


def row_topk_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, rows: Rows, predictor: str, scale: float
) -> np.ndarray:
    """One head's output ``[q_len, dv]`` (fp32): ``predictor``'s A-hat (``dlzs``, ``mul4`` or ``exact``),
    each row's top keys by `rows`, then exact softmax attention over them."""
    scores = numerics.predict_scores(predictor, q[None, None], k[None, None])[0, 0]
    bias = row_topk_bias(scores, rows)
    return numerics.dense_attention(q[None, None], k[None, None], v[None, None], bias, scale)[0, 0]
