"""Cross-stage coordinated tiling: one KV tile shared by DLZS, SADS and SU-FA.

Each `sofa.attention` becomes the three SOFA stages, `sofa.dlzs_score`,
`sofa.sads` and `sofa.sufa`, carrying the same `#sofa.tiling` attribute:
the query tile is the target's lane count, and the KV tile Bc (SADS's
sub-segment, n = Tc) comes from the target's SRAM sizes and a cost model
(`tile_plan.choose_tile`) unless the `tile` option fixes it.

A key-padding mask (one that depends only on batch and key, as BERT's) is
folded into one extra head-dim column of Q and K (`_fold_key_padding_mask`),
so the accelerator runs it. Other masks known at compile time (boolean, or
additive with only 0 and -inf) stay operands of SADS and SU-FA, and the
mask's plan (`mask_model`: format and mapping) goes on the `sofa.sads` as a
`#sofa.tile_mask` (`masked_attention`). Attention ops whose mask the
accelerator cannot take are left for the host, marked with a
`sofa.host_reason` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import (
    Attribute,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
    f16,
    i1,
    i32,
    i64,
)
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint
from xdsl.utils.exceptions import DiagnosticException

from dialects.host import ConstantOp, OnnxOp, numpy_dtype
from dialects.numerics import keep_count, tile_count
from dialects.sofa import (
    DECODE_LOWERINGS,
    DECODE_TILE,
    PLAIN_SADS,
    SPARSE_DECODE,
    AttentionOp,
    DecodeAttr,
    DlzsKeyOp,
    DlzsScoreOp,
    KvProjectionOp,
    Mul4ScoreOp,
    SadsOp,
    SparsityAttr,
    SufaOp,
    TargetAttr,
    TileMaskAttr,
    TilingAttr,
    WkToLzOp,
    far_problem,
    keep_problem,
    radius_problem,
    sphere_radius,
    tile_problem,
)
from passes.masked_attention import (
    TILE_MASK_ATTRIBUTE,
    combined_mask,
    constant_mask,
    is_runtime_bias,
    launch_mask_attr,
    mask_heads,
    mask_problem,
    plan_op_mask,
)
from passes.tile_plan import AttentionShape, PlanError, choose_tile, plan_separate_sram, plan_sram, query_lanes

TARGET_ATTRIBUTE = "sofa.target"
"""The module attribute holding the `#sofa.target` the module is compiled for."""

HOST_REASON = "sofa.host_reason"

DECODE_ATTRIBUTE = "sofa.decode"
"""On a `sofa.attention` with one query per (sample, head): the `#sofa.decode` it runs on (`sofa-lower-to-isa`)."""

TUNING_ATTRIBUTE = "sofa.tuning"
"""Per-op ``{tile, keep}`` from `sofa-apply-tuning`; it overrides the tiling pass's global options."""


def op_tuning(op: AttentionOp) -> tuple[int, float | None]:
    """The tile (0 when not tuned) and keep ratio (None) that `sofa-apply-tuning` set on this op."""
    tuning = op.attributes.get(TUNING_ATTRIBUTE)
    if not isinstance(tuning, DictionaryAttr):
        return 0, None
    tile = tuning.data.get("tile")
    keep = tuning.data.get("keep")
    return (
        tile.value.data if isinstance(tile, IntegerAttr) else 0,
        keep.value.data if isinstance(keep, FloatAttr) else None,
    )


def module_target(module: ModuleOp) -> TargetAttr:
    """The module's `#sofa.target`, or the paper's design when it has none."""
    target = module.attributes.get(TARGET_ATTRIBUTE)
    return target if isinstance(target, TargetAttr) else TargetAttr()


def attention_shape(op: AttentionOp, keep: float) -> AttentionShape:
    batch, q_heads, q_len, depth = op.q.type.get_shape()  # pyright: ignore[reportAttributeAccessIssue]
    _, kv_heads, kv_len, _ = op.k.type.get_shape()  # pyright: ignore[reportAttributeAccessIssue]
    v_depth = op.v.type.get_shape()[3]  # pyright: ignore[reportAttributeAccessIssue]
    causal, masked = op.causal is not None, op.mask is not None
    biased = masked and is_runtime_bias(op.mask)  # pyright: ignore[reportArgumentType]
    return AttentionShape(
        batch, q_heads, kv_heads, q_len, kv_len, depth, v_depth, keep, causal, masked=masked, biased=biased
    )


