"""ONNX's own `Attention` conformance cases, node and `_expanded`, through compile(keep=1.0).run().

The cases come from onnx's backend test generators (`onnx.backend.test.case.node.attention`):
the installed onnx wheel has the generators but not the `data/node/test_attention_*` directories,
and the generators give the same models, inputs and expected outputs. Tolerances are the case's
own (onnx's backend runner: rtol=1e-3, atol=1e-7 unless the case says otherwise), except for
bfloat16 outputs (`BF16_RTOL`); each output must also have the element type the case expects.

Every case runs (none waits for a later issue); the
ones that fail today are strict xfails naming why, so a fix shows up as an XPASS to remove.
A summary line `N passed, N failed, N on accelerator, N on host` ends the module's run
(where attention ran, counted over the passing cases). Every case's attention must run on the accelerator:
masks of every form (run-time additive masks as launch-built index lists plus bias tiles, boolean masks,
opset 25 windows, KV caches) and softcap. With the qk_matmul_output output, Y runs on the accelerator and host
ops compute the scores beside it (the placement says so). An `_expanded` case reaches the accelerator as its
node form does (`test_node_and_expanded_agree`).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx.backend.test.case.test_case import TestCase

import sofa_compiler
from dialects.host import ConstantOp
from dialects.sofa import AttentionOp
from sofa_compiler.frontend.importer import import_model
from sofa_compiler.frontend.placement import read_placements

KNOWN: dict[str, str] = {}
"""Cases that fail today, with the reason (strict xfail)."""

BF16_RTOL = 2 * float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps)
"""rtol for bfloat16 outputs: two bf16 ulps (2^-6), where the cases ask for 1e-3, less than one.

onnx's reference computes in bf16 and rounds after each step (Q and K times the rounded
sqrt(scale), Q·Kᵀ, the softmax, P·V); the accelerator kernel (and the host's f32 fallback for
masks it cannot take) computes in f32 from the exact bf16 inputs and rounds once, at the output.
The two differ by up to 2 bf16 ulps on these cases. (f16 needs no such allowance: one f16 ulp
is below 1e-3 relative, and the f16 cases agree to one ulp.)"""


def attention_cases() -> list[TestCase]:
    """Every `test_attention_*` case onnx's generators define (about a second to build)."""
    cases = importlib.import_module("onnx.backend.test.case.node")
    previous = cases._TargetOpType
    cases._TargetOpType = "Attention"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importlib.import_module("onnx.backend.test.case.node.attention")
    finally:
        cases._TargetOpType = previous
    return [case for case in cases._NodeTestCases if case.name.startswith("test_attention_")]


def opset(model: onnx.ModelProto) -> int:
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def case_param(case: TestCase) -> object:
    assert case.model is not None
    if case.name in KNOWN:
        return pytest.param(case, id=case.name, marks=pytest.mark.xfail(strict=True, reason=KNOWN[case.name]))
    return pytest.param(case, id=case.name)


CASES = attention_cases()
NAMES = frozenset(case.name for case in CASES)


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[dict[str, int]]:
    counts = {"passed": 0, "failed": 0, "on accelerator": 0, "on host": 0}
    yield counts
    line = ", ".join(f"{count} {what}" for what, count in counts.items())
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            reporter.ensure_newline()
            reporter.write_line(f"ONNX Attention conformance: {line}")


def run_case(case: TestCase, counts: dict[str, int]) -> None:
    assert case.model is not None
    assert case.data_sets
    inputs, expected = case.data_sets[0]
    names = [value.name for value in case.model.graph.input]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # host fallbacks warn; the numbers decide here
        compiled = sofa_compiler.compile(case.model, keep=1.0)
    outputs, _ = compiled.run(dict(zip(names, inputs, strict=True)))
    actual = [outputs[value.name] for value in case.model.graph.output]
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        assert got.dtype == want.dtype
        if want.dtype == ml_dtypes.bfloat16:
            got, want, rtol = got.astype(np.float32), want.astype(np.float32), max(case.rtol, BF16_RTOL)
        else:
            rtol = case.rtol
        np.testing.assert_allclose(got, want, rtol=rtol, atol=case.atol)
    # The placement line is honest: accelerator exactly when a kernel runs it (a host fallback says why).
    (placement,) = compiled.placements
    assert (placement.host_reason is None) == bool(compiled.programs), placement.line()
    assert placement.host_reason is not None or placement.kernel in compiled.programs
    # Every case's attention runs on the accelerator: masks of every form (additive, boolean, windows,
    # caches), softcap, and Y beside a qk_matmul_output computed by host ops.
    assert compiled.programs, placement.line()
    if len(case.model.graph.output) > 1 and case.model.graph.output[-1].name == "qk_matmul_output":
        # Honest placement: the scores never leave the accelerator, so host ops compute that output.
        assert placement.note is not None, placement.line()
    counts["on accelerator" if compiled.programs else "on host"] += 1


