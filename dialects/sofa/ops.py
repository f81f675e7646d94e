"""The `sofa` dialect's operations: tensor-level sparse attention and SOFA's three stages.

`sofa.attention` is what the front end produces. The stage ops spell out the
SOFA pipeline (arXiv 2407.10416):

* `sofa.wk_to_lz`     offline W_k -> 4-bit sign+exponent codes
* `sofa.dlzs_key`     DLZS phase 1, K-hat = X . LZ(W_k)
* `sofa.dlzs_score`   DLZS phase 2, A-hat = LZ(Q) . K-hat^T
* `sofa.sads`         per-KV-tile top-k with the sphere clip
* `sofa.sufa`         sorted-updating FlashAttention and the cross-tile merge

Number formats and the exact semantics live in `dialects/numerics/`; the
interpreter in `sofa_compiler/interpreters/sofa.py` runs them.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import (
    I32,
    I64,
    Float16Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    f64,
    i8,
    i32,
    i64,
)
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from dialects.numerics import budget_slots, tile_count
from dialects.sofa.attrs import SparsityAttr, TilingAttr
from dialects.sofa.checks import tile_problem
from dialects.sofa.verification import (
    expect,
    expect_float,
    expect_positive_scale,
    is_boolean_mask,
    static_shape,
    tensor_of,
    verify_heads,
    verify_mask,
    verify_score_shapes,
    verify_softcap,
)


@irdl_op_definition
class AttentionOp(IRDLOperation):
    """Scaled dot-product attention, optionally with SOFA dynamic sparsity.

    Shapes: Q ``[B, Hq, Sq, d]``, K ``[B, Hkv, Skv, d]``, V ``[B, Hkv, Skv, dv]``,
    result ``[B, Hq, Sq, dv]``. ``Hq`` must be a multiple of ``Hkv`` (GQA; MQA
    when ``Hkv = 1``); query head ``h`` reads KV head ``h // (Hq / Hkv)``.

    The mask is boolean (keep where true) or additive float, broadcastable to
    ``[B, Hq, Sq, Skv]``. ``causal`` hides keys ``j > i`` (upper-left aligned,
    as in ONNX and torch). Rows with no visible key give zeros. ``softcap`` c (> 0) caps
    the scaled scores as ``c * tanh(s / c)`` before the mask is added (ONNX's order:
    scale, softcap, mask, softmax).

    Without ``sparsity`` this is exact attention. With it, the semantics are
    the SOFA pipeline: predict A-hat, keep the top ``ceil(k * Bc)`` keys of
    every KV tile (SADS), and run SU-FA on them; where the mask holds a bias
    (entries other than 0 and -inf), SADS ranks ``softcap(scale * A-hat) + mask``
    (`numerics.sofa_attention`). With ``keep = 1`` and no radius, the result
    equals exact attention.
    """

    name = "sofa.attention"

    q = operand_def(TensorType)
    k = operand_def(TensorType)
    v = operand_def(TensorType)
    mask = opt_operand_def(TensorType)

    scale = prop_def(FloatAttr[Float64Type])
    q_heads = prop_def(IntegerAttr[I64])
    kv_heads = prop_def(IntegerAttr[I64])
    causal = opt_prop_def(UnitAttr)
    sparsity = opt_prop_def(SparsityAttr)
    softcap = opt_prop_def(FloatAttr[Float64Type])

    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = (
        "$q `,` $k `,` $v (`mask` $mask^)? `scale` $scale (`softcap` $softcap^)? `heads` $q_heads `/` $kv_heads"
        " (`causal` $causal^)? (`sparsity` $sparsity^)? attr-dict"
        " `:` type($q) `,` type($k) `,` type($v) (`,` type($mask)^)? `->` type($output)"
    )

    def __init__(
        self,
        q: SSAValue,
        k: SSAValue,
        v: SSAValue,
        result_type: Attribute,
        *,
        scale: float,
        q_heads: int,
        kv_heads: int,
        causal: bool = False,
        mask: SSAValue | None = None,
        sparsity: SparsityAttr | None = None,
        softcap: float = 0.0,
    ):
        properties: dict[str, Attribute | None] = {
            "scale": FloatAttr(scale, f64),
            "q_heads": IntegerAttr(q_heads, i64),
            "kv_heads": IntegerAttr(kv_heads, i64),
            "causal": UnitAttr() if causal else None,
            "sparsity": sparsity,
            "softcap": FloatAttr(softcap, f64) if softcap else None,
        }
        super().__init__(
            operands=[q, k, v, mask],
            result_types=[result_type],
            properties={key: value for key, value in properties.items() if value is not None},
        )

    def verify_(self) -> None:
        for name in ("q", "k", "v"):
            expect_float(getattr(self, name), name.upper())
        batch, q_heads, q_len, depth = static_shape(self.q, "Q", 4)
        k_batch, kv_heads, kv_len, k_depth = static_shape(self.k, "K", 4)
        v_batch, v_heads, v_len, v_depth = static_shape(self.v, "V", 4)
        expect_positive_scale(self.scale)
        verify_softcap(self.softcap)
        verify_heads(self.q_heads.value.data, self.kv_heads.value.data)
        expect(
            q_heads == self.q_heads.value.data,
            f"Q has {q_heads} heads but the op says q_heads = {self.q_heads.value.data}",
        )
        expect(
            kv_heads == self.kv_heads.value.data and v_heads == kv_heads,
            f"K and V must have kv_heads = {self.kv_heads.value.data} heads, got {kv_heads} and {v_heads}",
        )
        expect(batch == k_batch == v_batch, f"batch sizes differ: Q {batch}, K {k_batch}, V {v_batch}")
        expect(depth == k_depth, f"Q and K head dims differ: {depth} vs {k_depth}")
        expect(kv_len == v_len, f"K and V sequence lengths differ: {kv_len} vs {v_len}")
        expect(
            static_shape(self.output, "result", 4) == (batch, q_heads, q_len, v_depth),
            f"result must be tensor<{batch}x{q_heads}x{q_len}x{v_depth}x...>, got {self.output.type}",
        )
        verify_mask(self.mask, (batch, q_heads, q_len, kv_len))


@irdl_op_definition
class KvProjectionOp(IRDLOperation):
    """K and V computed from tokens by constant projections: K = X.W_k (+ b_k), V = X.W_v (+ b_v).

    The front end emits this when it recognises the projections, so the
    attention op's K and V are traceable to X and constant weights. SOFA then
    predicts from X and W_k before K exists and generates only the K/V rows
    SADS selects (on-demand KV, paper §2.1).

    Shapes: X ``[B, S, H]``, W_k ``[H, Hkv * d]``, W_v ``[H, Hkv * dv]``,
    biases ``[Hkv * d]`` / ``[Hkv * dv]``; results K ``[B, Hkv, S, d]`` and V
    ``[B, Hkv, S, dv]``. Columns are grouped by head (head ``h`` owns columns
    ``h*d .. h*d + d - 1``), as the exporters' Reshape + Transpose split them.
    """

    name = "sofa.kv_projection"

    x = operand_def(TensorType)
    w_k = operand_def(TensorType)
    w_v = operand_def(TensorType)
    b_k = opt_operand_def(TensorType)
    b_v = opt_operand_def(TensorType)
    kv_heads = prop_def(IntegerAttr[I64])
    k = result_def(TensorType)
    v = result_def(TensorType)

    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    traits = traits_def(Pure())

    assembly_format = (
        "$x `,` $w_k `,` $w_v (`bias_k` `(` $b_k^ `:` type($b_k) `)`)? (`bias_v` `(` $b_v^ `:` type($b_v) `)`)?"
        " `heads` $kv_heads attr-dict `:` type($x) `,` type($w_k) `,` type($w_v) `->` type($k) `,` type($v)"
    )

    def verify_(self) -> None:
        for name in ("x", "w_k", "w_v"):
            expect_float(getattr(self, name), name)
        batch, length, hidden = static_shape(self.x, "X", 3)
        heads = self.kv_heads.value.data
        for weight, bias, result, what in ((self.w_k, self.b_k, self.k, "K"), (self.w_v, self.b_v, self.v, "V")):
            rows, columns = static_shape(weight, f"W_{what.lower()}", 2)
            expect(rows == hidden, f"X hidden size {hidden} does not match W_{what.lower()} rows {rows}")
            expect(
                heads >= 1 and columns % heads == 0,
                f"W_{what.lower()} columns ({columns}) must split into {heads} heads",
            )
            if bias is not None:
                expect(
                    static_shape(bias, f"b_{what.lower()}", 1) == (columns,),
                    f"b_{what.lower()} must have {columns} elements, got {bias.type}",
                )
            expected = (batch, heads, length, columns // heads)
            expect(
                static_shape(result, what, 4) == expected,
                f"{what} must be tensor<{'x'.join(map(str, expected))}x...>, got {result.type}",
            )


@irdl_op_definition
class WkToLzOp(IRDLOperation):
    """Offline conversion of W_k to 4-bit sign+exponent (LZ) codes.

    Each code (stored in an i8) holds a sign bit and a 3-bit exponent ``e``;
    the value is ``(-1)^s * 2^(base + e)``, and code ``0b1000`` is zero. The
    shared exponent ``base = floor(log2 max|W|) - 7`` is the second result.
    Rounding is floor (truncation), as in the paper's Fig. 7c; weights below
    ``2^base`` become zero, and the DLZS zero eliminator skips them.
    """

    name = "sofa.wk_to_lz"

    weights = operand_def(TensorType)
    codes = result_def(TensorType)
    base = result_def(I32)

    traits = traits_def(Pure())

    assembly_format = "$weights attr-dict `:` type($weights) `->` type($codes)"

    def __init__(self, weights: SSAValue):
        weight_type = tensor_of(weights, "weights")
        super().__init__(operands=[weights], result_types=[TensorType(i8, weight_type.get_shape()), i32])

    def verify_(self) -> None:
        expect_float(self.weights, "weights")
        shape = static_shape(self.weights, "weights", 2)
        codes = tensor_of(self.codes, "codes")
        expect(codes.element_type == i8, f"codes must have i8 elements, got {self.codes.type}")
        expect(tuple(codes.get_shape()) == shape, f"codes must have the weights' shape {list(shape)}")


@irdl_op_definition
class DlzsKeyOp(IRDLOperation):
    """DLZS phase 1: predict keys from tokens, K-hat = X . LZ(W_k), add-only.

    X ``[B, S, H]`` is quantised to 8-bit integers in block floating point
    (one power-of-two exponent per token row). Each product shifts the token
    by its weight's exponent; sums are exact and become fp16 K-hat
    ``[B, Hkv, S, d]`` with ``N = Hkv * d`` weight columns. A projection bias
    is left out: it adds the same amount to every key's score in a query row,
    so it cannot change the ranking.
    """

    name = "sofa.dlzs_key"

    x = operand_def(TensorType)
    codes = operand_def(TensorType)
    base = operand_def(I32)
    kv_heads = prop_def(IntegerAttr[I64])
    khat = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = (
        "$x `,` $codes `,` $base `heads` $kv_heads attr-dict `:` type($x) `,` type($codes) `->` type($khat)"
    )

    def verify_(self) -> None:
        expect_float(self.x, "X")
        batch, length, hidden = static_shape(self.x, "X", 3)
        code_rows, columns = static_shape(self.codes, "codes", 2)
        expect(tensor_of(self.codes, "codes").element_type == i8, f"codes must have i8 elements, got {self.codes.type}")
        expect(code_rows == hidden, f"X hidden size {hidden} does not match W_k rows {code_rows}")
        heads = self.kv_heads.value.data
        expect(heads >= 1 and columns % heads == 0, f"W_k columns ({columns}) must split into {heads} heads")
        expected = (batch, heads, length, columns // heads)
        khat = tensor_of(self.khat, "K-hat")
        expect(
            tuple(khat.get_shape()) == expected and isinstance(khat.element_type, Float16Type),
            f"K-hat must be tensor<{'x'.join(map(str, expected))}xf16>, got {self.khat.type}",
        )


@irdl_op_definition
class DlzsScoreOp(IRDLOperation):
    """DLZS phase 2: predict scores, A-hat = LZ(Q) . K-hat^T, add-only.

    Q ``[B, Hq, Sq, d]`` is taken as fp16; its 5-bit LZ code is its sign and
    leading-one exponent, so every product shifts a K-hat element. A-hat is
    fp16 ``[B, Hq, Sq, Skv]`` in unscaled dot-product units (the softmax scale
    is applied later, in SADS's radius and in SU-FA). K-hat ``[B, Hkv, Skv, d]``
    comes from `sofa.dlzs_key` (fp16), or is K itself, which the DLZS engine
    reads as fp16 (other float types are rounded to fp16, saturating).
    """

    name = "sofa.dlzs_score"

    q = operand_def(TensorType)
    khat = operand_def(TensorType)
    tiling = opt_prop_def(TilingAttr)
    scores = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$q `,` $khat (`tiling` $tiling^)? attr-dict `:` type($q) `,` type($khat) `->` type($scores)"

    def verify_(self) -> None:
        verify_score_shapes(self.q, self.khat, self.scores)


@irdl_op_definition
class Mul4ScoreOp(IRDLOperation):
    """The baseline predictor of prior accelerators: A-hat = Q4 . K4^T with 4-bit operands.

    Q ``[B, Hq, Sq, d]`` and K ``[B, Hkv, Skv, d]`` are read as fp16 and
    quantised to 4 bits per row (one scale per row); the products are exact
    integers, scaled back to fp16 A-hat ``[B, Hq, Sq, Skv]`` in dot-product
    units. It stands in for DLZS in the ablation (paper §7.3).
    """

    name = "sofa.mul4_score"

    q = operand_def(TensorType)
    k = operand_def(TensorType)
    tiling = opt_prop_def(TilingAttr)
    scores = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$q `,` $k (`tiling` $tiling^)? attr-dict `:` type($q) `,` type($k) `->` type($scores)"

    def verify_(self) -> None:
        verify_score_shapes(self.q, self.k, self.scores)


@irdl_op_definition
class SadsOp(IRDLOperation):
    """SADS: per-KV-tile top-k with the sphere clip.

    Each row of A-hat ``[B, H, Sq, Skv]`` is split into ``Tc = ceil(Skv / Bc)``
    tiles (sub-segments, n = Tc); the last one is padded, and padding is never
    selected. Per tile the op keeps the ``m = ceil(k * Bc)`` highest valid
    scores that lie within ``radius / scale`` of the tile maximum. Result:
    global key indices ``[B, H, Sq, Tc, m]`` (i32), in descending predicted
    order (ties: lower index first), so top-1 and top-2 come first; unused
    slots hold -1. Masked keys (boolean false, additive -inf, or causal) are
    never selected.

    ``biased`` (a float mask whose finite entries are a bias, known only at run time): SADS
    ranks the predicted logits ``softcap(scale * A-hat) + mask`` (`numerics.biased_sads_inputs`)
    and clips at ``radius`` logits; ``softcap`` matters only then (the cap alone is monotonic).
    """

    name = "sofa.sads"

    scores = operand_def(TensorType)
    mask = opt_operand_def(TensorType)
    sparsity = prop_def(SparsityAttr)
    scale = prop_def(FloatAttr[Float64Type])
    softcap = opt_prop_def(FloatAttr[Float64Type])
    biased = opt_prop_def(UnitAttr)
    causal = opt_prop_def(UnitAttr)
    tiling = opt_prop_def(TilingAttr)
    indices = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = (
        "$scores (`mask` $mask^)? `scale` $scale (`softcap` $softcap^)? (`biased` $biased^)? (`causal` $causal^)?"
        " `sparsity` $sparsity"
        " (`tiling` $tiling^)? attr-dict"
        " `:` type($scores) (`,` type($mask)^)? `->` type($indices)"
    )

    def verify_(self) -> None:
        expect_float(self.scores, "scores")
        batch, heads, q_len, kv_len = static_shape(self.scores, "scores", 4)
        expect_positive_scale(self.scale)
        verify_softcap(self.softcap)
        verify_mask(self.mask, (batch, heads, q_len, kv_len))
        expect(
            self.biased is None or (self.mask is not None and not is_boolean_mask(self.mask)),
            "biased needs a float mask (its finite entries are the bias)",
        )
        tile = self.sparsity.tile_size
        tiles = tile_count(kv_len, tile)
        # Bc must divide the padded length Tc * Bc and leave no empty tile.
        slots = budget_slots(self.sparsity.far_ratio, self.sparsity.keep_ratio, tile)
        expected = (batch, heads, q_len, tiles, slots)
        indices = tensor_of(self.indices, "indices")
        expect(
            tuple(indices.get_shape()) == expected and indices.element_type == i32,
            f"indices must be tensor<{'x'.join(map(str, expected))}xi32> for Skv = {kv_len} and "
            f"{self.sparsity}, got {self.indices.type}",
        )


@irdl_op_definition
class SufaOp(IRDLOperation):
    """SU-FA: sorted-updating FlashAttention over the SADS selection, then the merge.

    For each KV tile the selected keys are processed in SADS order, so the
    first is the predicted maximum and the running maximum needs no refresh
    (descending SU-FA: ``l += e^(s - s1)``, ``o += e^(s - s1) v``). Where the
    prediction was wrong, the AP unit's max-ensure raises the reference, so
    the tile result is exact. Tiles are merged once at the end (Fig. 10b):
    ``m = max_j m_j``, ``l = sum_j l_j e^(m_j - m)``, ``O = sum_j o_j e^(m_j - m) / l``.

    Precision: the functional reference computes in fp64 and writes fp32.
    Operands: Q ``[B, Hq, Sq, d]``, K/V ``[B, Hkv, Skv, *]``, indices
    ``[B, Hq, Sq, Tc, m]`` from `sofa.sads` with the same ``tile`` (Bc); the
    optional mask adds to the exact scores (its -inf entries weigh nothing), after
    ``softcap`` c (> 0) has capped them as ``c * tanh(s / c)``.
    """

    name = "sofa.sufa"

    q = operand_def(TensorType)
    k = operand_def(TensorType)
    v = operand_def(TensorType)
    indices = operand_def(TensorType)
    mask = opt_operand_def(TensorType)
    scale = prop_def(FloatAttr[Float64Type])
    softcap = opt_prop_def(FloatAttr[Float64Type])
    tile = prop_def(IntegerAttr[I64])
    causal = opt_prop_def(UnitAttr)
    tiling = opt_prop_def(TilingAttr)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = (
        "$q `,` $k `,` $v `,` $indices (`mask` $mask^)? `scale` $scale (`softcap` $softcap^)? `tile` $tile"
        " (`causal` $causal^)?"
        " (`tiling` $tiling^)? attr-dict"
        " `:` type($q) `,` type($k) `,` type($v) `,` type($indices) (`,` type($mask)^)? `->` type($output)"
    )

    def verify_(self) -> None:
        for name in ("q", "k", "v"):
            expect_float(getattr(self, name), name.upper())
        batch, q_heads, q_len, depth = static_shape(self.q, "Q", 4)
        _, kv_heads, kv_len, k_depth = static_shape(self.k, "K", 4)
        _, v_heads, v_len, v_depth = static_shape(self.v, "V", 4)
        verify_heads(q_heads, kv_heads)
        expect(depth == k_depth, f"Q and K head dims differ: {depth} vs {k_depth}")
        expect((v_heads, v_len) == (kv_heads, kv_len), "K and V must have the same heads and length")
        index_shape = static_shape(self.indices, "indices", 5)
        expect(
            index_shape[:3] == (batch, q_heads, q_len),
            f"indices must start with [{batch}, {q_heads}, {q_len}], got {list(index_shape)}",
        )
        expect(
            tensor_of(self.indices, "indices").element_type == i32,
            f"indices must have i32 elements, got {self.indices.type}",
        )
        tile = self.tile.value.data
        if problem := tile_problem(tile):
            raise VerifyException(f"tile (Bc) {problem}")
        expect(
            index_shape[3] == tile_count(kv_len, tile) and index_shape[4] <= tile,
            f"indices [..., Tc = {index_shape[3]}, m = {index_shape[4]}] do not fit Skv = {kv_len} in tiles of {tile}",
        )
        expect_positive_scale(self.scale)
        verify_softcap(self.softcap)
        verify_mask(self.mask, (batch, q_heads, q_len, kv_len))
        expect(
            static_shape(self.output, "result", 4) == (batch, q_heads, q_len, v_depth),
            f"result must be tensor<{batch}x{q_heads}x{q_len}x{v_depth}x...>, got {self.output.type}",
        )


@irdl_op_definition
class KernelCallOp(IRDLOperation):
    """Run a compiled accelerator kernel on tensors: the host/accelerator boundary.

    ``kernel`` names a `sofa_isa.program` (or a kernel of a compiled bundle).
    The operands fill the kernel's input symbols in order and the results
    come from its output symbols. The interpreter needs a kernel runner
    (``sofa_compiler.runtime``) to execute it. A lowered attention records
    the tiling its kernel runs (``tiling``: Bc, Tc, m, ...) and how many
    sub-segments SADS sorts per row (``segments``: n = Tc for per-tile
    selection, 1 for a whole-row top-k), so that reports can print them.
    """

    name = "sofa.kernel_call"

    kernel = prop_def(StringAttr)
    tiling = opt_prop_def(TilingAttr)
    segments = opt_prop_def(IntegerAttr[I64])
    inputs = var_operand_def(TensorType)
    outputs = var_result_def(TensorType)

    assembly_format = (
        "$kernel `(` $inputs `)` (`tiling` $tiling^)? (`segments` $segments^)? attr-dict `:`"
        " functional-type($inputs, $outputs)"
    )

    def __init__(
        self,
        kernel: str,
        inputs: Sequence[SSAValue],
        result_types: Sequence[Attribute],
        tiling: TilingAttr | None = None,
        segments: int | None = None,
    ):
        properties: dict[str, Attribute] = {"kernel": StringAttr(kernel)}
        if tiling is not None:
            properties["tiling"] = tiling
        if segments is not None:
            properties["segments"] = IntegerAttr(segments, i64)
        super().__init__(operands=[inputs], result_types=[result_types], properties=properties)
