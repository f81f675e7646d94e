"""`sofa-lower-to-isa`: a rewrite pattern per tiled attention, and the pass that applies it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import DiagnosticException

from dialects.host import ConstantOp
from dialects.numerics import MaskError, keep_count, tile_count
from dialects.sofa import (
    AttentionOp,
    DecodeAttr,
    DlzsKeyOp,
    DlzsScoreOp,
    KernelCallOp,
    KvProjectionOp,
    Mul4ScoreOp,
    SadsOp,
    SufaOp,
    TargetAttr,
    TilingAttr,
    softcap_value,
)
from dialects.sofa_isa import ProgramOp
from passes.coordinated_tiling import DECODE_ATTRIBUTE, attention_shape, attention_shape_of_sufa, module_target
from passes.kernel_interface import Operand
from passes.lower_to_isa.coordinated import CoordinatedKernel, LzWeights
from passes.lower_to_isa.decode import DecodeError, DecodeStep
from passes.lower_to_isa.decode_sparse import marked_decode_program
from passes.lower_to_isa.emitter import AttentionStep, Predictor
from passes.lower_to_isa.generation import KvGeneration, head_blocks
from passes.lower_to_isa.kernel import AttentionKernel
from passes.lower_to_isa.masked import MaskedKernel
from passes.lower_to_isa.separate import SeparateKernel
from passes.masked_attention import MaskedAttention
from passes.tile_plan import AttentionShape, PlanError, SramPlan, plan_generation, plan_separate_sram, plan_sram

KERNEL_PREFIX = "attn"
"""Programs are named ``attn0``, ``attn1``, ... in the order their attentions appear."""

PIPELINES = ("coordinated", "separate")
ATTENTION_STEPS = {"sufa": AttentionStep.SUFA, "fa2": AttentionStep.FA2}


@dataclass(frozen=True)
class TiledGroup:
    """A tiled `sofa.sufa` and the prediction and selection ops that feed it."""

    sufa: SufaOp
    select: SadsOp
    score: DlzsScoreOp | Mul4ScoreOp
    key: DlzsKeyOp | None
    """On demand: the op that predicts K-hat from the tokens."""

    @staticmethod
    def of(sufa: SufaOp) -> TiledGroup:
        select = sufa.indices.owner
        score = select.scores.owner if isinstance(select, SadsOp) else None
        if not isinstance(select, SadsOp) or not isinstance(score, DlzsScoreOp | Mul4ScoreOp):
            raise DiagnosticException("sofa.sufa with a tiling must consume sofa.sads of sofa.dlzs_score")
        key = score.khat.owner if isinstance(score, DlzsScoreOp) else None
        return TiledGroup(sufa, select, score, key if isinstance(key, DlzsKeyOp) else None)

    @property
    def tiling(self) -> TilingAttr:
        assert self.sufa.tiling is not None
        return self.sufa.tiling

    @property
    def predictor(self) -> Predictor:
        return Predictor.MUL4 if isinstance(self.score, Mul4ScoreOp) else Predictor.DLZS

    def shape(self) -> AttentionShape:
        shape = attention_shape_of_sufa(self.sufa, self.select)
        if self.key is None:
            return shape
        return replace(shape, hidden=self.key.x.type.get_shape()[2])  # pyright: ignore[reportAttributeAccessIssue]

    def lz_weights(self) -> LzWeights | None:
        if self.key is None:
            return None
        codes, base = self.key.codes.owner, self.key.base.owner
        if not isinstance(codes, ConstantOp) or not isinstance(base, arith.ConstantOp):
            raise DiagnosticException(
                "on-demand prediction needs compile-time LZ codes: run sofa-preprocess-weights before sofa-lower-to-isa"
            )
        value = base.value
        assert isinstance(value, IntegerAttr)
        return LzWeights(codes.to_array(), value.value.data)

    def constant_projection(self) -> KvProjectionOp | None:
        """The `sofa.kv_projection` that made the attention's K and V, if its weights and biases are constants."""
        sufa, projection = self.sufa, self.sufa.k.owner
        if not isinstance(projection, KvProjectionOp) or sufa.v is not projection.v or sufa.k is not projection.k:
            return None
        weights = [projection.w_k, projection.w_v] + [b for b in (projection.b_k, projection.b_v) if b is not None]
        if not all(isinstance(value.owner, ConstantOp) for value in weights):
            return None
        return projection

    def operand(self, operand: Operand) -> SSAValue:
        """The IR value a `sofa.kernel_call` passes for `operand`."""
        if operand is Operand.X:
            assert self.key is not None
            return self.key.x
        if operand is Operand.MASK:
            assert self.select.mask is not None
            return self.select.mask
        return {Operand.Q: self.sufa.q, Operand.K: self.sufa.k, Operand.V: self.sufa.v}[operand]


