"""Attributes of the `sofa_isa` dialect: SRAM and DRAM operands, DRAM symbols and image segments."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import ArrayAttr, IntAttr, StringAttr
from xdsl.ir import Attribute, ParametrizedAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from dialects.sofa_isa.fields import BUFFERS, REGISTERS, Dram, Sram


def parse_reg(parser: AttrParser | Parser) -> int:
    pos = parser.pos
    name = parser.parse_identifier(" (a register r0..r15)")
    if not (name.startswith("r") and name[1:].isdigit() and 0 <= int(name[1:]) < REGISTERS):
        parser.raise_error(f"expected a register r0..r15, got '{name}'", pos, parser.pos)
    return int(name[1:])


def parse_base_offset(parser: AttrParser | Parser) -> tuple[int, int]:
    """``rN + imm`` (the ``+ imm`` part is optional)."""
    reg = parse_reg(parser)
    offset = 0
    if parser.parse_optional_punctuation("+") is not None:
        offset = parser.parse_integer(allow_boolean=False, allow_negative=False)
    return reg, offset


@irdl_attr_definition
class SramAttr(ParametrizedAttribute):
    """An SRAM operand ``#sofa_isa.sram<temp, r3 + 4096>``: buffer, base register, byte offset."""

    name = "sofa_isa.sram"

    buffer: StringAttr
    reg: IntAttr
    offset: IntAttr

    def __init__(self, buffer: str, reg: int, offset: int):
        super().__init__(StringAttr(buffer), IntAttr(reg), IntAttr(offset))

    @property
    def value(self) -> Sram:
        return Sram(self.buffer.data, self.reg.data, self.offset.data)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        parser.parse_punctuation("<")
        buffer = parser.parse_identifier(" (an SRAM buffer: token, weight or temp)")
        parser.parse_punctuation(",")
        reg, offset = parse_base_offset(parser)
        parser.parse_punctuation(">")
        return (StringAttr(buffer), IntAttr(reg), IntAttr(offset))

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.buffer.data}, r{self.reg.data} + {self.offset.data}>")

    def verify(self) -> None:
        if self.buffer.data not in BUFFERS:
            raise VerifyException(f"unknown SRAM buffer '{self.buffer.data}' (expected {', '.join(BUFFERS)})")
        if not 0 <= self.reg.data < REGISTERS:
            raise VerifyException(f"register r{self.reg.data} out of range (r0..r15)")


@irdl_attr_definition
class DramAttr(ParametrizedAttribute):
    """A DRAM operand ``#sofa_isa.dram<r2 + 65536>``: base register and byte offset."""

    name = "sofa_isa.dram"

    reg: IntAttr
    offset: IntAttr

    def __init__(self, reg: int, offset: int):
        super().__init__(IntAttr(reg), IntAttr(offset))

    @property
    def value(self) -> Dram:
        return Dram(self.reg.data, self.offset.data)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        parser.parse_punctuation("<")
        reg, offset = parse_base_offset(parser)
        parser.parse_punctuation(">")
        return (IntAttr(reg), IntAttr(offset))

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<r{self.reg.data} + {self.offset.data}>")

    def verify(self) -> None:
        if not 0 <= self.reg.data < REGISTERS:
            raise VerifyException(f"register r{self.reg.data} out of range (r0..r15)")


SYMBOL_KINDS = ("input", "output", "const", "scratch")
"""``scratch``: DRAM the program writes and reads itself (e.g. generated K/V rows); never staged or returned."""
SYMBOL_DTYPES = ("i8", "u8", "i16", "f16", "i32", "f32", "f64", "i64")


@irdl_attr_definition
class SymbolAttr(ParametrizedAttribute):
    """A named DRAM region: ``#sofa_isa.symbol<"q", input, f32, [128, 64], 0, 32768>``.

    Parameters: name, kind (input, output, const), element dtype, shape,
    DRAM byte address, size in bytes.
    """

    name = "sofa_isa.symbol"

    sym_name: StringAttr
    kind: StringAttr
    dtype: StringAttr
    shape: ArrayAttr[IntAttr]
    address: IntAttr
    size: IntAttr

    def __init__(self, name: str, kind: str, dtype: str, shape: Sequence[int], address: int, size: int):
        super().__init__(
            StringAttr(name),
            StringAttr(kind),
            StringAttr(dtype),
            ArrayAttr([IntAttr(d) for d in shape]),
            IntAttr(address),
            IntAttr(size),
        )

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        parser.parse_punctuation("<")
        name = parser.parse_str_literal(" (the symbol name)")
        parser.parse_punctuation(",")
        kind = parser.parse_identifier(" (input, output or const)")
        parser.parse_punctuation(",")
        dtype = parser.parse_identifier(" (an element dtype)")
        parser.parse_punctuation(",")
        shape = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, lambda: parser.parse_integer(allow_boolean=False, allow_negative=False)
        )
        parser.parse_punctuation(",")
        address = parser.parse_integer(allow_boolean=False, allow_negative=False)
        parser.parse_punctuation(",")
        size = parser.parse_integer(allow_boolean=False, allow_negative=False)
        parser.parse_punctuation(">")
        return (
            StringAttr(name),
            StringAttr(kind),
            StringAttr(dtype),
            ArrayAttr([IntAttr(d) for d in shape]),
            IntAttr(address),
            IntAttr(size),
        )

    def print_parameters(self, printer: Printer) -> None:
        shape = ", ".join(str(d.data) for d in self.shape.data)
        printer.print_string(
            f'<"{self.sym_name.data}", {self.kind.data}, {self.dtype.data}, [{shape}], '
            f"{self.address.data}, {self.size.data}>"
        )

    def verify(self) -> None:
        if self.kind.data not in SYMBOL_KINDS:
            raise VerifyException(f"symbol '{self.sym_name.data}': kind '{self.kind.data}' is not input/output/const")
        if self.dtype.data not in SYMBOL_DTYPES:
            raise VerifyException(
                f"symbol '{self.sym_name.data}': unknown dtype '{self.dtype.data}' "
                f"(expected {', '.join(SYMBOL_DTYPES)})"
            )


@irdl_attr_definition
class SegmentAttr(ParametrizedAttribute):
    """A DRAM image segment: ``#sofa_isa.segment<4096, "00ff...">`` (address, hex bytes)."""

    name = "sofa_isa.segment"

    address: IntAttr
    data: StringAttr

    def __init__(self, address: int, data: bytes):
        super().__init__(IntAttr(address), StringAttr(data.hex()))

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        parser.parse_punctuation("<")
        address = parser.parse_integer(allow_boolean=False, allow_negative=False)
        parser.parse_punctuation(",")
        data = parser.parse_str_literal(" (hex bytes)")
        parser.parse_punctuation(">")
        return (IntAttr(address), StringAttr(data))

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f'<{self.address.data}, "{self.data.data}">')

    def verify(self) -> None:
        try:
            bytes.fromhex(self.data.data)
        except ValueError:
            raise VerifyException("segment data is not a hex byte string") from None
