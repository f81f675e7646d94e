"""IEEE semantics of non-finite values (issue 20, finding 4).

At keep 1.0 NaN and infinities in Q, K and V reach the outputs as they do in
onnxruntime's fp32 attention, position for position, wherever every key that
holds one is visible to every query (no mask; causal with the value in key 0
or in Q): a selected score of NaN or +inf makes its row NaN, a dot product
past fp32's range is infinite, NaN and inf in V reach the output through the
weighted sum. The compiled kernels on the simulator equal the tiled `sofa` IR
run by the interpreter bit for bit (NaN for NaN). At keep < 1 prediction keeps
NaN and infinities in fp16 storage and SADS ranks NaN as +inf, so a key whose
score is NaN or +inf is always kept (docs/isa.md, "Non-finite values").
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_compiled_properties import attention_layer, targets, tiled_ir_outputs

from dialects import numerics
from sofa_compiler.driver import compile_model

IEEE_EXAMPLES = int(os.environ.get("IEEE_EXAMPLES", "60"))
SPECIALS = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e19}


@st.composite
def poisoned_layers(draw: st.DrawFn) -> dict:
    causal = draw(st.booleans())
    tensor = draw(st.sampled_from(["q", "k", "v"]))
    special = draw(st.sampled_from(sorted(SPECIALS)))
    return dict(
        batch=1,
        kv_heads=1,
        heads=draw(st.integers(1, 2)),
        sq=draw(st.sampled_from([1, 5, 16, 33])),
        skv=draw(st.sampled_from([5, 16, 23, 40])),
        depth=draw(st.sampled_from([4, 8])),
        vdepth=4,
        mask="causal" if causal else "none",
        tile=draw(st.sampled_from([None, 4, 8])),
        keep=draw(st.sampled_from([1.0, 1.0, 0.5, 0.25])),
        target="sofa-small",
        seed=draw(st.integers(0, 2**32 - 1)),
        tensor=tensor,
        special=special,
        # Causal: only key 0 is visible to every query; onnxruntime's additive mask lets hidden keys' NaN through.
        key=0 if causal and tensor != "q" else draw(st.integers(0, 39)),
        column=draw(st.integers(0, 3)),
    )


def poisoned_inputs(c: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(c["seed"])
    inputs = {
        "q": rng.standard_normal((1, c["heads"], c["sq"], c["depth"])).astype(np.float32),
        "k": rng.standard_normal((1, 1, c["skv"], c["depth"])).astype(np.float32),
        "v": rng.standard_normal((1, 1, c["skv"], c["vdepth"])).astype(np.float32),
    }
    tensor = inputs[c["tensor"]]
    if c["special"] == "huge":
        # One dot product past fp32's range (+-inf in onnxruntime's fp32 product): every term has one sign,
        # so it overflows in any summation order; -inf weighs zero, +inf makes the row NaN.
        sign = 1.0 if c["column"] % 2 else -1.0
        inputs["q"][0, -1, c["column"] % c["sq"], :] = np.float32(1e19)
        inputs["k"][0, 0, c["key"] % c["skv"], :] = np.float32(sign * 1e19)
    else:
        tensor[0, -1, c["key"] % tensor.shape[2], c["column"]] = SPECIALS[c["special"]]
    return inputs


def onnxruntime_output(c: dict, inputs: dict[str, np.ndarray]) -> np.ndarray:
    session = onnxruntime.InferenceSession(attention_layer(c).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def assert_same_non_finite(actual: np.ndarray, expected: np.ndarray) -> None:
    for kind in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(kind(actual), kind(expected), err_msg=kind.__name__)


@settings(
    max_examples=IEEE_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(poisoned_layers())
def test_non_finite_values_propagate_as_onnxruntime(c: dict) -> None:
    compiled = compile_model(attention_layer(c), target=targets()[c["target"]], keep=c["keep"], tile=c["tile"])
    inputs = poisoned_inputs(c)
    with np.errstate(all="raise"):  # no numpy warning: every non-finite step is explicit
        outputs, _ = compiled.run(inputs)
        interpreted = tiled_ir_outputs(compiled.ir("tiled"), tuple(inputs[n] for n in compiled.input_names()))
    np.testing.assert_array_equal(outputs["y"], interpreted)
    # Under the causal mask onnxruntime fills hidden keys with a finite lowest: an inf in Q meets them, and a
    # row whose visible scores are all -inf (inf in key 0, or its overflow) averages them: not compared.
    hidden_fill = c["mask"] == "causal" and (c["special"] == "huge" or (c["tensor"] in "qk" and "inf" in c["special"]))
    if c["special"] == "huge":
        # fp16 storage saturates 1e19 at 65504, so no dot product can pass fp32's range on the
        # accelerator (onnxruntime's does): the output stays finite (docs/isa.md, "Numerics").
        assert np.isfinite(outputs["y"]).all()
    elif not hidden_fill and (c["keep"] == 1.0 or (c["tensor"] in "qk" and c["special"] == "nan")):
        # At keep < 1 a NaN score is still always kept: NaN in Q or K poisons the same rows.
        assert_same_non_finite(outputs["y"], onnxruntime_output(c, inputs))


def test_fp16_storage_keeps_nan_and_infinities_and_saturates_finite_values():
    values = np.array([np.nan, np.inf, -np.inf, 1e6, -1e6, 1.5])
    stored = numerics.to_fp16_saturating(values)
    np.testing.assert_array_equal(stored, [np.nan, np.inf, -np.inf, numerics.FP16_MAX, -numerics.FP16_MAX, 1.5])


@pytest.mark.parametrize("as_fp16", [False, True], ids=["fp64", "fp16"])
def test_sads_ranks_nan_as_plus_inf_and_never_selects_minus_inf(as_fp16: bool):
    """Both of SADS's sort paths (fp16 scores in SRAM, fp64 from the interpreter) give one order."""
    scores = np.array([[1.0, np.nan, 3.0, -np.inf, np.inf, 2.0], [-np.nan, 0.0, 1.0, 2.0, 3.0, -np.inf]])
    if as_fp16:
        scores = scores.astype(np.float16)
    valid = np.ones(scores.shape, dtype=bool)
    kept = numerics.sads_tile(scores, valid, 6, np.inf)
    np.testing.assert_array_equal(kept, [[1, 4, 2, 5, 0, -1], [0, 4, 3, 2, 1, -1]])
    # A finite radius clips below the largest score that is a number; NaN stays inside.
    np.testing.assert_array_equal(numerics.sads_tile(scores, valid, 3, 1.5), [[1, 4, -1], [0, 4, 3]])


