"""The `sofa` dialect's attributes: sparsity, hardware target and tiling.

Each is a typed `ParametrizedAttribute` with one parameter per field, written
``#sofa.name<key = value, ...>``. Python code reads a field as
``target.lanes.data`` or ``tiling.tile.data``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from xdsl.dialects.builtin import I64, Float64Type, FloatAttr, FloatData, IntAttr, IntegerAttr, StringAttr, f64, i64
from xdsl.ir import Attribute, Data, ParametrizedAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from dialects.sofa.checks import NO_RADIUS, PLAIN_SADS, far_problem, keep_problem, radius_problem, tile_problem

PREDICTORS = ("dlzs", "mul4", "exact")
"""Score predictors: SOFA's DLZS, a 4-bit multiply baseline, and the exact oracle."""

KeyValue = int | float | str

TOPK_ENGINES = ("sort", "quickselect")
"""How a separate-stage baseline's whole-row top-k is priced: on the streaming 16->4 sort cores
(ceil(m / outputs) passes of ceil(n / inputs) rounds a row) or as a quick-select
(n + min(m, n - m) expected comparisons a row, Floyd-Rivest) on the same cores' comparators."""

TARGET_CHOICES: Mapping[str, tuple[str, ...]] = MappingProxyType({"row_topk": TOPK_ENGINES})
"""The allowed values of the target's string parameters."""

TargetValue = int | float | str

TARGET_DEFAULTS: Mapping[str, TargetValue] = MappingProxyType(
    {
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
        "row_topk": "sort",  # the separate-stage baselines' whole-row top-k engine (TOPK_ENGINES)
    }
)
"""The paper's design (§6 of the digest): 28 nm, 1 GHz, 192/96/28 KB SRAM.

The one definition of SOFA's hardware defaults: `#sofa.target<>`, the
simulator's config schema and its SRAM sizes all read it. An ``int`` default
makes an integer parameter (`IntAttr`), a ``float`` one a `FloatData`, a ``str``
one a `StringAttr` whose values `TARGET_CHOICES` lists.
"""


# ---------------------------------------------------------------------------
# The shared ``<key = value, ...>`` syntax
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


def _parameter_names(attr_class: type[ParametrizedAttribute]) -> tuple[str, ...]:
    return tuple(name for name, _ in attr_class.get_irdl_definition().parameters)


def _field_values(attr: ParametrizedAttribute) -> dict[str, TargetValue]:
    """The attribute's fields by name; every parameter is an `IntAttr`, a `FloatData` or a `StringAttr`."""
    names = _parameter_names(type(attr))
    return {name: param.data for name, param in zip(names, attr.parameters) if isinstance(param, Data)}


# ---------------------------------------------------------------------------
# #sofa.sparsity
# ---------------------------------------------------------------------------