def attention_shape_of_sufa(sufa: SufaOp, select: SadsOp) -> AttentionShape:
    """The problem shape of a tiled attention, from its SU-FA and SADS ops."""
    batch, q_heads, q_len, depth = sufa.q.type.get_shape()  # pyright: ignore[reportAttributeAccessIssue]
    _, kv_heads, kv_len, _ = sufa.k.type.get_shape()  # pyright: ignore[reportAttributeAccessIssue]
    v_depth = sufa.v.type.get_shape()[3]  # pyright: ignore[reportAttributeAccessIssue]
    keep, far = select.sparsity.keep_ratio, select.sparsity.far_ratio
    causal, masked, biased = sufa.causal is not None, select.mask is not None, select.biased is not None
    return AttentionShape(
        batch, q_heads, kv_heads, q_len, kv_len, depth, v_depth, keep, causal, masked=masked, far=far, biased=biased
    )


def make_tiling(target: TargetAttr, shape: AttentionShape, tile: int, lanes: int = 0) -> TilingAttr:
    """The tiling for KV tile `tile` and query tiles of `lanes` rows (0: the target's, `query_lanes`)."""
    lanes = lanes or query_lanes(target, shape.q_len)
    query_tiles = tile_count(shape.q_len, lanes)
    kv_tiles = tile_count(shape.kv_len, tile)
    return TilingAttr(
        {
            "lanes": lanes,
            "tile": tile,
            "kv_tiles": kv_tiles,
            "keep_count": keep_count(shape.keep, tile),
            "query_tiles": query_tiles,
            "padded_q": query_tiles * lanes,
            "padded_kv": kv_tiles * tile,
        }
    )


