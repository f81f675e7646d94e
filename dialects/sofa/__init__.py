"""The `sofa` dialect: tensor-level sparse attention and SOFA's three stages.

`sofa.attention` is what the front end produces; the stage ops spell out the
SOFA pipeline (arXiv 2407.10416). The attributes (`attrs`) carry the sparsity,
hardware target and tiling, the operations live in `ops`, and `checks` holds
the ranges of the sparsity knobs that every layer shares.
"""

from xdsl.ir import Dialect

from dialects.sofa.attrs import (
    DECODE_LOWERINGS,
    DECODE_TILE,
    PREDICTORS,
    SPARSE_DECODE,
    TARGET_CHOICES,
    TARGET_DEFAULTS,
    TILING_KEYS,
    TOPK_ENGINES,
    DecodeAttr,
    SparsityAttr,
    TargetAttr,
    TilingAttr,
)
from dialects.sofa.checks import (
    NO_RADIUS,
    PLAIN_SADS,
    far_problem,
    keep_problem,
    radius_problem,
    sphere_radius,
    tile_problem,
)
from dialects.sofa.mask_attrs import MASK_FORMATS, MASK_MAPPINGS, TileMaskAttr
from dialects.sofa.ops import (
    AttentionOp,
    DlzsKeyOp,
    DlzsScoreOp,
    KernelCallOp,
    KvProjectionOp,
    Mul4ScoreOp,
    SadsOp,
    SufaOp,
    WkToLzOp,
)
from dialects.sofa.verification import softcap_value

Sofa = Dialect(
    "sofa",
    [AttentionOp, KvProjectionOp, WkToLzOp, DlzsKeyOp, DlzsScoreOp, Mul4ScoreOp, SadsOp, SufaOp, KernelCallOp],
    [SparsityAttr, TargetAttr, TilingAttr, TileMaskAttr, DecodeAttr],
)

__all__ = [
    "DECODE_LOWERINGS",
    "DECODE_TILE",
    "MASK_FORMATS",
    "MASK_MAPPINGS",
    "NO_RADIUS",
    "PLAIN_SADS",
    "PREDICTORS",
    "SPARSE_DECODE",
    "TARGET_CHOICES",
    "TARGET_DEFAULTS",
    "TILING_KEYS",
    "TOPK_ENGINES",
    "AttentionOp",
    "DecodeAttr",
    "DlzsKeyOp",
    "DlzsScoreOp",
    "KernelCallOp",
    "KvProjectionOp",
    "Mul4ScoreOp",
    "SadsOp",
    "Sofa",
    "SparsityAttr",
    "SufaOp",
    "TargetAttr",
    "TileMaskAttr",
    "TilingAttr",
    "WkToLzOp",
    "far_problem",
    "keep_problem",
    "radius_problem",
    "softcap_value",
    "sphere_radius",
    "tile_problem",
]
