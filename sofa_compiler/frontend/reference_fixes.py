"""Operators of onnx's reference evaluator that constant folding replaces, each for a stated bug.

`loading.fold_constants` folds the nodes the host numpy table lacks with
`onnx.reference.ReferenceEvaluator`; these classes take the place of the
evaluator's own implementation of the same operator (its ``new_ops``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx.reference.op_run import OpRun


class GatherElements(OpRun):
    """onnx 1.23's GatherElements goes through ``np.choose``, which takes at most 32 choices; past
    that, for 2-D data, its fallback reads one element per row. BERT's token_type_ids buffer
    (``[1, max_positions]`` gathered along axis 1) is folded wrongly that way."""

    op_domain = ""

    def _run(self, data: np.ndarray, indices: np.ndarray, axis: int = 0) -> tuple[Any]:  # pyright: ignore[reportIncompatibleMethodOverride]
        axis = axis % data.ndim
        indices = np.where(indices < 0, indices + data.shape[axis], indices)
        return (np.take_along_axis(data, indices, axis=axis),)


REFERENCE_FIXES: list[type[OpRun]] = [GatherElements]