@dataclass
class TileAttention(RewritePattern):
    target: TargetAttr
    keep: float
    radius: float
    tile: int
    on_demand: bool
    separate: bool = False
    predictor: str = "dlzs"
    far: float = PLAIN_SADS
    decode: DecodeAttr | None = None
    """Where given, dense one-query attentions run on the decode kernel with this lowering."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: AttentionOp, rewriter: PatternRewriter) -> None:
        if HOST_REASON in op.attributes or DECODE_ATTRIBUTE in op.attributes:
            return
        if (reason := host_reason(op, self.separate)) is not None:
            op.attributes[HOST_REASON] = StringAttr(reason)
            return
        # A softcap applies before the mask, so a key-padding mask cannot ride in the dot product.
        if op.mask is not None and op.softcap is None and _is_key_padding_mask(op):
            folded, prelude = _fold_key_padding_mask(op)
            rewriter.insert(prelude, InsertPoint.before(op))
            rewriter.replace(op, [folded], [folded.output])
            self.match_and_rewrite(folded, rewriter)
            return
        sparsity = op.sparsity
        tuned_tile, tuned_keep = op_tuning(op)
        keep = sparsity.keep_ratio if sparsity is not None else self.keep
        keep = tuned_keep if tuned_keep is not None else keep
        radius = sparsity.radius_value if sparsity is not None else self.radius
        requested_tile = tuned_tile or self.tile or (sparsity.tile_size if sparsity is not None else 0)
        projection = _projection_of(op)
        far = sparsity.far_ratio if sparsity is not None and self.far == PLAIN_SADS else self.far
        shape = replace(attention_shape(op, keep), far=far)
        # A general mask (a key-padding one is folded above) or a softcap needs the prefill kernels.
        plain = op.mask is None and op.softcap is None
        if self.decode is not None and plain and runs_on_decode_kernel(self.target, shape):
            op.attributes[DECODE_ATTRIBUTE] = self.decode
            return
        sparse_decode = self.predictor == "dlzs" and runs_on_sparse_decode_kernel(self.target, shape, far)
        if self.decode is not None and op.mask is None and sparse_decode:
            tile = self.decode.tile.data
            op.attributes[DECODE_ATTRIBUTE] = DecodeAttr(SPARSE_DECODE, 0, tile)
            op.sparsity = SparsityAttr(keep, tile, radius, self.predictor, far)
            return
        if self.separate:
            self.rewrite_separate(op, rewriter, shape, requested_tile, radius)
            return
        # Masked kernels read K-hat from the host: their index-list registers are the on-demand ones.
        if projection is not None and self.on_demand and self.predictor == "dlzs" and op.mask is None:
            hidden = projection.x.type.get_shape()[2]  # pyright: ignore[reportAttributeAccessIssue]
            on_demand = replace(shape, hidden=hidden)
            if _fits(self.target, on_demand, requested_tile):
                shape = on_demand
        try:
            tile = requested_tile or choose_tile(self.target, shape)[0]
            plan_sram(self.target, shape, tile)
        except PlanError as error:
            raise DiagnosticException(f"cannot tile {op.name} for this target: {error}") from error
        mask_attr = self.mask_attr(op, shape, tile)
        lanes = mask_attr.lanes.data if mask_attr is not None else 0
        tiling = make_tiling(self.target, shape, tile, lanes)
        sparsity = SparsityAttr(keep, tile, radius, self.predictor, far)
        rows = [shape.batch, shape.q_heads, shape.q_len]
        scores_type = TensorType(f16, [*rows, shape.kv_len])
        index_type = TensorType(i32, [*rows, tiling.kv_tiles.data, shape.slots(tile)])
        prediction: list[Operation] = []
        predictor_input = op.k
        if shape.hidden and projection is not None:
            prediction = _on_demand_prediction(projection, shape)
            predictor_input = prediction[-1].results[0]
        score = _score_op(self.predictor, op.q, predictor_input, scores_type, tiling)
        stages = _select_and_attend(op, score, sparsity, index_type, tiling)
        if mask_attr is not None:
            stages[1].attributes[TILE_MASK_ATTRIBUTE] = mask_attr
        rewriter.replace(op, [*prediction, *stages])

    def mask_attr(self, op: AttentionOp, shape: AttentionShape, tile: int) -> TileMaskAttr | None:
        """The format and mapping of a general mask (None without one); a run-time mask's are fixed (`launch`)."""
        if op.mask is None:
            return None
        if shape.far < PLAIN_SADS:
            raise DiagnosticException(f"{op.name}: budgeted SADS (far < 1) is not built for general masks yet")
        mask = constant_mask(op.mask)
        if mask is None:
            return launch_mask_attr(self.target, shape, tile, mask_heads(op.mask))
        visible = combined_mask(mask, shape.causal, shape.q_len, shape.kv_len)
        return plan_op_mask(self.target, shape, tile, visible).attr()

    def rewrite_separate(
        self, op: AttentionOp, rewriter: PatternRewriter, shape: AttentionShape, requested_tile: int, radius: float
    ) -> None:
        """The separate-stage baseline: whole-row top-k (one SADS segment per row), FA-2 tiles."""
        try:
            tile = requested_tile or choose_tile(self.target, shape)[0]
            plan_separate_sram(self.target, shape, tile)
        except PlanError as error:
            raise DiagnosticException(f"cannot tile {op.name} for this target: {error}") from error
        # Each SADS segment is a whole row, so the tile keeps all of its keys.
        tiling = TilingAttr({**make_tiling(self.target, shape, tile).as_dict(), "keep_count": tile})
        row = shape.kv_len
        sparsity = SparsityAttr(shape.keep, row, radius, self.predictor)
        rows = [shape.batch, shape.q_heads, shape.q_len]
        score = _score_op(self.predictor, op.q, op.k, TensorType(f16, [*rows, row]), tiling)
        index_type = TensorType(i32, [*rows, 1, keep_count(shape.keep, row)])
        rewriter.replace(op, _select_and_attend(op, score, sparsity, index_type, tiling))


def _select_and_attend(
    op: AttentionOp, score: Operation, sparsity: SparsityAttr, index_type: TensorType, tiling: TilingAttr
) -> list[Operation]:
    """SADS on the predicted scores, then SU-FA on the selection; SU-FA's tile is SADS's segment."""
    causal = op.causal is not None
    mask = [] if op.mask is None else [op.mask]
    biased = op.mask is not None and is_runtime_bias(op.mask)
    select = SadsOp.create(
        operands=[score.results[0], *mask],
        result_types=[index_type],
        properties=_props(
            sparsity=sparsity, scale=op.scale, tiling=tiling, causal=causal, softcap=op.softcap, biased=biased
        ),
    )
    segment = IntegerAttr(sparsity.tile_size, i64)
    attend = SufaOp.create(
        operands=[op.q, op.k, op.v, select.indices, *mask],
        result_types=[op.output.type],
        properties=_props(scale=op.scale, tile=segment, tiling=tiling, causal=causal, softcap=op.softcap),
    )
    score.results[0].name_hint = "scores"
    select.indices.name_hint = "selected"
    return [score, select, attend]


