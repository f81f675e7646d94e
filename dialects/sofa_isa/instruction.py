"""`IsaInstructionOp`, the base of every instruction op: fields as properties, text syntax, verification.

An instruction op's properties are its `OpSpec` fields (in table order)
plus the ``wait`` and ``signal`` semaphore masks. Parsing, printing and
verification all walk the op's `SPEC`, so each explicit op class in
`dialects.sofa_isa.ops` needs only its name, its spec and its properties.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from xdsl.dialects.builtin import I64, Float32Type, FloatAttr, IntegerAttr, StringAttr, f32, i64
from xdsl.ir import Attribute
from xdsl.irdl import IRDLOperation, prop_def
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from dialects.sofa_isa.attrs import DramAttr, SramAttr, parse_base_offset, parse_reg
from dialects.sofa_isa.fields import BUFFERS, DTYPES, Dram, FieldSpec, Sram, to_f32
from dialects.sofa_isa.specs import OpSpec, instruction_problems

PROPERTY_TYPES: dict[str, Any] = {
    "sram": SramAttr,
    "dram": DramAttr,
    "reg": IntegerAttr[I64],
    "uint": IntegerAttr[I64],
    "int": IntegerAttr[I64],
    "flag": IntegerAttr[I64],
    "f32": FloatAttr[Float32Type],
    "dtype": StringAttr,
}
"""Field kind -> the `prop_def` constraint of its property (the explicit op classes must agree)."""

_ATTRIBUTE_CLASSES: dict[str, type[Attribute]] = {
    "sram": SramAttr,
    "dram": DramAttr,
    "f32": FloatAttr,
    "dtype": StringAttr,
}
"""Field kind -> the attribute class `verify_` demands (integer kinds: `IntegerAttr`)."""


def _attr_to_value(field: FieldSpec, attr: Attribute) -> Any:
    if isinstance(attr, SramAttr | DramAttr):
        return attr.value
    if isinstance(attr, IntegerAttr):
        return attr.value.data
    if isinstance(attr, FloatAttr):
        return float(attr.value.data)
    if isinstance(attr, StringAttr):
        return attr.data
    raise VerifyException(f"field '{field.name}': unsupported attribute {attr}")


def value_to_attr(field: FieldSpec, value: Any) -> Attribute:
    """The property attribute for a field value."""
    match field.kind:
        case "sram":
            return SramAttr(value.buffer, value.reg, value.offset)
        case "dram":
            return DramAttr(value.reg, value.offset)
        case "f32":
            return FloatAttr(to_f32(value), f32)
        case "dtype":
            return StringAttr(value)
        case _:
            return IntegerAttr(int(value), i64)


def _format_f32(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(to_f32(value))


class IsaInstructionOp(IRDLOperation):
    """Base of the instruction ops; `SPEC` is the instruction's `OpSpec`."""

    SPEC: ClassVar[OpSpec]

    wait = prop_def(IntegerAttr[I64])
    signal = prop_def(IntegerAttr[I64])

    def field_values(self) -> dict[str, Any]:
        return {f.name: _attr_to_value(f, self.properties[f.name]) for f in self.SPEC.fields}

    @property
    def wait_mask(self) -> int:
        attr = self.properties.get("wait")
        return attr.value.data if isinstance(attr, IntegerAttr) else 0

    @property
    def signal_mask(self) -> int:
        attr = self.properties.get("signal")
        return attr.value.data if isinstance(attr, IntegerAttr) else 0

    @classmethod
    def build_op(cls, values: Mapping[str, Any], wait: int = 0, signal: int = 0) -> IsaInstructionOp:
        props: dict[str, Attribute] = {f.name: value_to_attr(f, values[f.name]) for f in cls.SPEC.fields}
        props["wait"] = IntegerAttr(wait, i64)
        props["signal"] = IntegerAttr(signal, i64)
        return cls.create(properties=props)

    def verify_(self) -> None:
        for field in self.SPEC.fields:
            attr = self.properties.get(field.name)
            expected = _ATTRIBUTE_CLASSES.get(field.kind, IntegerAttr)
            if not isinstance(attr, expected):
                raise VerifyException(f"{self.SPEC.mnemonic}: field '{field.name}' must be a {expected.name} attribute")
        problems = instruction_problems(self.SPEC, self.field_values(), self.wait_mask, self.signal_mask)
        if problems:
            raise VerifyException(problems[0])

    @classmethod
    def parse(cls, parser: Parser) -> IsaInstructionOp:
        values: dict[str, Any] = {}
        masks = {"wait": 0, "signal": 0}
        fields = {f.name: f for f in cls.SPEC.fields}
        mnemonic = cls.SPEC.mnemonic

        def parse_entry(key: str, pos: int) -> None:
            parser.parse_punctuation("=")
            if key in masks:
                masks[key] = parser.parse_integer(allow_boolean=False, allow_negative=False)
                return
            if key not in fields:
                known = ", ".join(fields) or "none"
                parser.raise_error(f"{mnemonic} has no field '{key}' (fields: {known})", pos, parser.pos)
            if key in values:
                parser.raise_error(f"field '{key}' is given twice", pos, parser.pos)
            values[key] = _parse_field_value(parser, fields[key])

        # Field-less ops may be followed directly by the next op's name, so
        # only the mask keywords can start their entry list.
        pos = parser.pos
        first = parser.parse_optional_identifier() if fields else parser.parse_optional_keyword_in(("wait", "signal"))
        if first is not None:
            parse_entry(first, pos)
            while parser.parse_optional_punctuation(",") is not None:
                pos = parser.pos
                parse_entry(parser.parse_identifier(" (a field name)"), pos)
        missing = [name for name in fields if name not in values]
        if missing:
            parser.raise_error(f"{mnemonic}: missing field(s) {', '.join(missing)}")
        attr_dict = parser.parse_optional_attr_dict_with_keyword()
        op = cls.build_op(values, masks["wait"], masks["signal"])
        if attr_dict is not None:
            op.attributes.update(attr_dict.data)
        return op

    def print(self, printer: Printer) -> None:
        parts = []
        for field in self.SPEC.fields:
            value = _attr_to_value(field, self.properties[field.name])
            parts.append(f"{field.name} = {_format_field_value(field, value)}")
        if self.wait_mask:
            parts.append(f"wait = {self.wait_mask}")
        if self.signal_mask:
            parts.append(f"signal = {self.signal_mask}")
        if parts:
            printer.print_string(" " + ", ".join(parts))
        if self.attributes:
            printer.print_op_attributes(self.attributes, print_keyword=True)


