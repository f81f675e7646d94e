"""The ONNX front end: ONNX models to `func` + `sofa` + `host` IR.

    module = import_model("model.onnx")

Every attention core (the standard `Attention` operator, or the
MatMul-Softmax-MatMul chain exporters write) becomes `sofa.attention`; the
rest of the graph stays on the host as `host` ops with numpy implementations.
"""

from sofa_compiler.frontend.errors import FrontendError, FrontendWarning
from sofa_compiler.frontend.importer import MAX_OPSET, MIN_OPSET, import_model

__all__ = ["MAX_OPSET", "MIN_OPSET", "FrontendError", "FrontendWarning", "import_model"]