def runs_on_decode_kernel(target: TargetAttr, shape: AttentionShape) -> bool:
    """Whether a (mask-folded) attention is a dense decode step the decode kernel takes.

    One query per (sample, head), at keep 1.0, not causal (upper-left causal would hide all but
    key 0; a cache's bottom-right causal hides nothing of it and comes without the flag), and a
    GQA group that fits the lanes.
    """
    one_query = shape.q_len == 1 and not shape.causal
    return one_query and shape.keep >= 1.0 and shape.q_heads // shape.kv_heads <= target.lanes.data


def runs_on_sparse_decode_kernel(target: TargetAttr, shape: AttentionShape, far: float) -> bool:
    """Whether a (mask-folded) attention is a decode step at keep < 1 the sparse decode kernel takes.

    One query per (sample, head) as `runs_on_decode_kernel`, plain SADS (the kernel keeps the top
    keys of each tile; no budget), and a GQA group that fits the lanes. The kernel runs DLZS.
    """
    one_query = shape.q_len == 1 and not shape.causal
    group_fits = shape.q_heads // shape.kv_heads <= target.lanes.data
    return one_query and shape.keep < 1.0 and far == PLAIN_SADS and group_fits


def host_reason(op: AttentionOp, separate: bool = False) -> str | None:
    """Why this attention must run on the host, or None when the accelerator takes it.

    `separate`: for the separate-stage baseline, which runs only causal and key-padding masks, and no softcap.
    """
    if separate and op.softcap is not None:
        return "the separate-stage baseline runs softcap on the host"
    if op.mask is None or (op.softcap is None and _is_key_padding_mask(op)):
        return None
    if separate:
        return "the separate-stage baseline runs general attention masks on the host (causal and padding it runs)"
    return mask_problem(op)


def _is_key_padding_mask(op: AttentionOp) -> bool:
    """A mask that depends only on (batch, key): BERT-style padding, shape [B|1, 1, 1, Skv] or [Skv]."""
    assert op.mask is not None
    shape = list(op.mask.type.get_shape())  # pyright: ignore[reportAttributeAccessIssue]
    batch = op.q.type.get_shape()[0]  # pyright: ignore[reportAttributeAccessIssue]
    padded = [1] * (4 - len(shape)) + shape
    return padded[1] == 1 and padded[2] == 1 and padded[0] in (1, batch)


def _fold_key_padding_mask(op: AttentionOp) -> tuple[AttentionOp, list[Operation]]:
    """Fold a key-padding mask into the operands: exact, and no mask left for the accelerator.

    With ``q' = [q, 1]`` and ``k'_j = [k_j, b_j / scale]``, ``scale * q'.k'_j =
    scale * q.k_j + b_j``: the additive bias (0 or -inf for a boolean mask)
    rides in one more head-dim column. DLZS then also sees the bias, so
    masked keys rank last in SADS.
    """
    assert op.mask is not None
    batch, q_heads, q_len, depth = op.q.type.get_shape()  # pyright: ignore[reportAttributeAccessIssue]
    _, kv_heads, kv_len, _ = op.k.type.get_shape()  # pyright: ignore[reportAttributeAccessIssue]
    mask_batch = ([1] * 4 + list(op.mask.type.get_shape()))[-4]  # pyright: ignore[reportAttributeAccessIssue]
    element = op.q.type.get_element_type()  # pyright: ignore[reportAttributeAccessIssue]
    ops: list[Operation] = []

    def add(new: Operation) -> SSAValue:
        ops.append(new)
        return new.results[0]

    def tensor(shape: list[int]) -> TensorType:
        return TensorType(element, shape)

    scale = op.scale.value.data
    dtype = numpy_dtype(element)  # host.onnx ops take one element type: the constants have Q's
    if op.mask.type.get_element_type() == i1:  # pyright: ignore[reportAttributeAccessIssue]
        zero = add(ConstantOp.from_array(np.array(0.0, dtype)))
        minus_inf = add(ConstantOp.from_array(np.array(-np.inf, dtype)))
        mask_shape = list(op.mask.type.get_shape())  # pyright: ignore[reportAttributeAccessIssue]
        bias = add(OnnxOp("Where", [op.mask, zero, minus_inf], [tensor(mask_shape)]))
    else:
        bias = op.mask
    column = add(OnnxOp("Reshape", [bias], [tensor([mask_batch, 1, kv_len, 1])]))
    inverse_scale = add(ConstantOp.from_array(np.array(1.0 / scale, dtype)))
    column = add(OnnxOp("Mul", [column, inverse_scale], [tensor([mask_batch, 1, kv_len, 1])]))
    column = add(OnnxOp("Expand", [column], [tensor([batch, kv_heads, kv_len, 1])]))
    k_aug = add(OnnxOp("Concat", [op.k, column], [tensor([batch, kv_heads, kv_len, depth + 1])], {"axis": 3}))
    ones = add(ConstantOp.from_array(np.ones((batch, q_heads, q_len, 1), dtype)))
    q_aug = add(OnnxOp("Concat", [op.q, ones], [tensor([batch, q_heads, q_len, depth + 1])], {"axis": 3}))
    folded = AttentionOp(
        q_aug,
        k_aug,
        op.v,
        op.output.type,
        scale=scale,
        q_heads=q_heads,
        kv_heads=kv_heads,
        causal=op.causal is not None,
        sparsity=op.sparsity,
    )
    if TUNING_ATTRIBUTE in op.attributes:
        folded.attributes[TUNING_ATTRIBUTE] = op.attributes[TUNING_ATTRIBUTE]
    return folded, ops


