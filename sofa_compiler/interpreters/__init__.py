"""Interpreter implementations for running SOFA IR with xDSL's `Interpreter`.

`register_all` is the one place that decides which implementations a run
gets: the upstream xDSL ones our IR uses plus the SOFA dialects' own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xdsl.interpreter import Interpreter
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.builtin import BuiltinFunctions
from xdsl.interpreters.func import FuncFunctions
from xdsl.interpreters.scf import ScfFunctions

from sofa_compiler.interpreters.host import HostFunctions, PartitionSessions
from sofa_compiler.interpreters.sofa import SofaFunctions
from sofa_compiler.interpreters.sofa_isa import SofaISAFunctions

if TYPE_CHECKING:
    from sofa_compiler.sim.trace import Timeline


def register_all(
    interpreter: Interpreter,
    sessions: PartitionSessions | None = None,
    *,
    isa: bool = True,
    timeline: Timeline | None = None,
) -> None:
    """Register the upstream (func, arith, builtin, scf) and SOFA implementations.

    `sessions` holds the onnxruntime sessions of the module's host partitions;
    without it, each is made on first use by this interpreter. ``isa=False``
    leaves out `sofa_isa` (its machine allocates the whole SRAM): for modules
    that hold no `sofa_isa` ops, such as a compiled model's host code.
    `timeline`, where given, records each host partition run (for a model trace).
    """
    interpreter.register_implementations(FuncFunctions())
    interpreter.register_implementations(ArithFunctions())
    interpreter.register_implementations(BuiltinFunctions())
    # scf.for/if: the tiled lowering of the stage ops loops over tiles.
    interpreter.register_implementations(ScfFunctions())
    interpreter.register_implementations(SofaFunctions())
    interpreter.register_implementations(HostFunctions(sessions, timeline))
    if isa:
        interpreter.register_implementations(SofaISAFunctions())
