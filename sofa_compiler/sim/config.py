"""Hardware configuration of the simulated SOFA accelerator, loaded from TOML.

A config has four sections:

- ``[target]``: the architecture (array shapes, SRAM sizes, clock, DRAM). The
  keys and defaults are exactly those of the IR's ``#sofa.target`` attribute
  (`dialects.sofa.TARGET_DEFAULTS`); compiled programs embed `config_hash()`
  of this section, so a program built for one machine is not run on another.
- ``[energy]``: per-module pJ/cycle (Table III of the paper at 1 GHz), DRAM and
  interface pJ/bit, and the idle-power fraction.
- ``[timing]``: latencies the paper does not give; documented assumptions.
- ``[area]``: mm² per module (Table III), for area efficiency and DSE.

Every key is validated against a JSON schema built from the tables below;
errors name the file, the dotted key path and the bad value. Unknown keys are
errors, with a did-you-mean.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from xdsl.utils.exceptions import VerifyException

from dialects.sofa import TARGET_CHOICES, TARGET_DEFAULTS, TargetAttr
from sofa_compiler.documents import DocumentError, parse_document, read_text


class ConfigError(Exception):
    """A hardware config file is unreadable or invalid."""


class Param(NamedTuple):
    """One config key: its type, lower bound (or choices), unit and meaning."""

    type: type  # int, float or str
    default: int | float | str
    unit: str
    doc: str
    minimum: float = 0.0
    exclusive: bool = True  # minimum is exclusive (value must be > minimum)
    maximum: float | None = None
    choices: tuple[str, ...] = ()  # a str key's allowed values


_TARGET_DOCS: dict[str, tuple[str, str]] = {
    "lanes": ("queries", "queries processed in parallel (one PE line each)"),
    "token_sram": ("bytes", "Token SRAM capacity"),
    "weight_sram": ("bytes", "Weight SRAM capacity"),
    "temp_sram": ("bytes", "Temp SRAM capacity"),
    "dlzs_rows": ("PEs", "DLZS shift-adder array rows"),
    "dlzs_cols": ("PEs", "DLZS shift-adder array columns"),
    "lze_units": ("units", "leading-zero encoders"),
    "sads_cores": ("cores", "16->4 bitonic sort cores"),
    "sads_inputs_per_round": ("values", "new inputs a sort core takes per round"),
    "sads_outputs_per_round": ("values", "largest values a sort core keeps per round"),
    "kvgen_rows": ("PEs", "KV-generation PE array rows"),
    "kvgen_cols": ("PEs", "KV-generation PE array columns"),
    "sufa_rows": ("PEs", "SU-FA PE array rows"),
    "sufa_cols": ("PEs", "SU-FA PE array columns"),
    "exp_units": ("units", "SU-FA EXP units"),
    "div_units": ("units", "SU-FA DIV units"),
    "clock_mhz": ("MHz", "core clock"),
    "dram_bandwidth_gbps": ("GB/s", "peak DRAM bandwidth (10^9 bytes per second)"),
    "dram_latency_ns": ("ns", "DRAM access latency, paid once per DMA instruction"),
    "row_topk": ("", "separate-stage baselines' whole-row top-k engine: streaming sort cores or quick-select"),
}


def _target_params() -> dict[str, Param]:
    # Types and defaults come from the dialect so the IR and the simulator
    # can never disagree about what the paper's machine is.
    params: dict[str, Param] = {}
    for key, default in TARGET_DEFAULTS.items():
        unit, doc = _TARGET_DOCS.get(key, ("", key))
        if isinstance(default, str):
            params[key] = Param(str, default, unit, doc, choices=TARGET_CHOICES[key])
            continue
        kind = float if isinstance(default, float) else int
        # Latency may be zero (an ideal memory); everything else is a size, rate or count.
        exclusive = key != "dram_latency_ns"
        params[key] = Param(kind, default, unit, doc, exclusive=exclusive, maximum=_TARGET_MAXIMA.get(key, MAX_COUNT))
    return params


MAX_COUNT = 1 << 20
"""Upper bound of counts (lanes, PEs, units, cycles): far above any design, far below what breaks the simulator."""
MAX_FLOAT = 1e9
"""Upper bound of rates, latencies, energies and areas."""

# SRAM capacities are allocated by the simulator: 1 GiB each at most.
_TARGET_MAXIMA: dict[str, float] = {"token_sram": 1 << 30, "weight_sram": 1 << 30, "temp_sram": 1 << 30}


def _nonnegative(default: float, unit: str, doc: str) -> Param:
    return Param(float, default, unit, doc, exclusive=False)


def _cycles(default: int, doc: str, positive: bool = False) -> Param:
    return Param(int, default, "cycles", doc, exclusive=positive)


MUL4_PJ_PER_CYCLE = 139.15
"""The baseline's 4-bit multiply predictor at DLZS's throughput (4096 MACs a cycle), active; docs/cost-model.md."""
MUL4_MM2 = 0.931
"""Its area; docs/cost-model.md."""

ALTERNATIVE_AREAS = {"mul4_mm2": "dlzs_mm2"}
"""Area keys of modules that replace one of SOFA's (the baseline's predictor replaces DLZS), not added to it."""

SCHEMA_TABLE: dict[str, dict[str, Param]] = {
    "target": _target_params(),
    "energy": {
        # Table III powers at 1 GHz read as average active power: mW == pJ/cycle.
        "dlzs_pj_per_cycle": _nonnegative(29.05, "pJ/cycle", "DLZS prediction engine, active"),
        # docs/cost-model.md: Table III's 16-bit PE scaled to 4 bits with Horowitz's (ISSCC 2014) width laws.
        "mul4_pj_per_cycle": _nonnegative(
            MUL4_PJ_PER_CYCLE, "pJ/cycle", "the baseline's 4-bit multiply predictor array (DLZS's rate)"
        ),
        "sads_pj_per_cycle": _nonnegative(112.79, "pJ/cycle", "iterative SADS engine, active"),
        "kvgen_pj_per_cycle": _nonnegative(146.21, "pJ/cycle", "KV-generation PE array, active"),
        "sufa_pj_per_cycle": _nonnegative(485.12, "pJ/cycle", "SU-FA engine, active"),
        "sram_pj_per_cycle": _nonnegative(170.23, "pJ/cycle", "all SRAMs at the reference access rate"),
        "other_pj_per_cycle": _nonnegative(6.45, "pJ/cycle", "scheduler, controller and DMA engines; always on"),
        "dram_pj_per_bit": _nonnegative(4.01, "pJ/bit", "HBM2 DRAM access"),
        "io_pj_per_bit": _nonnegative(1.11, "pJ/bit", "memory interface (PHY)"),
        "idle_power_fraction": Param(
            float, 0.1, "", "share of active power an idle module still draws", exclusive=False, maximum=1.0
        ),
        "sram_reference_bytes_per_cycle": Param(
            float, 256.0, "bytes/cycle", "SRAM traffic at which the SRAMs draw sram_pj_per_cycle"
        ),
    },
    "timing": {
        "ctrl_cycles": _cycles(1, "one CTRL instruction (scalar op, loop step, barrier)", positive=True),
        "dma_setup_cycles": _cycles(4, "descriptor decode before a DMA issues its first request"),
        "dlzs_pipeline_cycles": _cycles(160, "DLZS array fill/drain: rows + cols of the 128x32 array"),
        "sads_round_cycles": _cycles(1, "cycles per 16->4 sort round (one round per cycle)", positive=True),
        "sads_pipeline_cycles": _cycles(10, "depth of the pruned 16-input bitonic network"),
        "kvgen_pipeline_cycles": _cycles(132, "KV-generation array fill/drain: rows + cols"),
        "sufa_pipeline_cycles": _cycles(132, "SU-FA SA-1 -> AP -> SA-2 fill/drain: rows + cols"),
        "exp_latency": _cycles(4, "EXP unit latency"),
        "div_latency": _cycles(8, "DIV unit latency"),
        "max_update_cycles": _cycles(1, "AP mode-1 stall per max update, per PE line"),
        "sram_port_bytes_per_cycle": Param(
            int, 0, "bytes/cycle", "bytes per cycle one SRAM buffer serves; 0 = unlimited", exclusive=False
        ),
    },
    "area": {
        "dlzs_mm2": _nonnegative(0.351, "mm²", "DLZS prediction engine"),
        "mul4_mm2": _nonnegative(MUL4_MM2, "mm²", "the baseline's 4-bit multiply predictor array (replaces DLZS)"),
        "sads_mm2": _nonnegative(0.679, "mm²", "iterative SADS engine"),
        "kvgen_mm2": _nonnegative(0.875, "mm²", "KV-generation PE array"),
        "sufa_mm2": _nonnegative(3.012, "mm²", "SU-FA engine"),
        "sram_mm2": _nonnegative(0.497, "mm²", "Token, Weight and Temp SRAM"),
        "other_mm2": _nonnegative(0.280, "mm²", "scheduler and others"),
    },
}
"""Every config key: section -> key -> Param. The JSON schema is built from this."""

TOP_LEVEL_STRINGS = ("name", "description")
"""Optional top-level string keys (a config's name shows up in reports and traces)."""


def _param_schema(param: Param) -> dict[str, Any]:
    if param.type is str:
        return {"type": "string", "enum": list(param.choices)}
    schema: dict[str, Any] = {"type": "integer" if param.type is int else "number"}
    schema["exclusiveMinimum" if param.exclusive else "minimum"] = param.minimum
    # Without a maximum, 2^63 bytes of SRAM or a 1e308 ns latency reach numpy and crash the simulator.
    schema["maximum"] = param.maximum if param.maximum is not None else (MAX_COUNT if param.type is int else MAX_FLOAT)
    return schema


def json_schema() -> dict[str, Any]:
    """The JSON schema every config document is validated against."""
    properties: dict[str, Any] = {key: {"type": "string"} for key in TOP_LEVEL_STRINGS}
    for section, params in SCHEMA_TABLE.items():
        properties[section] = {
            "type": "object",
            "properties": {key: _param_schema(param) for key, param in params.items()},
            "additionalProperties": False,
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


def _is_finite_number(_checker: Any, instance: object) -> bool:
    # TOML has inf and nan; no config value may be either (nan passes every bound check).
    return isinstance(instance, int | float) and not isinstance(instance, bool) and math.isfinite(instance)


def _is_strict_integer(_checker: Any, instance: object) -> bool:
    # JSON Schema counts 128.0 as an integer; a TOML float where an integer
    # (a size or a count) belongs is a mistake, so reject it.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_integer).redefine(
        "number", _is_finite_number
    ),
)
_VALIDATOR = _Validator(json_schema())