def _parse_field_value(parser: Parser, field: FieldSpec) -> Any:
    match field.kind:
        case "sram":
            pos = parser.pos
            buffer = parser.parse_identifier(" (an SRAM buffer)")
            if buffer not in BUFFERS:
                parser.raise_error(f"unknown SRAM buffer '{buffer}' (expected {', '.join(BUFFERS)})", pos, parser.pos)
            parser.parse_punctuation("[")
            reg, offset = parse_base_offset(parser)
            parser.parse_punctuation("]")
            return Sram(buffer, reg, offset)
        case "dram":
            pos = parser.pos
            if parser.parse_identifier(" (dram)") != "dram":
                parser.raise_error("expected a DRAM operand dram[rN + offset]", pos, parser.pos)
            parser.parse_punctuation("[")
            reg, offset = parse_base_offset(parser)
            parser.parse_punctuation("]")
            return Dram(reg, offset)
        case "reg":
            return parse_reg(parser)
        case "f32":
            negative = parser.parse_optional_punctuation("-") is not None
            if parser.parse_optional_keyword("inf") is not None:
                value = math.inf
            else:
                value = float(parser.parse_number())
            return -value if negative else value
        case "dtype":
            pos = parser.pos
            name = parser.parse_identifier(" (f16 or f32)")
            if name not in DTYPES:
                parser.raise_error(f"dtype must be one of {', '.join(DTYPES)}, got '{name}'", pos, parser.pos)
            return name
        case _:
            return parser.parse_integer(allow_boolean=False)


def _format_field_value(field: FieldSpec, value: Any) -> str:
    match field.kind:
        case "sram":
            return f"{value.buffer}[r{value.reg} + {value.offset}]"
        case "dram":
            return f"dram[r{value.reg} + {value.offset}]"
        case "reg":
            return f"r{value}"
        case "f32":
            return _format_f32(value)
        case _:
            return str(value)
