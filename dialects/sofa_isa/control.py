"""The `sofa_isa` region ops: hardware loops (`LoopOp`, `LoopRegOp`) and the whole `ProgramOp`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from xdsl.dialects.builtin import I64, ArrayAttr, IntegerAttr, StringAttr, i64
from xdsl.ir import Block, Region
from xdsl.irdl import IRDLOperation, irdl_op_definition, opt_prop_def, prop_def, region_def, traits_def
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import NoTerminator
from xdsl.utils.exceptions import VerifyException

from dialects.sofa_isa.attrs import SegmentAttr, SymbolAttr, parse_reg
from dialects.sofa_isa.fields import MAX_LOOP_DEPTH, REGISTERS

LoopT = TypeVar("LoopT", bound=IRDLOperation)


def _verify_loop_body(loop: IRDLOperation) -> None:
    """What `loop` and `loopr` share: a non-empty body, and at most `MAX_LOOP_DEPTH` loops nested."""
    if not any(True for _ in loop.regions[0].block.ops):
        raise VerifyException("loop body is empty")
    depth = 1
    parent = loop.parent_op()
    while parent is not None:
        if isinstance(parent, LoopOp | LoopRegOp):
            depth += 1
        parent = parent.parent_op()
    if depth > MAX_LOOP_DEPTH:
        raise VerifyException(f"loops nest {depth} deep; the hardware supports {MAX_LOOP_DEPTH}")


def _parse_loop_rest(cls: type[LoopT], parser: Parser, count: int) -> LoopT:
    """A loop after its count: optional ``attributes {...}``, then the body."""
    attrs = parser.parse_optional_attr_dict_with_keyword()
    region = parser.parse_region()
    if not region.blocks:  # ``{ }``: an empty block, so the verifier can say the body is empty
        region.add_block(Block())
    op = cls.create(properties={"count": IntegerAttr(count, i64)}, regions=[region])
    if attrs is not None:
        op.attributes.update(attrs.data)
    return op


def _print_loop(loop: IRDLOperation, printer: Printer, count_text: str) -> None:
    printer.print_string(count_text)
    if loop.attributes:
        printer.print_op_attributes(loop.attributes, print_keyword=True)
    printer.print_string(" ")
    printer.print_region(loop.regions[0], print_entry_block_args=False, print_empty_block=False)


@irdl_op_definition
class LoopOp(IRDLOperation):
    """A hardware loop: ``sofa_isa.loop count = N { ... }`` runs its body N times.

    It encodes as ``loop count, body`` followed by the body's instructions;
    loops nest at most 4 deep.
    """

    name = "sofa_isa.loop"

    count = prop_def(IntegerAttr[I64])
    body = region_def("single_block")

    traits = traits_def(NoTerminator())

    def __init__(self, count: int, ops: Sequence[IRDLOperation] = ()):
        super().__init__(properties={"count": IntegerAttr(count, i64)}, regions=[Region(Block(ops))])

    def verify_(self) -> None:
        count = self.count.value.data
        if not 1 <= count < (1 << 24):
            raise VerifyException(f"loop count {count} out of range [1, {(1 << 24) - 1}]")
        _verify_loop_body(self)

    @classmethod
    def parse(cls, parser: Parser) -> LoopOp:
        parser.parse_characters("count")
        parser.parse_punctuation("=")
        count = parser.parse_integer(allow_boolean=False, allow_negative=False)
        return _parse_loop_rest(cls, parser, count)

    def print(self, printer: Printer) -> None:
        _print_loop(self, printer, f" count = {self.count.value.data}")


@irdl_op_definition
class LoopRegOp(IRDLOperation):
    """A hardware loop whose count is a register: ``sofa_isa.loopr count = r12 { ... }``.

    It encodes as ``loopr count, body`` followed by the body's instructions; a
    count <= 0 skips the body. It shares `loop`'s nesting limit.
    """

    name = "sofa_isa.loopr"

    count = prop_def(IntegerAttr[I64])
    body = region_def("single_block")

    traits = traits_def(NoTerminator())

    def __init__(self, count_register: int, ops: Sequence[IRDLOperation] = ()):
        super().__init__(properties={"count": IntegerAttr(count_register, i64)}, regions=[Region(Block(ops))])

    def verify_(self) -> None:
        register = self.count.value.data
        if not 0 <= register < REGISTERS:
            raise VerifyException(f"loopr count register r{register} out of range r0..r{REGISTERS - 1}")
        _verify_loop_body(self)

    @classmethod
    def parse(cls, parser: Parser) -> LoopRegOp:
        parser.parse_characters("count")
        parser.parse_punctuation("=")
        return _parse_loop_rest(cls, parser, parse_reg(parser))

    def print(self, printer: Printer) -> None:
        _print_loop(self, printer, f" count = r{self.count.value.data}")


@irdl_op_definition
class ProgramOp(IRDLOperation):
    """A whole program: optional name, target config hash, DRAM size, symbol table, DRAM image and body.

    Syntax: ``sofa_isa.program @attn0 {config_hash = ..., ...} { ... }``; the
    name is how a `sofa.kernel_call` refers to a compiled kernel.

    ``config_hash`` is the 64-hex-digit sha256 of the target config;
    ``symbols`` is an array of `#sofa_isa.symbol`, ``segments`` an array of
    `#sofa_isa.segment`.
    """

    name = "sofa_isa.program"

    sym_name = opt_prop_def(StringAttr)
    config_hash = prop_def(StringAttr)
    dram_bytes = prop_def(IntegerAttr[I64])
    symbols = prop_def(ArrayAttr[SymbolAttr])
    segments = prop_def(ArrayAttr[SegmentAttr])
    body = region_def("single_block")

    traits = traits_def(NoTerminator())

    def verify_(self) -> None:
        text = self.config_hash.data
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise VerifyException(f"config_hash must be 64 lowercase hex digits, got '{text}'")
        dram = self.dram_bytes.value.data
        if not 0 < dram <= (1 << 32):
            raise VerifyException(f"dram_bytes {dram} out of range [1, 2^32]")
        names = set()
        for sym in self.symbols.data:
            name = sym.sym_name.data
            if name in names:
                raise VerifyException(f"symbol '{name}' is defined twice")
            names.add(name)
            if sym.address.data + sym.size.data > dram:
                raise VerifyException(f"symbol '{name}' [{sym.address.data}, +{sym.size.data}) lies outside DRAM")
        for seg in self.segments.data:
            if seg.address.data + len(seg.data.data) // 2 > dram:
                raise VerifyException(f"segment at {seg.address.data} lies outside DRAM")

    @classmethod
    def parse(cls, parser: Parser) -> ProgramOp:
        name = parser.parse_optional_symbol_name()
        pos = parser.pos
        props = parser.parse_optional_attr_dict()
        if name is not None:
            props["sym_name"] = name
        for key in ("config_hash", "dram_bytes", "symbols", "segments"):
            if key not in props:
                parser.raise_error(f"sofa_isa.program needs '{key}'", pos, parser.pos)
        region = parser.parse_region()
        return cls.create(properties=props, regions=[region])

    def print(self, printer: Printer) -> None:
        if self.sym_name is not None:
            printer.print_string(" ")
            printer.print_symbol_name(self.sym_name.data)
        printer.print_string(" ")
        printer.print_attr_dict(
            {key: self.properties[key] for key in ("config_hash", "dram_bytes", "symbols", "segments")}
        )
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False, print_empty_block=False)
