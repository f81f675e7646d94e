"""The SOFA compiler: ONNX attention graphs to SOFA accelerator programs, and their simulator.

Python API (imported lazily, so that xDSL's plug-in discovery stays cheap)::

    import sofa_compiler
    model = sofa_compiler.compile("model.onnx", target="configs/sofa-28nm.toml", keep=0.25)
    outputs, report = model.run({"x": x})

A model with dynamic input dimensions needs them fixed:
``compile("model.onnx", input_shapes={"x": [1, 128, 768]})``.
"""

# No import here, not even `typing` (18 ms on a loaded machine): a console script imports this package
# first, and Ctrl-C is quiet only once `sofa_compiler.tools` has installed its loading-phase handler.
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["compile"]


def __getattr__(name: str) -> Any:
    if name == "compile":
        from sofa_compiler.driver import compile_model

        return compile_model
    raise AttributeError(f"module 'sofa_compiler' has no attribute '{name}'")