def kv_generation(
    group: TiledGroup, target: TargetAttr, shape: AttentionShape, plan: SramPlan, radius: float
) -> KvGeneration | None:
    """On-chip generation of the selected K/V rows, where the projection is constant and its buffers fit."""
    projection = group.constant_projection()
    if projection is None:
        return None
    try:
        generation = plan_generation(target, shape, group.tiling.tile.data, plan)
    except PlanError:
        return None

    def constant(value: Any) -> Any:
        return None if value is None else value.owner.to_array()

    heads = shape.kv_heads
    wk = head_blocks(constant(projection.w_k), constant(projection.b_k), heads)
    wv = head_blocks(constant(projection.w_v), constant(projection.b_v), heads)
    return KvGeneration(wk, wv, generation, shape, group.tiling, radius)


def masked_attention(group: TiledGroup, options: LowerToIsaPass) -> MaskedAttention | None:
    """The general mask of a tiled attention (None without one), checked against what its kernel supports."""
    try:
        mask = MaskedAttention.of(group.select)
    except MaskError as error:
        raise DiagnosticException(f"cannot lower this masked attention: {error}") from None
    if mask is None:
        return None
    if options.pipeline != "coordinated" or not options.rass or group.key is not None:
        raise DiagnosticException(
            "masked attention kernels are coordinated, with RASS and host-given K-hat "
            "(not pipeline=separate, rass=false or on-demand prediction)"
        )
    if mask.biased and options.attention != "sufa":
        raise DiagnosticException("a run-time additive mask's kernel runs SU-FA steps (sufa.bias), not attention=fa2")
    return mask


@dataclass
class LowerTiledAttention(RewritePattern):
    """Replace a tiled `sofa.sufa` group by a `sofa.kernel_call` to a new program, kept in `programs`."""

    options: LowerToIsaPass
    target: TargetAttr
    programs: list[ProgramOp] = field(default_factory=list)

    def kernel(self, group: TiledGroup) -> AttentionKernel:
        """The kernel builder the pass options and the group ask for."""
        tiling, shape, select = group.tiling, group.shape(), group.select
        tile = tiling.tile.data
        common: dict[str, Any] = {
            "shape": shape,
            "tiling": tiling,
            "scale": group.sufa.scale.value.data,
            "predictor": group.predictor,
            "attention": ATTENTION_STEPS[self.options.attention],
            "rass": self.options.rass,
            "softcap": softcap_value(group.sufa.softcap),
        }
        mask = masked_attention(group, self.options)
        if self.options.pipeline == "separate":
            plan, rows = plan_separate_sram(self.target, shape, tile)
            row_selection = select.sparsity.tile_size != tile
            keep_row = keep_count(select.sparsity.keep_ratio, shape.kv_len)
            return SeparateKernel(
                regions=plan.regions, group_rows=rows, keep_row=keep_row, row_selection=row_selection, **common
            )
        plan = plan_sram(self.target, shape, tile)
        if mask is not None:
            return MaskedKernel(regions=plan.regions, radius=select.sparsity.radius_value, mask=mask, **common)
        lz, radius = group.lz_weights(), select.sparsity.radius_value
        gen = None
        if lz is not None and self.options.kv_generation and self.options.rass:
            gen = kv_generation(group, self.target, shape, plan, radius)
        return CoordinatedKernel(regions=plan.regions, radius=radius, lz=lz, gen=gen, **common)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: SufaOp, rewriter: PatternRewriter) -> None:
        if op.tiling is None:
            return
        group = TiledGroup.of(op)
        kernel = self.kernel(group)
        name = f"{KERNEL_PREFIX}{len(self.programs)}"
        self.programs.append(kernel.program(name, self.options.config_hash))
        interface = kernel.interface
        operands = [group.operand(operand) for operand in interface.operands]
        projection = group.constant_projection() if interface.generates else None
        segments = tile_count(group.tiling.padded_kv.data, group.select.sparsity.tile_size)
        rewriter.replace(op, KernelCallOp(name, operands, [op.output.type], group.tiling, segments))
        for dead in (group.select, group.score, group.key):
            if dead is not None and not any(True for _ in dead.results[0].uses):
                rewriter.erase(dead)
        if projection is not None and not any(True for result in projection.results for _ in result.uses):
            rewriter.erase(projection)


