"""The `sofa` dialect: tensor-level sparse attention and SOFA's three stages.

`sofa.attention` is what the front end produces. The stage ops spell out the
SOFA pipeline (arXiv 2407.10416):

* `sofa.wk_to_lz`     offline W_k -> 4-bit sign+exponent codes
* `sofa.dlzs_key`     DLZS phase 1, K-hat = X . LZ(W_k)
* `sofa.dlzs_score`   DLZS phase 2, A-hat = LZ(Q) . K-hat^T
* `sofa.sads`         per-KV-tile top-k with the sphere clip
* `sofa.sufa`         sorted-updating FlashAttention and the cross-tile merge

Number formats and the exact semantics live in `dialects/numerics.py`; the
interpreter in `sofa_compiler/interpreters/sofa.py` runs them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    I32,
    I64,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    f64,
    i1,
    i8,
    i32,
    i64,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_attr_definition,
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
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from dialects.numerics import keep_count, tile_count

PREDICTORS = ("dlzs", "mul4", "exact")
"""Score predictors: SOFA's DLZS, a 4-bit multiply baseline, and the exact oracle."""

KeyValue = int | float | str


# ---------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------


def _parse_value(parser: AttrParser) -> KeyValue:
    if parser.parse_optional_keyword("inf") is not None:
        return math.inf
    if (text := parser.parse_optional_str_literal()) is not None:
        return text
    return parser.parse_number()


def _parse_key_values(parser: AttrParser) -> dict[str, KeyValue]:
    """Parse ``<key = value, ...>`` where a value is a number, ``inf`` or a string."""
    values: dict[str, KeyValue] = {}

    def parse_entry() -> None:
        key = parser.parse_identifier(" (a parameter name)")
        if key in values:
            parser.raise_error(f"parameter '{key}' is given twice")
        parser.parse_punctuation("=")
        values[key] = _parse_value(parser)

    parser.parse_comma_separated_list(parser.Delimiter.ANGLE, parse_entry)
    return values


def _format_value(value: KeyValue) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return repr(value)


def _print_key_values(printer: Printer, values: Mapping[str, KeyValue]) -> None:
    printer.print_string("<" + ", ".join(f"{key} = {_format_value(v)}" for key, v in values.items()) + ">")


def _to_attribute(value: KeyValue) -> Attribute:
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, int):
        return IntegerAttr(value, i64)
    return FloatAttr(float(value), f64)


def _from_attribute(attr: Attribute) -> KeyValue:
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, IntegerAttr):
        return attr.value.data
    if isinstance(attr, FloatAttr):
        return attr.value.data
    raise VerifyException(f"unsupported parameter value {attr}")