def _score_op(predictor: str, q: SSAValue, k: SSAValue, scores_type: TensorType, tiling: TilingAttr) -> Operation:
    """The score predictor: SOFA's DLZS, or the 4-bit multiply baseline (ablation)."""
    op_class = Mul4ScoreOp if predictor == "mul4" else DlzsScoreOp
    return op_class.create(operands=[q, k], result_types=[scores_type], properties={"tiling": tiling})


def _projection_of(op: AttentionOp) -> KvProjectionOp | None:
    """The `sofa.kv_projection` that made this attention's K and V, if any."""
    owner = op.k.owner
    if isinstance(owner, KvProjectionOp) and op.k is owner.k and op.v is owner.v:
        return owner
    return None


def _fits(target: TargetAttr, shape: AttentionShape, tile: int) -> bool:
    try:
        if tile:
            plan_sram(target, shape, tile)
        else:
            choose_tile(target, shape)
    except PlanError:
        return False
    return True


def _on_demand_prediction(projection: KvProjectionOp, shape: AttentionShape) -> list[Operation]:
    """DLZS from tokens: ``wk_to_lz(W_k)`` then ``dlzs_key(X, codes, base)`` (paper §2.1)."""
    lz = WkToLzOp(projection.w_k)
    khat_type = TensorType(f16, [shape.batch, shape.kv_heads, shape.kv_len, shape.depth])
    key = DlzsKeyOp.create(
        operands=[projection.x, lz.codes, lz.base],
        result_types=[khat_type],
        properties={"kv_heads": IntegerAttr(shape.kv_heads, i64)},
    )
    key.khat.name_hint = "khat"
    return [lz, key]


def _checked_radius(keep: float, radius: float | None, tile: int, predictor: str) -> float:
    """Check the tiling passes' shared options; the radius, with "not given" as `NO_RADIUS`."""
    if problem := keep_problem(keep):
        raise DiagnosticException(f"keep ratio {problem}")
    if tile and (problem := tile_problem(tile)):
        raise DiagnosticException(f"tile {problem} (or 0 to let the cost model choose)")
    if predictor not in ("dlzs", "mul4"):
        raise DiagnosticException(f"predictor must be 'dlzs' or 'mul4' on the accelerator, got '{predictor}'")
    radius = sphere_radius(radius)
    if problem := radius_problem(radius):
        raise DiagnosticException(f"radius {problem}")
    return radius


def _props(causal: bool, biased: bool = False, **props: Attribute | None) -> dict[str, Attribute]:
    """Op properties without the absent ones, with the unit `causal` and `biased` flags only when set."""
    flags = {"causal": causal, "biased": biased}
    return {key: value for key, value in props.items() if value is not None} | {
        key: UnitAttr() for key, on in flags.items() if on
    }