def decode_step(op: AttentionOp, decode: DecodeAttr) -> DecodeStep:
    """The `DecodeStep` of a one-query attention: every sample's cache is the op's whole K/V (a key-padding
    mask is folded into Q and K by then), its first ``decode.prefix`` rows shared."""
    shape = attention_shape(op, 1.0)
    lengths = (shape.kv_len,) * shape.batch
    return DecodeStep(
        shape.batch, shape.q_heads, shape.kv_heads, shape.depth, lengths, decode.prefix.data, shape.v_depth,
        op.scale.value.data,
    )  # fmt: skip


@dataclass
class LowerDecodeAttention(RewritePattern):
    """Replace a `sofa.attention` marked `#sofa.decode` by a `sofa.kernel_call` to a decode kernel."""

    options: LowerToIsaPass
    target: TargetAttr
    programs: list[ProgramOp]

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: AttentionOp, rewriter: PatternRewriter) -> None:
        decode = op.attributes.get(DECODE_ATTRIBUTE)
        if not isinstance(decode, DecodeAttr):
            return
        keep = op.sparsity.keep_ratio if op.sparsity is not None else 1.0
        try:
            step = decode_step(op, decode)
            program = marked_decode_program(step, self.target, decode.lowering.data, decode.tile.data, keep)
        except DecodeError as error:
            raise DiagnosticException(f"cannot lower {op.name} to the decode kernel: {error}") from error
        name = f"{KERNEL_PREFIX}{len(self.programs)}"
        program.properties["sym_name"] = StringAttr(name)
        program.properties["config_hash"] = StringAttr(self.options.config_hash)
        self.programs.append(program)
        rewriter.replace(op, KernelCallOp(name, [op.q, op.k, op.v], [op.output.type]))


@dataclass(frozen=True)
class LowerToIsaPass(ModulePass):
    """Replace each tiled attention by a `sofa.kernel_call` to a new `sofa_isa.program`.

    ``config_hash`` (64 hex digits) binds the programs to a target config; the
    default, empty, takes the hash of the module's ``#sofa.target`` (the paper's
    design when it has none), the hash the simulator computes from the same config. ``pipeline=separate`` lowers the
    output of `sofa-separate-stage-tiling` to the baseline kernel (A-hat via
    DRAM). Ablation switches: ``attention=fa2`` runs FlashAttention-2 steps
    instead of SU-FA, ``rass=false`` loads whole K/V tiles instead of the
    RASS-ordered union of the selected rows. ``kv_generation=false`` keeps
    on-demand kernels reading host-computed K/V rows instead of generating the
    selected rows on chip. A `sofa.attention` marked `#sofa.decode` (by the tiling pass) becomes a
    call to a decode kernel (`passes.lower_to_isa.decode`).
    """

    name = "sofa-lower-to-isa"

    config_hash: str = ""
    pipeline: str = "coordinated"
    attention: str = "sufa"
    rass: bool = True
    kv_generation: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.pipeline not in PIPELINES:
            raise DiagnosticException(f"pipeline must be one of {', '.join(PIPELINES)}, got '{self.pipeline}'")
        if self.attention not in ATTENTION_STEPS:
            raise DiagnosticException(f"attention must be one of {', '.join(ATTENTION_STEPS)}, got '{self.attention}'")
        target = module_target(op)
        options = self if self.config_hash else replace(self, config_hash=target.config_hash())
        tiled = LowerTiledAttention(options, target)
        patterns = GreedyRewritePatternApplier([tiled, LowerDecodeAttention(options, target, tiled.programs)])
        # Not recursive: the walk visits the attentions once, in IR order, which names the programs.
        PatternRewriteWalker(patterns, apply_recursively=False).rewrite_module(op)
        for program in tiled.programs:
            op.body.block.add_op(program)
