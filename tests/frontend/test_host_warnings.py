"""Attention that cannot go to the accelerator says which node and why; a keep ratio with no kernel warns."""

from __future__ import annotations

import warnings

import onnx
import pytest

import sofa_compiler
from sofa_compiler.driver import CompileWarning
from sofa_compiler.frontend import FrontendWarning
from tests.frontend.frontend_harness import FIXTURES


def compile_recording(name: str, keep: float) -> tuple[sofa_compiler.CompiledModel, list[str], list[str]]:
    """The compiled fixture, its front-end warnings and its compile warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = sofa_compiler.compile(onnx.load(str(FIXTURES / f"{name}.onnx")), keep=keep)
    front = [str(w.message) for w in caught if issubclass(w.category, FrontendWarning)]
    driver = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
    return compiled, front, driver


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("torch_sdpa_mask", "the attention pattern ending at MatMul node '/MatMul_1'"),
        ("attn24_float_mask_3d", "Attention node 'attention'"),
    ],
)
def test_general_mask_warns_with_node_and_reason(name: str, subject: str) -> None:
    compiled, front, driver = compile_recording(name, keep=0.5)
    assert not compiled.programs
    assert front == [
        f"{subject}: general attention masks run on the host (the accelerator supports causal and padding masks)"
    ]
    assert driver == ["no attention runs on the accelerator, so keep=0.5 has no effect (the warnings above say why)"]


def test_exact_attention_on_the_host_is_not_a_keep_warning() -> None:
    _, front, driver = compile_recording("torch_sdpa_mask", keep=1.0)
    assert len(front) == 1
    assert driver == []


@pytest.mark.parametrize("name", ["torch_gpt2", "torch_bert", "torch_sdpa_causal"])
def test_accelerated_attention_warns_nothing(name: str) -> None:
    compiled, front, driver = compile_recording(name, keep=0.5)
    assert compiled.programs
    assert front == []
    assert driver == []
