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


def dense_reference(inputs: dict[str, np.ndarray], causal: bool, scale: float) -> np.ndarray:
    """Exact dense attention of ``q``, ``k``, ``v`` ``[1, heads, S, d]`` (upper-left causal or not), head by head."""
    q, k, v = (inputs[name] for name in ("q", "k", "v"))
    seq = q.shape[2]
    bias = np.where(np.tril(np.ones((seq, k.shape[2]), bool)), 0.0, -np.inf) if causal else np.zeros((seq, k.shape[2]))
    heads = [
        numerics.dense_attention(q[:, h : h + 1], k[:, h : h + 1], v[:, h : h + 1], bias, scale)
        for h in range(q.shape[1])
    ]
    return np.concatenate(heads, axis=1)


def row_topk_outputs(inputs: dict[str, np.ndarray], rows: Rows, predictor: str, scale: float) -> np.ndarray:
    """`row_topk_attention` on every head of ``q``, ``k``, ``v`` ``[1, heads, S, d]``."""
    q, k, v = (inputs[name][0] for name in ("q", "k", "v"))
    return np.stack([row_topk_attention(q[h], k[h], v[h], rows, predictor, scale) for h in range(q.shape[0])])[None]