@irdl_attr_definition
class SparsityAttr(ParametrizedAttribute):
    """SOFA's sparsity configuration for one attention layer.

    * ``keep``: the top-k keep ratio k, with 0 < k <= 1 (1 is exact attention).
    * ``tile``: the KV tile size Bc shared by DLZS, SADS (one sub-segment per
      tile, n = Tc) and SU-FA.
    * ``radius``: the SADS sphere radius r in logit units (after the softmax
      scale). Keys more than r below their tile's predicted maximum are never
      selected; ``inf`` disables the clip. The paper gives no value, so this is
      a parameter.
    * ``predictor``: ``dlzs`` (SOFA), ``mul4`` (4-bit multiply baseline) or
      ``exact`` (oracle).

    Syntax: ``#sofa.sparsity<keep = 0.25, tile = 64, radius = 8.0, predictor = "dlzs">``.
    """

    name = "sofa.sparsity"

    keep: FloatAttr[Float64Type]
    tile: IntegerAttr[I64]
    radius: FloatAttr[Float64Type]
    predictor: StringAttr

    def __init__(self, keep: float, tile: int, radius: float = math.inf, predictor: str = "dlzs"):
        super().__init__(FloatAttr(keep, f64), IntegerAttr(tile, i64), FloatAttr(radius, f64), StringAttr(predictor))

    @property
    def keep_ratio(self) -> float:
        return self.keep.value.data

    @property
    def tile_size(self) -> int:
        return self.tile.value.data

    @property
    def radius_value(self) -> float:
        return self.radius.value.data

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values = _parse_key_values(parser)
        unknown = set(values) - {"keep", "tile", "radius", "predictor"}
        if unknown:
            known = "keep, tile, radius, predictor"
            parser.raise_error(f"unknown sparsity parameter(s) {sorted(unknown)}; expected {known}")
        for required in ("keep", "tile"):
            if required not in values:
                parser.raise_error(f"sparsity parameter '{required}' is required")
        if not isinstance(values["tile"], int):
            parser.raise_error(f"sparsity 'tile' must be an integer, got {values['tile']}")
        keep, radius = values["keep"], values.get("radius", math.inf)
        predictor = values.get("predictor", "dlzs")
        if isinstance(keep, str) or isinstance(radius, str) or not isinstance(predictor, str):
            parser.raise_error("sparsity keep and radius must be numbers and predictor a string")
        if problem := _sparsity_problem(keep, values["tile"], radius, predictor):
            parser.raise_error(problem)
        return (
            FloatAttr(float(values["keep"]), f64),
            IntegerAttr(values["tile"], i64),
            FloatAttr(float(values.get("radius", math.inf)), f64),
            StringAttr(str(values.get("predictor", "dlzs"))),
        )

    def print_parameters(self, printer: Printer) -> None:
        _print_key_values(
            printer,
            {
                "keep": self.keep_ratio,
                "tile": self.tile_size,
                "radius": self.radius_value,
                "predictor": self.predictor.data,
            },
        )

    def verify(self) -> None:
        if problem := _sparsity_problem(self.keep_ratio, self.tile_size, self.radius_value, self.predictor.data):
            raise VerifyException(problem)


def _sparsity_problem(keep: float, tile: int, radius: float, predictor: str) -> str | None:
    """What is wrong with a sparsity configuration, or None."""
    if not 0.0 < keep <= 1.0:
        return f"sparsity keep ratio must satisfy 0 < k <= 1, got {keep}"
    if tile < 1:
        return f"sparsity tile (Bc) must be at least 1, got {tile}"
    if not radius > 0.0:
        return f"sparsity radius must be positive (or inf), got {radius}"
    if predictor not in PREDICTORS:
        return f"unknown predictor '{predictor}'; expected one of {', '.join(PREDICTORS)}"
    return None


TARGET_DEFAULTS: dict[str, int | float] = {
    "lanes": 128,  # queries processed in parallel (one PE line each)
    "token_sram": 192 * 1024,  # bytes
    "weight_sram": 96 * 1024,
    "temp_sram": 28 * 1024,
    "dlzs_rows": 128,  # shift array 128 x 32
    "dlzs_cols": 32,
    "lze_units": 128,
    "sads_cores": 128,  # 16->4 bitonic sort cores
    "sads_inputs_per_round": 12,
    "sads_outputs_per_round": 4,
    "kvgen_rows": 128,  # KV-generation PE array 128 x 4
    "kvgen_cols": 4,
    "sufa_rows": 128,  # SU-FA PEs 128 x 4
    "sufa_cols": 4,
    "exp_units": 128,
    "div_units": 128,
    "clock_mhz": 1000.0,
    "dram_bandwidth_gbps": 512.0,  # GB/s; HBM2 16 channels (the paper gives no peak)
    "dram_latency_ns": 100.0,
}
"""The paper's design (§6 of the digest): 28 nm, 1 GHz, 192/96/28 KB SRAM."""


@irdl_attr_definition
class TargetAttr(ParametrizedAttribute):
    """The SOFA hardware a module is compiled for.

    Passes read the hardware from this attribute, never from Python
    constants. Parameters left out take the paper's values
    (``TARGET_DEFAULTS``), and only non-default ones are printed, so the
    paper's design is just ``#sofa.target<>``.

    Syntax: ``#sofa.target<lanes = 64, temp_sram = 57344>``.
    """

    name = "sofa.target"

    fields: DictionaryAttr

    DEFAULTS: ClassVar[dict[str, int | float]] = TARGET_DEFAULTS

    def __init__(self, overrides: Mapping[str, int | float] | None = None):
        values = {**TARGET_DEFAULTS, **(overrides or {})}
        super().__init__(DictionaryAttr({key: _to_attribute(value) for key, value in values.items()}))

    def get(self, key: str) -> int | float:
        value = _from_attribute(self.fields.data[key])
        assert not isinstance(value, str)
        return value

    def as_dict(self) -> dict[str, int | float]:
        return {key: self.get(key) for key in TARGET_DEFAULTS}

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values = _parse_key_values(parser)
        if problem := _target_problem(values):
            parser.raise_error(problem)
        merged = {**TARGET_DEFAULTS, **values}
        return (DictionaryAttr({key: _to_attribute(value) for key, value in merged.items()}),)

    def print_parameters(self, printer: Printer) -> None:
        overrides = {key: value for key, value in self.as_dict().items() if value != TARGET_DEFAULTS[key]}
        _print_key_values(printer, overrides)

    def verify(self) -> None:
        values = {key: _from_attribute(value) for key, value in self.fields.data.items()}
        missing = [key for key in TARGET_DEFAULTS if key not in values]
        if missing:
            raise VerifyException(f"target parameter(s) {missing} are missing")
        if problem := _target_problem(values):
            raise VerifyException(problem)


def _target_problem(values: Mapping[str, KeyValue]) -> str | None:
    """What is wrong with target parameters, or None."""
    unknown = sorted(set(values) - set(TARGET_DEFAULTS))
    if unknown:
        return f"unknown target parameter(s) {unknown}; known: {', '.join(TARGET_DEFAULTS)}"
    for key, value in values.items():
        if isinstance(value, str) or value <= 0:
            return f"target parameter '{key}' must be a positive number, got {_format_value(value)}"
        if isinstance(TARGET_DEFAULTS[key], int) and not isinstance(value, int):
            return f"target parameter '{key}' must be an integer, got {value}"
    return None


TILING_KEYS = ("lanes", "tile", "kv_tiles", "keep_count", "query_tiles", "padded_q", "padded_kv")


@irdl_attr_definition
class TilingAttr(ParametrizedAttribute):
    """One cross-stage tiling shared by DLZS, SADS and SU-FA (paper §5).

    * ``lanes``: queries per query tile (the target's 128 PE lines);
    * ``tile``: the KV tile Bc, which is also SADS's sub-segment (n = Tc);
    * ``kv_tiles``: Tc = ceil(Skv / Bc); ``keep_count``: m = ceil(k * Bc);
    * ``query_tiles``, ``padded_q``, ``padded_kv``: the padded problem.

    The same attribute object sits on all three stage ops of one attention,
    so A-hat and the selected indices of a tile stay on chip between them.
    Syntax: ``#sofa.tiling<lanes = 128, tile = 64, kv_tiles = 8, ...>``.
    """

    name = "sofa.tiling"

    fields: DictionaryAttr

    def __init__(self, values: Mapping[str, int]):
        super().__init__(DictionaryAttr({key: IntegerAttr(int(values[key]), i64) for key in TILING_KEYS}))

    def get(self, key: str) -> int:
        value = _from_attribute(self.fields.data[key])
        assert isinstance(value, int)
        return value

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values = _parse_key_values(parser)
        if sorted(values) != sorted(TILING_KEYS):
            parser.raise_error(f"tiling needs exactly the parameters {', '.join(TILING_KEYS)}")
        if any(not isinstance(v, int) or v < 1 for v in values.values()):
            parser.raise_error("tiling parameters must be positive integers")
        return (DictionaryAttr({key: IntegerAttr(int(values[key]), i64) for key in TILING_KEYS}),)

    def print_parameters(self, printer: Printer) -> None:
        _print_key_values(printer, {key: self.get(key) for key in TILING_KEYS})

    def verify(self) -> None:
        if sorted(self.fields.data) != sorted(TILING_KEYS):
            raise VerifyException(f"tiling needs exactly the parameters {', '.join(TILING_KEYS)}")
        values = {key: self.get(key) for key in TILING_KEYS}
        if any(v < 1 for v in values.values()):
            raise VerifyException(f"tiling parameters must be positive, got {values}")
        if values["padded_kv"] != values["kv_tiles"] * values["tile"]:
            raise VerifyException("tiling: padded_kv must equal kv_tiles * tile")
        if values["padded_q"] != values["query_tiles"] * values["lanes"]:
            raise VerifyException("tiling: padded_q must equal query_tiles * lanes")
        if values["keep_count"] > values["tile"]:
            raise VerifyException("tiling: keep_count cannot exceed the tile")


# ---------------------------------------------------------------------------
# Verification helpers
# ---------------------------------------------------------------------------


def _tensor(value: SSAValue | Attribute, what: str) -> TensorType[Attribute]:
    value_type = value.type if isinstance(value, SSAValue) else value
    if not isinstance(value_type, TensorType):
        raise VerifyException(f"{what} must be a ranked tensor, got {value_type}")
    return value_type  # pyright: ignore[reportUnknownVariableType]


def _shape(value: SSAValue | Attribute, what: str, rank: int) -> tuple[int, ...]:
    tensor = _tensor(value, what)
    shape = tuple(tensor.get_shape())
    if len(shape) != rank:
        raise VerifyException(f"{what} must have rank {rank}, got {tensor}")
    if any(dim < 0 for dim in shape):
        raise VerifyException(f"{what} must have a static shape, got {tensor}")
    return shape


def _is_float(element: Attribute) -> bool:
    return isinstance(element, Float16Type | Float32Type | Float64Type)


def _expect_float(value: SSAValue, what: str) -> None:
    if not _is_float(_tensor(value, what).element_type):
        raise VerifyException(f"{what} must have a float element type, got {value.type}")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise VerifyException(message)


def _verify_heads(q_heads: int, kv_heads: int) -> None:
    _expect(q_heads >= 1 and kv_heads >= 1, f"head counts must be positive, got {q_heads} and {kv_heads}")
    _expect(
        q_heads % kv_heads == 0,
        f"query heads ({q_heads}) must be a multiple of KV heads ({kv_heads}) for GQA/MQA",
    )


def _verify_mask(mask: SSAValue | None, target_shape: tuple[int, ...]) -> None:
    """A mask is boolean (keep where true) or float (additive), broadcastable to the scores."""
    if mask is None:
        return
    mask_type = _tensor(mask, "mask")
    element = mask_type.element_type
    _expect(
        element == i1 or _is_float(element),
        f"mask must have i1 (boolean) or float elements, got {mask.type}",
    )
    shape = tuple(mask_type.get_shape())
    _expect(len(shape) <= len(target_shape), f"mask rank {len(shape)} exceeds the scores' rank {len(target_shape)}")
    for dim, full in zip(reversed(shape), reversed(target_shape)):
        _expect(dim in (1, full), f"mask shape {list(shape)} does not broadcast to scores shape {list(target_shape)}")


