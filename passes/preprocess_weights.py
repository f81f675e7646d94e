"""Offline weight preprocessing: W_k -> 4-bit LZ codes at compile time (paper §8, Fig. 16).

Every `sofa.wk_to_lz` whose weights are a compile-time constant is folded:
its codes become a `host.constant` of i8 codes and its shared exponent an
`arith.constant`, so nothing converts weights at run time and the codes can
be placed in the accelerator's DRAM image.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i32
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from dialects.host import ConstantOp
from dialects.numerics import wk_to_lz
from dialects.sofa import WkToLzOp


class FoldConstantWkToLz(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: WkToLzOp, rewriter: PatternRewriter) -> None:
        weights = op.weights.owner
        if not isinstance(weights, ConstantOp):
            return
        codes, base = wk_to_lz(weights.to_array())
        codes_op = ConstantOp.from_array(codes)
        base_op = arith.ConstantOp(IntegerAttr(base, i32))
        codes_op.result.name_hint = "wk_lz"
        base_op.result.name_hint = "wk_lz_base"
        rewriter.replace(op, [codes_op, base_op], [codes_op.result, base_op.result])


@dataclass(frozen=True)
class PreprocessWeightsPass(ModulePass):
    """Fold `sofa.wk_to_lz` of constant weights into constant LZ codes and exponent."""

    name = "sofa-preprocess-weights"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        walker = PatternRewriteWalker(GreedyRewritePatternApplier([FoldConstantWkToLz()]))
        walker.rewrite_module(op)