@pytest.mark.parametrize("predictor", ["dlzs", "exact"])  # mul4 quantises an infinite row to NaN
def test_a_key_predicted_minus_inf_ranks_last_but_still_reaches_sufa(predictor: str):
    """SADS never selects -inf (the baseline's top-k writes it for "not kept"), so prediction gives an
    arithmetic -inf as the lowest finite value: at keep 1.0 a row whose keys are all -inf reaches SU-FA."""
    q = np.array([[-np.inf, 1.0], [1.0, 1.0]])
    k = np.array([[1.0, 0.5], [2.0, -1.0], [0.5, 2.0]])
    scores = numerics.predict_scores(predictor, q, k)
    assert np.isfinite(scores).all()
    assert (scores[0] == scores.min()).all()
    kept = numerics.sads_tile(scores, np.ones(scores.shape, dtype=bool), 3, np.inf)
    np.testing.assert_array_equal(np.sort(kept[0]), [0, 1, 2])


def test_sufa_poisons_rows_whose_largest_selected_score_is_nan_or_plus_inf():
    q = np.ones((3, 2))
    k = np.array([[1.0, 1.0], [np.inf, 0.0], [np.nan, 0.0], [-np.inf, 0.0]])
    v = np.arange(8.0).reshape(4, 2)
    slots = np.array([[0, 3], [0, 1], [2, 0]])
    with np.errstate(all="raise"):
        state = numerics.sufa_accumulate(
            numerics.SufaState.empty(3, 2), numerics.sufa_tile_step(q, k, v, slots, None, 1.0)
        )
        out = numerics.sufa_finish(state)
    np.testing.assert_array_equal(out[0], v[0])  # -inf has weight 0 (its V is finite)
    assert np.isnan(out[1:]).all()


