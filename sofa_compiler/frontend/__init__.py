"""The ONNX front end: ONNX models to `func` + `sofa` + `host` IR.

    module = import_model("model.onnx")

Every attention core (the standard `Attention` operator, or the
MatMul-Softmax-MatMul chain exporters write) becomes `sofa.attention`; every
maximal run of the other nodes becomes a `host.partition`, an ONNX subgraph
that onnxruntime runs (`partition.py`). Where each attention node runs is
recorded in the module (`placement.py`).
"""

from sofa_compiler.frontend.errors import FrontendError, FrontendWarning
from sofa_compiler.frontend.importer import MAX_OPSET, MIN_OPSET, import_model

__all__ = ["MAX_OPSET", "MIN_OPSET", "FrontendError", "FrontendWarning", "import_model"]