def _known_keys(path: tuple[str, ...]) -> list[str]:
    if not path:
        return [*TOP_LEVEL_STRINGS, *SCHEMA_TABLE]
    return list(SCHEMA_TABLE.get(path[0], {}))


def _describe(error: ValidationError) -> list[str]:
    """Turn one schema error into `key = value: problem` lines."""
    path = tuple(str(part) for part in error.absolute_path)
    dotted = ".".join(path)
    value = error.instance
    match error.validator:
        case "additionalProperties":
            known = _known_keys(path)
            lines = []
            for key in sorted(set(value) - set(known)):
                where = f"{dotted}.{key}" if dotted else key
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
                lines.append(f"{where}: unknown key{hint}")
            return lines
        case "type":
            finite = not (isinstance(value, float) and not math.isfinite(value))
            expected = {
                "integer": "must be an integer",
                "number": "must be a number" if finite else "must be a finite number",
                "object": "must be a table",
                "string": "must be a string",
            }[str(error.validator_value)]
            return [f"{dotted or '<document>'} = {value!r}: {expected}"]
        case "exclusiveMinimum":
            kind = "integer" if isinstance(value, int) else "number"
            return [f"{dotted} = {value!r}: must be a positive {kind}"]
        case "minimum":
            return [f"{dotted} = {value!r}: must be >= {error.validator_value}"]
        case "maximum":
            return [f"{dotted} = {value!r}: must be <= {error.validator_value}"]
        case "enum":
            choices = ", ".join(f'"{choice}"' for choice in error.validator_value)
            return [f"{dotted} = {value!r}: must be one of {choices}"]
        case _:
            return [f"{dotted} = {value!r}: {error.message}"]