def sufa_rows(q, k, v, tiles: list[tuple[np.ndarray, np.ndarray | None]]) -> np.ndarray:
    """SU-FA over `tiles` of (slots, bias) on one window, merged and normalised."""
    state = numerics.SufaState.empty(len(q), v.shape[1])
    with np.errstate(all="raise"):
        for slots, bias in tiles:
            state = numerics.sufa_accumulate(state, numerics.sufa_tile_step(q, k, v, slots, bias, 1.0))
        return numerics.sufa_finish(state)


def test_sufa_rows_whose_scores_are_all_minus_inf_by_arithmetic_are_nan_and_masked_rows_zero():
    """onnxruntime's softmax of a row of -inf scores is NaN (-inf - -inf); a row no key reaches (every
    slot empty or masked by a -inf bias) is zero, as sofa.attention specifies for fully masked rows."""
    q = np.array([[-np.inf, 0.0], [1.0, 1.0], [1.0, 1.0], [-np.inf, 0.0]])
    k = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])  # row 0's scores: all -inf
    v = np.arange(6.0).reshape(3, 2)
    slots = np.array([[0, 1], [-1, -1], [0, 2], [0, 2]])
    bias = np.array([[0.0, 0.0], [-np.inf, -np.inf], [-np.inf, -np.inf], [-np.inf, 0.0]])
    out = sufa_rows(q, k, v, [(slots, None)])
    assert np.isnan(out[0]).all()
    assert np.isnan(out[3]).all()
    np.testing.assert_array_equal(out[1], [0.0, 0.0])  # no key selected
    out = sufa_rows(q, k, v, [(slots, bias)])
    np.testing.assert_array_equal(out[1:3], np.zeros((2, 2)))  # every selected key masked
    assert np.isnan(out[0]).all()
    assert np.isnan(out[3]).all()  # key 2 is unmasked in row 3, its score -inf
    # A tile of -inf scores followed by a tile with a finite score: the -inf ones weigh zero, as in one softmax.
    later = np.array([[-1, -1], [-1, -1], [-1, -1], [-1, -1]])
    q2 = np.array([[1e30, 1.0]] * 4)
    k2 = np.array([[-1e30, 0.0], [0.0, 1.0]])  # key 0: -1e60 overflows fp32 to -inf; key 1: 1.0
    out = sufa_rows(q2, k2, v[:2], [(np.array([[0, -1]] * 4), None), (np.array([[1, -1]] * 4), None), (later, None)])
    np.testing.assert_array_equal(out, np.tile(v[1], (4, 1)).astype(np.float32))