def _verify_score_shapes(q: SSAValue, k: SSAValue, scores: SSAValue) -> None:
    """Shapes of a score predictor: Q [B, Hq, Sq, d], K [B, Hkv, Skv, d] -> fp16 [B, Hq, Sq, Skv]."""
    _expect_float(q, "Q")
    _expect_float(k, "K-hat")
    batch, q_heads, q_len, depth = _shape(q, "Q", 4)
    k_batch, kv_heads, kv_len, k_depth = _shape(k, "K-hat", 4)
    _expect(batch == k_batch, f"batch sizes differ: Q {batch}, K-hat {k_batch}")
    _expect(depth == k_depth, f"Q and K-hat head dims differ: {depth} vs {k_depth}")
    _verify_heads(q_heads, kv_heads)
    expected = (batch, q_heads, q_len, kv_len)
    scores_type = _tensor(scores, "scores")
    _expect(
        tuple(scores_type.get_shape()) == expected and isinstance(scores_type.element_type, Float16Type),
        f"scores must be tensor<{'x'.join(map(str, expected))}xf16>, got {scores.type}",
    )


# ---------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------


@irdl_op_definition
class AttentionOp(IRDLOperation):
    """Scaled dot-product attention, optionally with SOFA dynamic sparsity.

    Shapes: Q ``[B, Hq, Sq, d]``, K ``[B, Hkv, Skv, d]``, V ``[B, Hkv, Skv, dv]``,
    result ``[B, Hq, Sq, dv]``. ``Hq`` must be a multiple of ``Hkv`` (GQA; MQA
    when ``Hkv = 1``); query head ``h`` reads KV head ``h // (Hq / Hkv)``.

    The mask is boolean (keep where true) or additive float, broadcastable to
    ``[B, Hq, Sq, Skv]``. ``causal`` hides keys ``j > i`` (upper-left aligned,
    as in ONNX and torch). Rows with no visible key give zeros.

    Without ``sparsity`` this is exact attention. With it, the semantics are
    the SOFA pipeline: predict A-hat, keep the top ``ceil(k * Bc)`` keys of
    every KV tile (SADS), and run SU-FA on them. With ``keep = 1`` and no
    radius, the result equals exact attention.
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

    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = (
        "$q `,` $k `,` $v (`mask` $mask^)? `scale` $scale `heads` $q_heads `/` $kv_heads"
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
    ):
        properties: dict[str, Attribute | None] = {
            "scale": FloatAttr(scale, f64),
            "q_heads": IntegerAttr(q_heads, i64),
            "kv_heads": IntegerAttr(kv_heads, i64),
            "causal": UnitAttr() if causal else None,
            "sparsity": sparsity,
        }
        super().__init__(
            operands=[q, k, v, mask],
            result_types=[result_type],
            properties={key: value for key, value in properties.items() if value is not None},
        )

    def verify_(self) -> None:
        for name in ("q", "k", "v"):
            _expect_float(getattr(self, name), name.upper())
        batch, q_heads, q_len, depth = _shape(self.q, "Q", 4)
        k_batch, kv_heads, kv_len, k_depth = _shape(self.k, "K", 4)
        v_batch, v_heads, v_len, v_depth = _shape(self.v, "V", 4)
        _expect(self.scale.value.data > 0, f"scale must be positive, got {self.scale.value.data}")
        _verify_heads(self.q_heads.value.data, self.kv_heads.value.data)
        _expect(
            q_heads == self.q_heads.value.data,
            f"Q has {q_heads} heads but the op says q_heads = {self.q_heads.value.data}",
        )
        _expect(
            kv_heads == self.kv_heads.value.data and v_heads == kv_heads,
            f"K and V must have kv_heads = {self.kv_heads.value.data} heads, got {kv_heads} and {v_heads}",
        )
        _expect(batch == k_batch == v_batch, f"batch sizes differ: Q {batch}, K {k_batch}, V {v_batch}")
        _expect(depth == k_depth, f"Q and K head dims differ: {depth} vs {k_depth}")
        _expect(kv_len == v_len, f"K and V sequence lengths differ: {kv_len} vs {v_len}")
        _expect(
            _shape(self.output, "result", 4) == (batch, q_heads, q_len, v_depth),
            f"result must be tensor<{batch}x{q_heads}x{q_len}x{v_depth}x...>, got {self.output.type}",
        )
        _verify_mask(self.mask, (batch, q_heads, q_len, kv_len))


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
            _expect_float(getattr(self, name), name)
        batch, length, hidden = _shape(self.x, "X", 3)
        heads = self.kv_heads.value.data
        for weight, bias, result, what in ((self.w_k, self.b_k, self.k, "K"), (self.w_v, self.b_v, self.v, "V")):
            rows, columns = _shape(weight, f"W_{what.lower()}", 2)
            _expect(rows == hidden, f"X hidden size {hidden} does not match W_{what.lower()} rows {rows}")
            _expect(
                heads >= 1 and columns % heads == 0,
                f"W_{what.lower()} columns ({columns}) must split into {heads} heads",
            )
            if bias is not None:
                _expect(
                    _shape(bias, f"b_{what.lower()}", 1) == (columns,),
                    f"b_{what.lower()} must have {columns} elements, got {bias.type}",
                )
            expected = (batch, heads, length, columns // heads)
            _expect(
                _shape(result, what, 4) == expected,
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
        weight_type = _tensor(weights, "weights")
        super().__init__(operands=[weights], result_types=[TensorType(i8, weight_type.get_shape()), i32])

    def verify_(self) -> None:
        _expect_float(self.weights, "weights")
        shape = _shape(self.weights, "weights", 2)
        codes = _tensor(self.codes, "codes")
        _expect(codes.element_type == i8, f"codes must have i8 elements, got {self.codes.type}")
        _expect(tuple(codes.get_shape()) == shape, f"codes must have the weights' shape {list(shape)}")


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
        _expect_float(self.x, "X")
        batch, length, hidden = _shape(self.x, "X", 3)
        code_rows, columns = _shape(self.codes, "codes", 2)
        _expect(_tensor(self.codes, "codes").element_type == i8, f"codes must have i8 elements, got {self.codes.type}")
        _expect(code_rows == hidden, f"X hidden size {hidden} does not match W_k rows {code_rows}")
        heads = self.kv_heads.value.data
        _expect(heads >= 1 and columns % heads == 0, f"W_k columns ({columns}) must split into {heads} heads")
        expected = (batch, heads, length, columns // heads)
        khat = _tensor(self.khat, "K-hat")
        _expect(
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
        _verify_score_shapes(self.q, self.khat, self.scores)


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
        _verify_score_shapes(self.q, self.k, self.scores)


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
    """

    name = "sofa.sads"

    scores = operand_def(TensorType)
    mask = opt_operand_def(TensorType)
    sparsity = prop_def(SparsityAttr)
    scale = prop_def(FloatAttr[Float64Type])
    causal = opt_prop_def(UnitAttr)
    tiling = opt_prop_def(TilingAttr)
    indices = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = (
        "$scores (`mask` $mask^)? `scale` $scale (`causal` $causal^)? `sparsity` $sparsity"
        " (`tiling` $tiling^)? attr-dict"
        " `:` type($scores) (`,` type($mask)^)? `->` type($indices)"
    )

    def verify_(self) -> None:
        _expect_float(self.scores, "scores")
        batch, heads, q_len, kv_len = _shape(self.scores, "scores", 4)
        _expect(self.scale.value.data > 0, f"scale must be positive, got {self.scale.value.data}")
        _verify_mask(self.mask, (batch, heads, q_len, kv_len))
        tile = self.sparsity.tile_size
        tiles = tile_count(kv_len, tile)
        # Bc must divide the padded length Tc * Bc and leave no empty tile.
        expected = (batch, heads, q_len, tiles, keep_count(self.sparsity.keep_ratio, tile))
        indices = _tensor(self.indices, "indices")
        _expect(
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
    optional mask adds to the exact scores (its -inf entries weigh nothing).
    """

    name = "sofa.sufa"

    q = operand_def(TensorType)
    k = operand_def(TensorType)
    v = operand_def(TensorType)
    indices = operand_def(TensorType)
    mask = opt_operand_def(TensorType)
    scale = prop_def(FloatAttr[Float64Type])
    tile = prop_def(IntegerAttr[I64])
    causal = opt_prop_def(UnitAttr)
    tiling = opt_prop_def(TilingAttr)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = (
        "$q `,` $k `,` $v `,` $indices (`mask` $mask^)? `scale` $scale `tile` $tile (`causal` $causal^)?"
        " (`tiling` $tiling^)? attr-dict"
        " `:` type($q) `,` type($k) `,` type($v) `,` type($indices) (`,` type($mask)^)? `->` type($output)"
    )

    def verify_(self) -> None:
        for name in ("q", "k", "v"):
            _expect_float(getattr(self, name), name.upper())
        batch, q_heads, q_len, depth = _shape(self.q, "Q", 4)
        _, kv_heads, kv_len, k_depth = _shape(self.k, "K", 4)
        _, v_heads, v_len, v_depth = _shape(self.v, "V", 4)
        _verify_heads(q_heads, kv_heads)
        _expect(depth == k_depth, f"Q and K head dims differ: {depth} vs {k_depth}")
        _expect((v_heads, v_len) == (kv_heads, kv_len), "K and V must have the same heads and length")
        index_shape = _shape(self.indices, "indices", 5)
        _expect(
            index_shape[:3] == (batch, q_heads, q_len),
            f"indices must start with [{batch}, {q_heads}, {q_len}], got {list(index_shape)}",
        )
        _expect(
            _tensor(self.indices, "indices").element_type == i32,
            f"indices must have i32 elements, got {self.indices.type}",
        )
        tile = self.tile.value.data
        _expect(tile >= 1, f"tile (Bc) must be at least 1, got {tile}")
        _expect(
            index_shape[3] == tile_count(kv_len, tile) and index_shape[4] <= tile,
            f"indices [..., Tc = {index_shape[3]}, m = {index_shape[4]}] do not fit Skv = {kv_len} in tiles of {tile}",
        )
        _expect(self.scale.value.data > 0, f"scale must be positive, got {self.scale.value.data}")
        _verify_mask(self.mask, (batch, q_heads, q_len, kv_len))
        _expect(
            _shape(self.output, "result", 4) == (batch, q_heads, q_len, v_depth),
            f"result must be tensor<{batch}x{q_heads}x{q_len}x{v_depth}x...>, got {self.output.type}",
        )


@irdl_op_definition
class KernelCallOp(IRDLOperation):
    """Run a compiled accelerator kernel on tensors: the host/accelerator boundary.

    ``kernel`` names a `sofa_isa.program` (or a kernel of a compiled bundle).
    The operands fill the kernel's input symbols in order and the results
    come from its output symbols. The interpreter needs a kernel runner
    (``sofa_compiler.runtime``) to execute it.
    """

    name = "sofa.kernel_call"

    kernel = prop_def(StringAttr)
    inputs = var_operand_def(TensorType)
    outputs = var_result_def(TensorType)

    assembly_format = "$kernel `(` $inputs `)` attr-dict `:` functional-type($inputs, $outputs)"

    def __init__(self, kernel: str, inputs: Sequence[SSAValue], result_types: Sequence[Attribute]):
        super().__init__(operands=[inputs], result_types=[result_types], properties={"kernel": StringAttr(kernel)})


Sofa = Dialect(
    "sofa",
    [AttentionOp, KvProjectionOp, WkToLzOp, DlzsKeyOp, DlzsScoreOp, Mul4ScoreOp, SadsOp, SufaOp, KernelCallOp],
    [SparsityAttr, TargetAttr, TilingAttr],
)

__all__ = [
    "PREDICTORS",
    "TARGET_DEFAULTS",
    "AttentionOp",
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
    "TilingAttr",
    "WkToLzOp",
]