@pytest.mark.parametrize("case", [case_param(case) for case in CASES])
def test_attention_conformance(case: TestCase, tally: dict[str, int]) -> None:
    try:
        run_case(case, tally)
    except BaseException:
        tally["failed"] += 1
        raise
    tally["passed"] += 1


def test_every_onnx_attention_case_is_collected() -> None:
    """The generators still define the cases this module names (a renamed case would silently drop out)."""
    names = {case.name for case in CASES}
    assert len(names) == len(CASES) > 150
    assert set(KNOWN) <= names


HALF_PRECISION = sorted(
    case.name for case in CASES if case.name.endswith(("_fp16", "_bf16")) and f"{case.name}_expanded" in NAMES
)


@pytest.mark.parametrize("name", HALF_PRECISION)
def test_node_and_expanded_scale_agree(name: str) -> None:
    """In f16 and bf16 the spec rounds sqrt(scale) to Q's type: the node and its function body get the same scale."""
    cases = {case.name: case for case in CASES}
    scales = []
    for model in (cases[name].model, cases[f"{name}_expanded"].model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = import_model(model)
        scales += [op.scale.value.data for op in module.walk() if isinstance(op, AttentionOp)]
    node, expanded = scales
    assert node == expanded
    assert node != pytest.approx(1 / np.sqrt(8), rel=1e-6)  # rounded: head size 8, no scale attribute


def attention_operands(model: onnx.ModelProto) -> tuple[list[str | None], list[tuple[object, ...]]]:
    """The host reasons of a model's placements and, per `sofa.attention`, what the accelerator is given:
    the scale, and the visible keys of a constant mask (the causal flag applied), else the causal flag and
    the mask's element type and shape."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = import_model(model)
    reasons = [placement.host_reason for placement in read_placements(module, [])]
    operands: list[tuple[object, ...]] = []
    for op in module.walk():
        if not isinstance(op, AttentionOp):
            continue
        scale, causal = pytest.approx(op.scale.value.data, rel=1e-6), op.causal is not None
        mask = op.mask
        if mask is not None and isinstance(mask.owner, ConstantOp):
            batch, heads, q_length, _ = op.q.type.get_shape()  # pyright: ignore
            value = mask.owner.to_array()
            visible = value if value.dtype == np.bool_ else value > -np.inf
            visible = np.broadcast_to(visible, (batch, heads, q_length, visible.shape[-1]))
            if causal:
                visible = visible & np.tri(q_length, visible.shape[-1], dtype=bool)
            operands.append((scale, "constant", visible.tolist()))
        elif mask is not None:
            operands.append((scale, causal, str(mask.type.get_element_type()), mask.type.get_shape()))  # pyright: ignore
        else:
            operands.append((scale, causal, None))
    return reasons, operands


EXPANDED_PAIRS = sorted(name for name in NAMES if f"{name}_expanded" in NAMES)


@pytest.mark.parametrize("name", EXPANDED_PAIRS)
def test_node_and_expanded_agree(name: str) -> None:
    """An `_expanded` case gives the accelerator what its node form gives it (or runs on the host for the same reason).

    ONNX's function body adds one float bias before the Softmax (a boolean mask as Where(mask, 0, -inf), the
    causal triangle, the window); the front end takes it apart again (`frontend.core_masks`).
    """
    cases = {case.name: case for case in CASES}
    node_form = attention_operands(cases[name].model)
    assert attention_operands(cases[f"{name}_expanded"].model) == node_form


WINDOW_ON_ACCELERATOR = sorted(
    f"test_attention_{name}{suffix}"
    for name in (
        "local_window",
        "bidirectional_window",
        "local_window_default",
        "local_window_with_past",
        "3d_local_window",
    )
    for suffix in ("", "_expanded")
)
"""Opset 25's sliding-window cases whose mask is known when the model is compiled (the window alone, or over
past keys): the front end gives the accelerator the window as a constant mask. (The other window cases feed
attn_mask or nonpad_kv_seqlen at run time, or use softcap.)"""


@pytest.mark.parametrize("name", WINDOW_ON_ACCELERATOR)
def test_sliding_window_runs_on_the_accelerator(name: str) -> None:
    (case,) = [case for case in CASES if case.name == name]
    assert case.model is not None
    assert opset(case.model) == 25
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = sofa_compiler.compile(case.model, keep=1.0)
    (placement,) = compiled.placements
    assert placement.host_reason is None, placement.line()
    assert compiled.programs