@pytest.mark.parametrize("how", ["inf-in-q", "overflow"])
@pytest.mark.parametrize("mask", ["none", "causal"])
def test_compiled_rows_whose_scores_are_all_minus_inf_are_nan_as_in_onnxruntime(how: str, mask: str):
    """Row 2's scores are all -inf by an infinity in Q (predicted -inf too): the kernel, the interpreter and
    onnxruntime agree position for position. By fp32 overflow they are not -inf here: fp16 saturates."""
    c = dict(batch=1, kv_heads=1, heads=1, sq=6, skv=9, depth=4, vdepth=4, mask=mask, tile=4, keep=1.0)
    rng = np.random.default_rng(5)
    inputs = {
        name: rng.standard_normal((1, 1, c[size], 4)).astype(np.float32)
        for name, size in zip("qkv", ["sq", "skv", "skv"])
    }
    if how == "inf-in-q":
        inputs["q"][0, 0, 2, 0] = -np.inf
        inputs["k"][0, 0, :, 0] = np.abs(inputs["k"][0, 0, :, 0]) + 0.5
    else:
        inputs["q"][0, 0, 2, :] = np.float32(1e19)
        inputs["k"][0, 0, :, :] = -np.abs(inputs["k"][0, 0, :, :]) - np.float32(1e19)
    compiled = compile_model(attention_layer(c), target=targets()["sofa-small"], keep=1.0, tile=c["tile"])
    with np.errstate(all="raise"):
        outputs, _ = compiled.run(inputs)
        interpreted = tiled_ir_outputs(compiled.ir("tiled"), tuple(inputs[n] for n in compiled.input_names()))
    np.testing.assert_array_equal(outputs["y"], interpreted)
    if how == "overflow":
        # fp16 storage saturates 1e19 at 65504, so the scores stay finite on the accelerator where
        # onnxruntime's fp32 ones overflow to -inf (docs/isa.md, "Numerics"): a finite row by design.
        assert np.isfinite(outputs["y"]).all()
        return
    assert np.isnan(outputs["y"][0, 0, 2]).all()
    if mask == "none":  # causal with inf in Q: hidden keys reach onnxruntime (docs/isa.md)
        assert_same_non_finite(outputs["y"], onnxruntime_output(c, inputs))


@pytest.mark.parametrize(
    ("key", "status", "counted"),
    [(0, 0, "non-finite values: 40 NaN"), (3, 3, "non-finite values: 28 NaN, onnxruntime: 40 NaN")],
    ids=["visible-key", "hidden-key"],
)
def test_sofa_run_reports_non_finite_outputs_and_fails_when_they_differ(tmp_path, capfd, key, status, counted):
    """NaN in a key every query sees matches onnxruntime (status 0); in a key the causal mask hides from the
    first rows, onnxruntime's additive mask still spreads it (NaN + -inf), ours does not: status 3."""
    from sofa_compiler.tools import sofa_run

    layer = dict(batch=1, kv_heads=1, heads=1, sq=10, skv=10, depth=4, vdepth=4, mask="causal")
    model = tmp_path / "layer.onnx"
    model.write_bytes(attention_layer(layer).SerializeToString())
    rng = np.random.default_rng(1)
    inputs = {name: rng.standard_normal((1, 1, 10, 4)).astype(np.float32) for name in "qkv"}
    inputs["k"][0, 0, key, 2] = np.nan
    np.savez(tmp_path / "inputs.npz", **inputs)
    assert sofa_run.main([str(model), "--inputs", str(tmp_path / "inputs.npz"), "--keep", "1.0"]) == status
    out, err = capfd.readouterr()
    assert counted in out
    assert "RuntimeWarning" not in err
    assert ("differ from onnxruntime's" in err) == bool(status)


def test_no_numpy_warning_reaches_stderr(tmp_path):
    """A real process (pytest's own warning capture would hide them in-process): NaN and inf inputs, no
    ``RuntimeWarning`` line naming our source files."""
    import subprocess
    import sys

    layer = dict(batch=1, kv_heads=1, heads=1, sq=6, skv=6, depth=4, vdepth=4, mask="none")
    model = tmp_path / "layer.onnx"
    model.write_bytes(attention_layer(layer).SerializeToString())
    rng = np.random.default_rng(2)
    inputs = {name: rng.standard_normal((1, 1, 6, 4)).astype(np.float32) for name in "qkv"}
    inputs["q"][0, 0, 2, 1] = np.nan
    inputs["v"][0, 0, 3, 0] = np.inf
    np.savez(tmp_path / "inputs.npz", **inputs)
    done = subprocess.run(
        [sys.executable, "-m", "sofa_compiler.tools.sofa_run", str(model), "--inputs", str(tmp_path / "inputs.npz")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr
