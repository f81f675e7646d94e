"""SOFA's MLIR text parser: xDSL's `Parser` with three xDSL 0.74 parser bugs fixed in subclasses, and a depth bound.

Two of the bugs let a small bad input hang or exhaust memory; the third
changes numbers. xDSL parses (and verifies and prints) nested regions,
attributes and types recursively, so 200 levels of nesting end in a
`RecursionError`; `SofaParser` refuses text nested deeper than `MAX_NESTING`
with a parse error at the bracket that goes too deep. Everything in SOFA that reads MLIR text (`sofa-opt`,
`sofa-run-ir`, model bundles, the tests) parses with `SofaParser`. The fixes
live in subclasses, so importing SOFA leaves xDSL's own classes untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from xdsl.context import Context
from xdsl.dialects.builtin import AnyFloat, ModuleOp
from xdsl.dialects.func import FuncOp
from xdsl.ir import Block, Operation, OpResult
from xdsl.parser import Parser
from xdsl.parser.attribute_parser import AttrParser
from xdsl.parser.generic_parser import ParserState
from xdsl.traits import SymbolTable
from xdsl.utils.exceptions import MultipleSpansParseError, ParseError, VerifyException
from xdsl.utils.lexer import Input, Position, Span
from xdsl.utils.mlir_lexer import MLIRLexer

MAX_NESTING = 100
"""Deepest bracket nesting ({, (, [, <) in MLIR text; xDSL recurses once or more per level.

Real modules nest about a dozen deep; xDSL 0.74 handles 100 and overflows Python's stack near 200.
"""

# What does not nest: string literals, comments, and the '>' of '->' and '>='/'<='.
_NOT_NESTING = re.compile(r'"(?:[^"\\\n]|\\.)*+"|//[^\n]*|->|[<>]=')
_BRACKETS = re.compile(r"[{(\[<]|[})\]>]")


def nesting_too_deep(text: str, limit: int = MAX_NESTING) -> int | None:
    """The offset of the first bracket nested deeper than `limit` in `text`, or None."""
    depth = 0
    position = 0
    for skipped in [*_NOT_NESTING.finditer(text), None]:
        stop = skipped.start() if skipped else len(text)
        for bracket in _BRACKETS.finditer(text, position, stop):
            if bracket.group() in "{([<":
                depth += 1
                if depth > limit:
                    return bracket.start()
            else:
                depth = max(0, depth - 1)
        position = skipped.end() if skipped else stop
    return None


class SofaLexer(MLIRLexer):
    """xDSL's lexer with a string-literal pattern that fails at once on a missing closing quote.

    xDSL 0.74 matches a string literal with ``"(?:[^"\\...]+|escape)*"``: the
    nested ``+`` inside ``*`` backtracks exponentially when the closing quote
    is missing, so ``{a = "0123...`` (40 characters, no closing quote) hangs
    the parser for hours. The same language without the nested quantifier,
    matched possessively, fails at once.
    """

    _unescaped_characters_regex = re.compile(r'"(?:[^"\\\n\v\f]|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*+"')


class SofaParser(Parser):
    """xDSL's parser reading through `SofaLexer`, with bounded integer widths and hex floats read as bits.

    Integer types: ``i644294967296`` makes xDSL compute ``1 << 644294967296``
    (MemoryError, or minutes for smaller absurd widths); widths are limited
    to eight digits (MLIR's own limit is 2^24 - 1 bits), so such a type is
    an "unknown type" parse error.
    """

    _builtin_integer_type_regex = re.compile(r"^[su]?i(\d{1,8})$")

    class _TensorLiteralElement(AttrParser._TensorLiteralElement):
        def to_type(self, parser: AttrParser, type: Any) -> Any:
            """Read a hexadecimal float in a dense literal as its bit pattern, as MLIR does.

            xDSL 0.74 prints non-finite floats in dense literals that way
            (``dense<0xFF800000> : tensor<f32>`` is -inf) but parses them back as the
            integer 4286578688 converted to float, so a printed module holding -inf
            or NaN constants (masks, for one) re-parses with different numbers.
            """
            text = self.span.text
            if isinstance(type, AnyFloat) and isinstance(self.value, int) and text.lstrip("-")[:2] in ("0x", "0X"):
                size = type.compile_time_size
                if not 0 <= self.value < 1 << (8 * size):
                    parser.raise_error(
                        f"hexadecimal literal {text} does not fit {type}", self.span.start, self.span.end
                    )
                return next(type.iter_unpack(self.value.to_bytes(size, "little")))
            return super().to_type(parser, type)

    def __init__(self, ctx: Context, input: str | bytes, name: str = "<unknown>") -> None:
        # xDSL's constructor lexes the first token with its own lexer, which could
        # already be an unterminated string: give it no text, then lex with ours.
        super().__init__(ctx, "", name)
        text = input.decode("utf-8") if isinstance(input, bytes) else input
        source = Input(text, name)
        self._parser_state = ParserState(SofaLexer(source))
        deep = nesting_too_deep(text)
        if deep is not None:
            span = Span(Position(deep), Position(deep + 1), source)
            raise ParseError(
                span, f"nesting deeper than {MAX_NESTING} levels of brackets, regions, attributes or types"
            )
        self.external_resources: dict[str, dict[str, str | bool]] = {}
        """The file metadata's ``external_resources`` (xDSL 0.74 rejects them): key -> entries."""

    def _parse_external_resources(self) -> None:
        def entry(values: dict[str, str | bool]) -> None:
            key = self.parse_identifier(" for an external resource entry")
            self.parse_punctuation(":")
            if (flag := self.parse_optional_boolean()) is not None:
                values[key] = flag
            else:
                values[key] = self.parse_str_literal(" or a boolean as the resource's value")

        def group() -> None:
            key = self.parse_identifier(" for an external resource")
            self.parse_punctuation(":")
            values: dict[str, str | bool] = {}
            self.parse_comma_separated_list(self.Delimiter.BRACES, lambda: entry(values))
            self.external_resources[key] = values

        self.parse_comma_separated_list(self.Delimiter.BRACES, group)

    def parse_module(self, allow_implicit_module: bool = True) -> ModuleOp:
        """xDSL's `parse_module`, then two rules xDSL 0.74 does not check, reported as upstream MLIR does.

        A `func.func` is a symbol, so its parent must be a symbol table (a
        module); one nested in a function is an error. A value must be defined
        before its use in a block (`dominates`): xDSL parses a forward
        reference and its interpreter then fails with a `KeyError`.
        """
        module = super().parse_module(allow_implicit_module)
        positions: dict[Block, dict[Operation, int]] = {}
        for op in module.walk():
            if isinstance(op, FuncOp) and op.parent_op() is not None and not op.parent_op().has_trait(SymbolTable):
                raise VerifyException(
                    f"'func.func' op @{op.sym_name.data}: symbol's parent must have the SymbolTable trait"
                    f" (it is nested in '{op.parent_op().name}')"
                )
            for index, operand in enumerate(op.operands):
                if isinstance(operand, OpResult) and not dominates(operand.op, op, positions):
                    raise VerifyException(f"'{op.name}' op operand #{index} does not dominate this use")
        return module


def dominates(definer: Operation, user: Operation, positions: dict[Block, dict[Operation, int]]) -> bool:
    """False where `user` (or the op holding it) comes no later than `definer` in `definer`'s block.

    Only the straight-line case: a use outside the defining block (another
    block of a CFG region) is left to xDSL. ``positions`` caches each block's
    op order. A module's body is a graph region, where order does not matter.
    """
    block = definer.parent_block()
    if block is None or isinstance(block.parent_op(), ModuleOp):
        return True
    holder: Operation | None = user
    while holder is not None and holder.parent_block() is not block:
        holder = holder.parent_op()
    if holder is None:
        return True
    if block not in positions:
        positions[block] = {op: position for position, op in enumerate(block.ops)}
    order = positions[block]
    return order[definer] < order[holder]


class MalformedInputError(ValueError):
    """Input the xDSL parser rejected with an internal assertion instead of a `ParseError`."""


@contextmanager
def parser_assertions_as_errors(source: str) -> Iterator[None]:
    """Report xDSL parser assertions as a user error about `source`.

    xDSL 0.74 asserts on some malformed literals instead of raising
    `ParseError` (e.g. the complex literal ``(3.0, 4.0]`` in a dense tensor:
    "Unexpected token ... expected R_PAREN"). The input is at fault, not SOFA.
    """
    try:
        yield
    except AssertionError as error:
        raise MalformedInputError(f"{source}: malformed input: {error}") from None


def located_message(span: Span[str] | Span[bytes], message: str, severity: str = "error") -> str:
    """MLIR's diagnostic form: ``file:line:col: error: message``, then the source line and a caret under the span."""
    context = span.print_with_context(None).splitlines()[1:]  # its first line is the bare location
    return "\n".join([f"{span.get_location()}: {severity}: {message}", *context])


class MlirParseError(ParseError):
    """A `ParseError` printed the way `mlir-opt` prints one (`located_message`); notes follow as ``note:`` lines."""

    def __init__(self, error: ParseError) -> None:
        super().__init__(error.span, error.msg)
        self.references = error.refs if isinstance(error, MultipleSpansParseError) else []

    def __str__(self) -> str:
        notes = [located_message(span, note or "see here", "note") for span, note in self.references]
        return "\n".join([located_message(self.span, self.msg), *notes])


def mlir_parse_error(error: ParseError) -> MlirParseError:
    """`error` in MLIR's diagnostic form (unchanged when it already is)."""
    return error if isinstance(error, MlirParseError) else MlirParseError(error)
