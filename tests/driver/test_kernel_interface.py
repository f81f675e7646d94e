"""The kernels' DRAM interface (`passes.kernel_interface`) and the lowering's register roles.

The lowering lays kernels out from the interface and the runtime reads the
kernel kind back from a program's symbols through it, so a compiled program
of each kind must be recognised as that kind, take the operands it declares
and be staged exactly its input symbols.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

import numpy as np
import pytest

from passes.kernel_interface import PRIVATE_SYMBOLS, KernelInterface, KernelKind, Operand, SymbolKind
from passes.lower_to_isa.registers import CoordinatedReg, Reg, SeparateReg, check_allocation
from sofa_compiler.driver import compile_model
from sofa_compiler.runtime import KernelError, kernel_interface, kernel_operands, stage_attention_inputs

REPO = Path(__file__).resolve().parents[2]
PROJECTION = REPO / "tests" / "fixtures" / "attn24_projection.onnx"
LLAMA = REPO / "examples" / "llama_attention.onnx"


@pytest.mark.parametrize("kind", list(KernelKind))
def test_interface_is_recognised_from_its_symbols(kind: KernelKind):
    interface = KernelInterface(kind)
    symbols = {spec.name.value: spec.kind.value for spec in interface.symbols()}
    assert KernelInterface.of_symbols(symbols) == interface
    # Kernel-private symbols do not change the kind.
    assert KernelInterface.of_symbols({**symbols, **{s.value: "const" for s in PRIVATE_SYMBOLS}}) == interface


def test_unknown_symbol_set_is_rejected():
    with pytest.raises(ValueError, match="match no attention kernel"):
        KernelInterface.of_symbols({"q": "input", "o": "output"})


def test_every_input_names_its_operand_and_staging():
    for kind in KernelKind:
        interface = KernelInterface(kind)
        staged_from = {spec.operand for spec in interface.inputs()}
        assert staged_from == set(interface.operands)
        assert all(spec.staging is not None for spec in interface.inputs())
        assert [spec.kind for spec in interface.symbols()].count(SymbolKind.OUTPUT) == 1


@pytest.mark.parametrize(
    ("model", "options", "kind"),
    [
        (LLAMA, {"keep": 0.25}, KernelKind.PLAIN),
        (PROJECTION, {"keep": 0.25, "kv_generation": False}, KernelKind.ON_DEMAND),
        (PROJECTION, {"keep": 0.25}, KernelKind.GENERATING),
        (PROJECTION, {"keep": 0.25, "pipeline": "separate"}, KernelKind.PLAIN),
    ],
)
def test_compiled_programs_declare_their_kind(model: Path, options: dict, kind: KernelKind):
    program = next(iter(compile_model(model, **options).programs.values()))
    interface = kernel_interface(program)
    assert interface.kind is kind
    assert kernel_operands(program) == tuple(operand.value for operand in interface.operands)
    q_rows, depth = program.symbol("q").shape
    q = np.ones((1, 1, q_rows, depth), np.float32)
    if kind is KernelKind.PLAIN:
        k_rows = program.symbol("k").shape[0]
        kv = np.ones((1, 1, k_rows, depth), np.float32)
        staged = stage_attention_inputs(program, q, kv, np.ones((1, 1, k_rows, program.symbol("v").shape[1])))
        assert set(staged) == {spec.name.value for spec in interface.inputs()}
        with pytest.raises(KernelError, match="pass Q, K and V"):
            stage_attention_inputs(program, q, None, None)
    assert Operand.X in interface.operands or kind is KernelKind.PLAIN


def test_program_with_foreign_symbols_is_a_clear_error():
    program = next(iter(compile_model(LLAMA, keep=0.25).programs.values()))
    program.symbols = [symbol for symbol in program.symbols if symbol.name != "khat"]
    with pytest.raises(KernelError, match="match no attention kernel"):
        kernel_operands(program)


@pytest.mark.parametrize("mode", [CoordinatedReg, SeparateReg])
def test_register_roles_share_only_as_declared(mode: type[IntEnum]):
    check_allocation(mode)
    assert all(0 < int(member) for member in mode)


def test_silent_register_sharing_is_rejected():
    class Clashing(IntEnum):
        SCRATCH = int(Reg.KBASE)

    with pytest.raises(AssertionError, match="silently shares r5 with KBASE"):
        check_allocation(Clashing)
