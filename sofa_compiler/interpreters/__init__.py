"""Interpreter implementations for running SOFA IR with xDSL's `Interpreter`.

`register_all` is the one place that decides which implementations a run
gets: the upstream xDSL ones our IR uses plus the SOFA dialects' own.
"""

import importlib
import importlib.util

from xdsl.interpreter import Interpreter
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.builtin import BuiltinFunctions
from xdsl.interpreters.func import FuncFunctions
from xdsl.interpreters.scf import ScfFunctions

# (module, class) of the SOFA implementations. They are looked up with
# `find_spec`, so the runner works while a dialect's interpreter is not
# written yet; once the module exists, its import errors surface normally.
_SOFA_FUNCTIONS = (
    ("sofa_compiler.interpreters.sofa", "SofaFunctions"),
    ("sofa_compiler.interpreters.sofa_isa", "SofaISAFunctions"),
)


def register_all(interpreter: Interpreter) -> None:
    """Register the upstream (func, arith, builtin, scf) and SOFA implementations."""
    interpreter.register_implementations(FuncFunctions())
    interpreter.register_implementations(ArithFunctions())
    interpreter.register_implementations(BuiltinFunctions())
    # scf.for/if: the tiled lowering of the stage ops loops over tiles.
    interpreter.register_implementations(ScfFunctions())
    for module_name, class_name in _SOFA_FUNCTIONS:
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        interpreter.register_implementations(getattr(module, class_name)())
