"""Every fixture, imported and run by the interpreter (keep ratio 1), equals onnxruntime within 1e-4."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from frontend_harness import FIXTURES, compare, max_relative_error, random_inputs, run_interpreter
from onnx.reference import ReferenceEvaluator

from sofa_compiler.frontend import import_model

TOLERANCE = 1e-4

RUNNABLE = sorted(
    path.stem
    for path in FIXTURES.glob("*.onnx")
    # Rejected on purpose (see test_errors.py); the short mask is checked against the reference below.
    if not path.stem.startswith("bad_") and path.stem != "attn24_short_mask"
)


def test_fixture_set_is_complete():
    expected = {
        "attn23_mha_4d",
        "attn23_gqa_3d_causal",
        "attn24_mqa_3d_scale",
        "attn23_bool_mask_2d",
        "attn24_float_mask_3d",
        "attn24_bool_mask_4d_causal",
        "attn24_past_causal",
        "attn23_past_3d_mask",
        "attn24_qk_mode_unused",
        "attn24_qk_output",
        "attn24_softcap",
        "attn24_projection",
        "torch_sdpa",
        "torch_sdpa_causal",
        "torch_sdpa_mask",
        "torch_mha",
        "torch_bert",
        "torch_gpt2",
    }
    assert set(RUNNABLE) == expected


@pytest.mark.parametrize("name", RUNNABLE)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_onnxruntime(name: str, seed: int):
    errors = compare(FIXTURES / f"{name}.onnx", seed)
    assert max(errors) < TOLERANCE, errors


def test_short_mask_matches_onnx_reference():
    # onnxruntime rejects an attn_mask shorter than the KV length; the spec pads it with "masked".
    model = onnx.load(str(FIXTURES / "attn24_short_mask.onnx"))
    inputs = random_inputs(model)
    (expected,) = ReferenceEvaluator(model).run(None, inputs)
    (actual,) = run_interpreter(import_model(model), inputs)
    assert max_relative_error(expected, actual) < TOLERANCE


def test_comparison_can_fail():
    # The harness sees a wrong answer: perturb one weight of the BERT block.
    model = onnx.load(str(FIXTURES / "torch_bert.onnx"))
    inputs = random_inputs(model)
    module = import_model(model)
    good = run_interpreter(module, inputs)[0]
    inputs["x"] = inputs["x"] + np.float32(1e-2)
    assert max_relative_error(good, run_interpreter(module, inputs)[0]) > TOLERANCE