@irdl_attr_definition
class SparsityAttr(ParametrizedAttribute):
    """SOFA's sparsity configuration for one attention layer.

    * ``keep``: the top-k keep ratio k, with 0 < k <= 1 (1 is exact attention).
    * ``tile``: the KV tile size Bc shared by DLZS, SADS (one sub-segment per
      tile, n = Tc) and SU-FA.
    * ``radius``: the SADS sphere radius r in logit units (after the softmax
      scale). Keys more than r below their tile's predicted maximum are never
      selected; ``inf`` (`NO_RADIUS`) disables the clip. The paper gives no
      value, so this is a parameter.
    * ``predictor``: ``dlzs`` (SOFA), ``mul4`` (4-bit multiply baseline) or
      ``exact`` (oracle).
    * ``far``: budgeted SADS (`numerics.sads_budget`) when below 1: far KV tiles
      keep ``ceil(far * m)`` keys per row and the rest of the row's budget moves
      to its last two tiles; 1 (the default, not printed) is plain SADS.

    Syntax: ``#sofa.sparsity<keep = 0.25, tile = 64, radius = 8.0, predictor = "dlzs", far = 0.5>``.
    """

    name = "sofa.sparsity"

    keep: FloatAttr[Float64Type]
    tile: IntegerAttr[I64]
    radius: FloatAttr[Float64Type]
    predictor: StringAttr
    far: FloatAttr[Float64Type]

    def __init__(
        self, keep: float, tile: int, radius: float = NO_RADIUS, predictor: str = "dlzs", far: float = PLAIN_SADS
    ):
        super().__init__(
            FloatAttr(keep, f64), IntegerAttr(tile, i64), FloatAttr(radius, f64), StringAttr(predictor),
            FloatAttr(far, f64),
        )  # fmt: skip

    @property
    def keep_ratio(self) -> float:
        return self.keep.value.data

    @property
    def tile_size(self) -> int:
        return self.tile.value.data

    @property
    def radius_value(self) -> float:
        return self.radius.value.data

    @property
    def far_ratio(self) -> float:
        return self.far.value.data

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values = _parse_key_values(parser)
        unknown = set(values) - {"keep", "tile", "radius", "predictor", "far"}
        if unknown:
            known = "keep, tile, radius, predictor, far"
            parser.raise_error(f"unknown sparsity parameter(s) {sorted(unknown)}; expected {known}")
        for required in ("keep", "tile"):
            if required not in values:
                parser.raise_error(f"sparsity parameter '{required}' is required")
        keep, tile = values["keep"], values["tile"]
        radius, predictor = values.get("radius", NO_RADIUS), values.get("predictor", "dlzs")
        far = values.get("far", PLAIN_SADS)
        if not isinstance(tile, int):
            parser.raise_error(f"sparsity 'tile' must be an integer, got {tile}")
        if any(isinstance(v, str) for v in (keep, radius, far)) or not isinstance(predictor, str):
            parser.raise_error("sparsity keep, radius and far must be numbers and predictor a string")
        if problem := _sparsity_problem(keep, tile, radius, predictor, far):
            parser.raise_error(problem)
        return (
            FloatAttr(float(keep), f64), IntegerAttr(tile, i64), FloatAttr(float(radius), f64), StringAttr(predictor),
            FloatAttr(float(far), f64),
        )  # fmt: skip

    def print_parameters(self, printer: Printer) -> None:
        values = {"keep": self.keep_ratio, "tile": self.tile_size, "radius": self.radius_value}
        far = {} if self.far_ratio == PLAIN_SADS else {"far": self.far_ratio}
        _print_key_values(printer, {**values, "predictor": self.predictor.data, **far})

    def verify(self) -> None:
        values = (self.keep_ratio, self.tile_size, self.radius_value, self.predictor.data, self.far_ratio)
        if problem := _sparsity_problem(*values):
            raise VerifyException(problem)


def _sparsity_problem(keep: float, tile: int, radius: float, predictor: str, far: float = PLAIN_SADS) -> str | None:
    """What is wrong with a sparsity configuration, or None."""
    if problem := keep_problem(keep, "k"):
        return f"sparsity keep ratio {problem}"
    if problem := tile_problem(tile):
        return f"sparsity tile (Bc) {problem}"
    if problem := radius_problem(radius):
        return f"sparsity radius {problem}"
    if predictor not in PREDICTORS:
        return f"unknown predictor '{predictor}'; expected one of {', '.join(PREDICTORS)}"
    if problem := far_problem(far):
        return f"sparsity far {problem}"
    return None


# ---------------------------------------------------------------------------
# #sofa.target
# ---------------------------------------------------------------------------