@dataclass(frozen=True)
class CoordinatedTilingPass(ModulePass):
    """Tile every accelerator attention with one shared KV tile and expand it into the SOFA stages.

    Options: ``keep`` (top-k ratio, 1.0 is exact), ``radius`` (SADS sphere
    radius in logits; left out, nothing is clipped), ``tile`` (Bc; 0 lets the cost
    model choose from the target's SRAM), ``predictor`` (``dlzs``, or the
    ``mul4`` 4-bit multiply baseline for ablations), ``on_demand`` (where K and V come
    from a `sofa.kv_projection`, predict K-hat on chip from X and LZ(W_k)
    when the target's SRAM holds the LZ codes and token tiles), ``far`` (budgeted SADS,
    `numerics.sads_budget`, when below 1: far tiles keep ``ceil(far * m)`` keys per row and
    the rest moves to the row's last two tiles; 1 is plain SADS). ``decode`` (default off; `sofa-generate`
    turns it on): a dense attention with one query per (sample, head), a decode step, gets a `#sofa.decode` attribute
    instead of the SOFA stages, and `sofa-lower-to-isa` lowers it to the decode kernel (the step's
    batch x GQA-group queries in the lanes of one kernel per KV head, the cache streamed once), with
    ``decode_lowering`` (``standard`` or ``bifurcated``), ``decode_prefix`` (cache rows every sample
    shares, given by the driver) and ``decode_tile`` (keys per K/V window). An attention that already carries
    a `#sofa.sparsity` keeps its keep ratio, radius and tile (the ``tile``
    option still overrides the tile). A `sofa.tuning` attribute (from
    `sofa-apply-tuning`) overrides both, per op.
    """

    name = "sofa-coordinated-tiling"

    keep: float = 1.0
    radius: float | None = None
    tile: int = 0
    on_demand: bool = True
    predictor: str = "dlzs"
    far: float = PLAIN_SADS
    decode: bool = False
    decode_lowering: str = "standard"
    decode_prefix: int = 0
    decode_tile: int = DECODE_TILE

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        radius = _checked_radius(self.keep, self.radius, self.tile, self.predictor)
        if problem := far_problem(self.far):
            raise DiagnosticException(f"far {problem}")
        decode = self.decode_attr()
        target = module_target(op)
        pattern = TileAttention(
            target, self.keep, radius, self.tile, self.on_demand, False, self.predictor, self.far, decode
        )
        PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(op)

    def decode_attr(self) -> DecodeAttr | None:
        """The `#sofa.decode` the options ask for (None: decode steps take the prefill kernel)."""
        if not self.decode:
            return None
        if self.decode_lowering not in DECODE_LOWERINGS:
            raise DiagnosticException(
                f"decode_lowering must be one of {', '.join(DECODE_LOWERINGS)}, got '{self.decode_lowering}'"
            )
        if self.decode_prefix < 0 or not 1 <= self.decode_tile < 1 << 16:
            raise DiagnosticException("decode_prefix must be >= 0 and decode_tile 1 to 65535 keys")
        return DecodeAttr(self.decode_lowering, self.decode_prefix, self.decode_tile)


@dataclass(frozen=True)
class SeparateStageTilingPass(ModulePass):
    """The baseline prior accelerators use: predict all of A-hat, then select, then attend.

    Each `sofa.attention` becomes the same three stages, but SADS sees whole
    rows (one segment per row, a global top-k) and SU-FA's tiles only batch
    the FlashAttention-2 work, so A-hat must go to DRAM between the stages.
    Options as `sofa-coordinated-tiling`; ``tile`` is the FA-2 KV tile;
    ``selection=sads`` keeps SADS's per-tile selection (an ablation step: the
    tensor-level IR is then the coordinated one, only the lowering differs).
    """

    name = "sofa-separate-stage-tiling"

    keep: float = 1.0
    radius: float | None = None
    tile: int = 0
    predictor: str = "dlzs"
    selection: str = "row"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        radius = _checked_radius(self.keep, self.radius, self.tile, self.predictor)
        if self.selection not in ("row", "sads"):
            raise DiagnosticException(f"selection must be 'row' or 'sads', got '{self.selection}'")
        separate = self.selection == "row"
        pattern = TileAttention(module_target(op), self.keep, radius, self.tile, False, separate, self.predictor)
        PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(op)