def validate_document(document: Mapping[str, Any], source: str) -> None:
    """Raise `ConfigError` listing every schema violation in `document`."""
    lines = sorted(line for error in _VALIDATOR.iter_errors(document) for line in _describe(error))
    if lines:
        raise ConfigError("\n".join(f"{source}: {line}" for line in lines))


def _canonical_section(section: str, values: Mapping[str, Any]) -> dict[str, int | float | str]:
    # Coerce to the declared type so `clock_mhz = 1000` and `1000.0` are the same machine.
    params = SCHEMA_TABLE[section]
    return {key: params[key].type(values.get(key, param.default)) for key, param in params.items()}


def target_hash(target: Mapping[str, int | float | str]) -> str:
    """sha256 (hex) of the canonical JSON of a `#sofa.target` parameter set.

    Missing keys take the paper's defaults, so `target_hash({})` is the hash
    of the paper's design. Both the assembler (from the IR attribute) and the
    simulator (from the config file) call this, so they agree by construction.
    """
    return TargetAttr(_canonical_section("target", target)).config_hash()


@dataclass(frozen=True)
class HardwareConfig:
    """A validated hardware configuration. Build it with `load_config` or `parse_config`."""

    target: Mapping[str, int | float | str] = field(default_factory=lambda: _canonical_section("target", {}))
    energy: Mapping[str, float] = field(default_factory=lambda: _canonical_section("energy", {}))
    timing: Mapping[str, int] = field(default_factory=lambda: _canonical_section("timing", {}))
    area: Mapping[str, float] = field(default_factory=lambda: _canonical_section("area", {}))
    name: str = "sofa-28nm"
    description: str = ""
    source: str = "<defaults>"

    def __post_init__(self) -> None:
        # Normalise and re-validate so a hand-built config is as safe as a loaded one.
        document = {section: dict(getattr(self, section)) for section in SCHEMA_TABLE}
        validate_document(document, self.source)
        for section in SCHEMA_TABLE:
            canonical = _canonical_section(section, getattr(self, section))
            object.__setattr__(self, section, MappingProxyType(canonical))
        self._check_derived()
        try:  # the `#sofa.target` attribute's own range checks, which programs are compiled against
            target_hash(self.target)
        except VerifyException as error:
            raise ConfigError(f"{self.source}: {error}") from None

    def _check_derived(self) -> None:
        """Each value is in range, but a tiny clock still makes the cycle time or DRAM bytes per cycle infinite."""
        clock_mhz = float(self.target["clock_mhz"])
        derived = {
            "the cycle time (1 / clock_mhz)": 1.0 / clock_mhz,
            "DRAM bytes per cycle (dram_bandwidth_gbps / clock_mhz)": self.dram_bytes_per_cycle,
            "DRAM latency in cycles (dram_latency_ns x clock_mhz)": float(self.target["dram_latency_ns"]) * clock_mhz,
        }
        for name, value in derived.items():
            if not math.isfinite(value):
                raise ConfigError(f"{self.source}: target.clock_mhz = {clock_mhz!r}: makes {name} infinite")

    def config_hash(self) -> str:
        """sha256 of the architectural parameters ([target]); programs embed it."""
        return target_hash(self.target)

    def as_target_dict(self) -> dict[str, int | float | str]:
        """The `#sofa.target` parameters, in `TARGET_DEFAULTS` order."""
        return {key: self.target[key] for key in TARGET_DEFAULTS}

    def with_values(self, overrides: Mapping[str, int | float | str]) -> HardwareConfig:
        """A copy with dotted-path overrides, e.g. `{"target.lanes": 64}`; validated."""
        sections: dict[str, dict[str, Any]] = {section: dict(getattr(self, section)) for section in SCHEMA_TABLE}
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section not in sections or not key:
                raise ConfigError(f"{self.source}: {dotted}: not a '<section>.<key>' path")
            sections[section][key] = value
        return HardwareConfig(**sections, name=self.name, description=self.description, source=self.source)

    # Derived figures the timing and energy models use.

    @property
    def clock_hz(self) -> float:
        return float(self.target["clock_mhz"]) * 1e6

    @property
    def dram_bytes_per_cycle(self) -> float:
        return float(self.target["dram_bandwidth_gbps"]) * 1e9 / self.clock_hz

    @property
    def dram_latency_cycles(self) -> int:
        # Round up: a request is not back before the cycle after its latency elapses.
        nanoseconds = float(self.target["dram_latency_ns"])
        return _ceil_float(nanoseconds * float(self.target["clock_mhz"]) / 1000.0)

    def sram_capacity(self) -> dict[str, int]:
        """Capacity in bytes of each buffer, keyed by `Buffer` value."""
        return {buffer: int(self.target[f"{buffer}_sram"]) for buffer in ("token", "weight", "temp")}

    def unit_pj_per_cycle(self, key: str, shift_adds: int = 0, mul4_macs: int = 0) -> float:
        """Active pJ/cycle of engine `key` (``dlzs``, ``sads``, ...). The prediction array (``dlzs``) draws
        DLZS's power for shift-adds and the baseline's 4-bit multipliers' (`mul4_pj_per_cycle`) for
        4-bit MACs, weighted by the operations each did."""
        power = float(self.energy[f"{key}_pj_per_cycle"])
        ops = shift_adds + mul4_macs
        if key != "dlzs" or not ops:
            return power
        return (shift_adds * power + mul4_macs * float(self.energy["mul4_pj_per_cycle"])) / ops

    def total_area_mm2(self, predictor: str = "dlzs") -> float:
        """The chip's area with `predictor`'s array (``mul4``: the 4-bit multipliers in DLZS's place)."""
        left_out = {
            replaced if alternative == f"{predictor}_mm2" else alternative
            for alternative, replaced in ALTERNATIVE_AREAS.items()
        }
        return sum(value for key, value in self.area.items() if key not in left_out)


def _ceil_float(quotient: float) -> int:
    whole = int(quotient)
    # Tolerate float noise such as 100 * 1000 / 1000 == 100.00000000000001.
    return whole if quotient - whole <= 1e-9 else whole + 1


def parse_config(text: str, source: str = "<string>") -> HardwareConfig:
    """Parse and validate a TOML config document."""
    try:
        document = parse_document(text, source)
    except DocumentError as error:
        raise ConfigError(str(error)) from None
    validate_document(document, source)
    sections = {section: document.get(section, {}) for section in SCHEMA_TABLE}
    return HardwareConfig(
        **sections,
        name=document.get("name", "custom" if source.startswith("<") else Path(source).stem),
        description=document.get("description", ""),
        source=source,
    )


def load_config(path: str | Path | None = None) -> HardwareConfig:
    """Load a TOML config; `None` gives the paper's design (the built-in defaults)."""
    if path is None:
        return HardwareConfig()
    try:
        text = read_text(path)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror}") from None
    except DocumentError as error:
        raise ConfigError(str(error)) from None
    return parse_config(text, str(path))