@irdl_attr_definition
class TargetAttr(ParametrizedAttribute):
    """The SOFA hardware a module is compiled for.

    Passes read the hardware from this attribute, never from Python
    constants. Parameters left out take the paper's values
    (`TARGET_DEFAULTS`), and only non-default ones are printed, so the
    paper's design is just ``#sofa.target<>``.

    Syntax: ``#sofa.target<lanes = 64, temp_sram = 57344>``.
    """

    name = "sofa.target"

    lanes: IntAttr
    token_sram: IntAttr
    weight_sram: IntAttr
    temp_sram: IntAttr
    dlzs_rows: IntAttr
    dlzs_cols: IntAttr
    lze_units: IntAttr
    sads_cores: IntAttr
    sads_inputs_per_round: IntAttr
    sads_outputs_per_round: IntAttr
    kvgen_rows: IntAttr
    kvgen_cols: IntAttr
    sufa_rows: IntAttr
    sufa_cols: IntAttr
    exp_units: IntAttr
    div_units: IntAttr
    clock_mhz: FloatData
    dram_bandwidth_gbps: FloatData
    dram_latency_ns: FloatData
    row_topk: StringAttr

    def __init__(self, overrides: Mapping[str, TargetValue] | None = None):
        """The paper's design with `overrides` (parameter name -> value) on top."""
        if problem := _target_problem(overrides or {}):
            raise VerifyException(problem)
        super().__init__(*_target_parameters({**TARGET_DEFAULTS, **(overrides or {})}))

    def as_dict(self) -> dict[str, TargetValue]:
        """Every parameter by name, in `TARGET_DEFAULTS` order."""
        return _field_values(self)

    def config_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of the parameters: the hash every program of this target embeds.

        The simulator hashes its config file's ``[target]`` table the same way
        (`sofa_compiler.sim.config.target_hash` calls this), so they agree by construction.
        """
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values = _parse_key_values(parser)
        if problem := _target_problem(values):
            parser.raise_error(problem)
        return _target_parameters({**TARGET_DEFAULTS, **values})

    def print_parameters(self, printer: Printer) -> None:
        overrides = {key: value for key, value in self.as_dict().items() if value != TARGET_DEFAULTS[key]}
        _print_key_values(printer, overrides)

    def verify(self) -> None:
        if problem := _target_problem(self.as_dict()):
            raise VerifyException(problem)


def _target_parameters(values: Mapping[str, KeyValue]) -> tuple[Attribute, ...]:
    """One parameter per `TARGET_DEFAULTS` key, typed as its default (int: `IntAttr`, float: `FloatData`,
    str: `StringAttr`)."""
    return tuple(_target_parameter(default, values[key]) for key, default in TARGET_DEFAULTS.items())


def _target_parameter(default: TargetValue, value: KeyValue) -> Attribute:
    if isinstance(default, str):
        return StringAttr(str(value))
    return IntAttr(int(value)) if isinstance(default, int) else FloatData(float(value))


def _target_problem(values: Mapping[str, KeyValue]) -> str | None:
    """What is wrong with target parameters, or None."""
    unknown = sorted(set(values) - set(TARGET_DEFAULTS))
    if unknown:
        return f"unknown target parameter(s) {unknown}; known: {', '.join(TARGET_DEFAULTS)}"
    for key, value in values.items():
        if key in TARGET_CHOICES:
            if value not in TARGET_CHOICES[key]:
                choices = ", ".join(f'"{choice}"' for choice in TARGET_CHOICES[key])
                return f"target parameter '{key}' must be one of {choices}, got {_format_value(value)}"
            continue
        if isinstance(value, str) or value <= 0:
            return f"target parameter '{key}' must be a positive number, got {_format_value(value)}"
        if isinstance(TARGET_DEFAULTS[key], int) and not isinstance(value, int):
            return f"target parameter '{key}' must be an integer, got {value}"
    return None


# ---------------------------------------------------------------------------
# #sofa.tiling
# ---------------------------------------------------------------------------


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

    lanes: IntAttr
    tile: IntAttr
    kv_tiles: IntAttr
    keep_count: IntAttr
    query_tiles: IntAttr
    padded_q: IntAttr
    padded_kv: IntAttr

    def __init__(self, values: Mapping[str, int]):
        """From a mapping with exactly the `TILING_KEYS`."""
        super().__init__(*(IntAttr(int(values[key])) for key in TILING_KEYS))

    def as_dict(self) -> dict[str, int]:
        """Every field by name, in `TILING_KEYS` order."""
        return {key: int(value) for key, value in _field_values(self).items()}

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values = _parse_key_values(parser)
        if sorted(values) != sorted(TILING_KEYS):
            parser.raise_error(f"tiling needs exactly the parameters {', '.join(TILING_KEYS)}")
        if any(not isinstance(v, int) or v < 1 for v in values.values()):
            parser.raise_error("tiling parameters must be positive integers")
        return tuple(IntAttr(int(values[key])) for key in TILING_KEYS)

    def print_parameters(self, printer: Printer) -> None:
        _print_key_values(printer, self.as_dict())

    def verify(self) -> None:
        values = self.as_dict()
        if any(v < 1 for v in values.values()):
            raise VerifyException(f"tiling parameters must be positive, got {values}")
        if values["padded_kv"] != values["kv_tiles"] * values["tile"]:
            raise VerifyException("tiling: padded_kv must equal kv_tiles * tile")
        if values["padded_q"] != values["query_tiles"] * values["lanes"]:
            raise VerifyException("tiling: padded_q must equal query_tiles * lanes")
        if values["keep_count"] > values["tile"]:
            raise VerifyException("tiling: keep_count cannot exceed the tile")


TILING_KEYS = _parameter_names(TilingAttr)
"""The `#sofa.tiling` fields in their printed order."""

assert _parameter_names(TargetAttr) == tuple(TARGET_DEFAULTS), "TargetAttr's parameters must be TARGET_DEFAULTS' keys"


# ---------------------------------------------------------------------------
# #sofa.decode
# ---------------------------------------------------------------------------

DECODE_TILE = 64
"""Keys per K/V window of a decode kernel: 64 fp16 rows of d = 128 are 16 KiB, so the paper's SRAM holds six."""

SPARSE_DECODE = "sparse"
"""The `#sofa.decode` lowering of a one-query attention at keep < 1: DLZS + SADS over the cache's key codes,
only the selected K/V rows fetched (`passes.lower_to_isa.decode_sparse`; the op's sparsity gives the keep)."""

DECODE_LOWERINGS = ("standard", "bifurcated", SPARSE_DECODE)
"""How a decode step streams its cache: `passes.lower_to_isa.decode.DecodeLowering`'s values, or sparse."""


@irdl_attr_definition
class DecodeAttr(ParametrizedAttribute):
    """A one-query attention (a decode step) that runs on the decode kernel (issue 18).

    * ``lowering``: ``standard`` or ``bifurcated`` (the shared prefix streams once for every sample),
      or ``sparse`` (keep < 1: the op's ``sparsity`` gives the keep; no shared prefix);
    * ``prefix``: cache rows ``0 .. prefix-1`` that every sample of the batch shares (0: none);
    * ``tile``: keys per K/V window.

    Syntax: ``#sofa.decode<lowering = "standard", prefix = 0, tile = 64>``.
    """

    name = "sofa.decode"

    lowering: StringAttr
    prefix: IntAttr
    tile: IntAttr

    def __init__(self, lowering: str, prefix: int, tile: int):
        super().__init__(StringAttr(lowering), IntAttr(prefix), IntAttr(tile))

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values = _parse_key_values(parser)
        if set(values) != {"lowering", "prefix", "tile"}:
            parser.raise_error("a decode attribute takes exactly lowering, prefix and tile")
        lowering, prefix, tile = values["lowering"], values["prefix"], values["tile"]
        if not isinstance(lowering, str) or not isinstance(prefix, int) or not isinstance(tile, int):
            parser.raise_error("decode lowering must be a string, prefix and tile integers")
        return StringAttr(lowering), IntAttr(prefix), IntAttr(tile)

    def print_parameters(self, printer: Printer) -> None:
        _print_key_values(printer, _field_values(self))

    def verify(self) -> None:
        if self.lowering.data not in DECODE_LOWERINGS:
            raise VerifyException(f"decode lowering must be one of {', '.join(DECODE_LOWERINGS)}")
        if self.prefix.data < 0 or not 1 <= self.tile.data < 1 << 16:
            raise VerifyException("decode prefix must be >= 0 and tile 1 to 65535 keys")
