"""`sofa-opt`: xDSL's modular optimizer driver with the SOFA dialects and passes.

Bad input (syntax errors, verifier failures, unknown passes, missing files)
is reported as a one-diagnostic message on stderr with exit status 1, never as
a Python traceback. Genuine compiler bugs still raise.
"""

import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from xdsl.context import Context
from xdsl.dialects.builtin import AnyFloat, ModuleOp
from xdsl.parser.attribute_parser import AttrParser
from xdsl.utils.exceptions import DiagnosticException, ParseError
from xdsl.utils.mlir_lexer import MLIRLexer
from xdsl.xdsl_opt_main import xDSLOptMain

from sofa_compiler.tools import interruptible
from sofa_compiler.universe import SOFA_UNIVERSE

USER_ERRORS: tuple[type[BaseException], ...] = (
    # DiagnosticException covers VerifyException, PassFailedException and
    # InterpretationError; ValueError is what xDSL raises for an unknown pass
    # or file extension; OSError for missing or unreadable files.
    ParseError,
    DiagnosticException,
    ValueError,
    OSError,
)
"""Exceptions that mean "the input is wrong", as opposed to a compiler bug."""


def harden_xdsl_parser() -> None:
    """Work around three xDSL 0.74 parser bugs: two let a small bad input hang or exhaust memory.

    Integer types: ``i644294967296`` makes xDSL compute ``1 << 644294967296``
    (MemoryError, or minutes for smaller absurd widths); widths are limited
    to eight digits (MLIR's own limit is 2^24 - 1 bits), so such a type is
    an "unknown type" parse error.

    String literals: xDSL 0.74 matches a string literal with ``"(?:[^"\\...]+|escape)*"``: the
    nested ``+`` inside ``*`` backtracks exponentially when the closing quote
    is missing, so ``{a = "0123...`` (40 characters, no closing quote) hangs
    the parser for hours. The same language without the nested quantifier,
    matched possessively, fails at once.
    """
    MLIRLexer._unescaped_characters_regex = re.compile(r'"(?:[^"\\\n\v\f]|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*+"')
    AttrParser._builtin_integer_type_regex = re.compile(r"^[su]?i(\d{1,8})$")
    AttrParser._TensorLiteralElement.to_type = _tensor_element_to_type


_xdsl_tensor_element_to_type = AttrParser._TensorLiteralElement.to_type


def _tensor_element_to_type(element: Any, parser: AttrParser, type: Any) -> Any:
    """Read a hexadecimal float in a dense literal as its bit pattern, as MLIR does.

    xDSL 0.74 prints non-finite floats in dense literals that way
    (``dense<0xFF800000> : tensor<f32>`` is -inf) but parses them back as the
    integer 4286578688 converted to float, so a printed module holding -inf
    or NaN constants (masks, for one) re-parses with different numbers.
    """
    text = element.span.text
    if isinstance(type, AnyFloat) and isinstance(element.value, int) and text.lstrip("-")[:2] in ("0x", "0X"):
        size = type.compile_time_size
        if not 0 <= element.value < 1 << (8 * size):
            parser.raise_error(f"hexadecimal literal {text} does not fit {type}", element.span.start, element.span.end)
        return next(type.iter_unpack(element.value.to_bytes(size, "little")))
    return _xdsl_tensor_element_to_type(element, parser, type)


harden_xdsl_parser()


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


def register_sofa_dialects(ctx: Context) -> None:
    """Register the SOFA dialects in `ctx` unless they are already there.

    An installed package brings them in through the `xdsl.universe` entry
    point; running from a source tree without installing does not, so this
    fills the gap. Registering twice would raise.
    """
    registered = set(ctx.registered_dialect_names)
    for name, factory in SOFA_UNIVERSE.all_dialects.items():
        if name not in registered:
            ctx.register_dialect(name, factory)


class SofaOptMain(xDSLOptMain):
    def __init__(
        self,
        description: str = "SOFA modular optimizer driver",
        args: Sequence[str] | None = None,
    ):
        super().__init__(description, args)

    def parse_chunk(self, chunk: IO[bytes], file_extension: str, start_offset: int = 0) -> ModuleOp | None:
        with parser_assertions_as_errors(self.args.input_file or "<stdin>"):
            return super().parse_chunk(chunk, file_extension, start_offset)

    def register_all_dialects(self) -> None:
        super().register_all_dialects()
        register_sofa_dialects(self.ctx)

    def register_all_passes(self) -> None:
        super().register_all_passes()
        for name, factory in SOFA_UNIVERSE.all_passes.items():
            if name not in self.available_passes:
                self.register_pass(name, factory)


def report_user_error(tool: str, error: BaseException) -> None:
    """Print `error` as a diagnostic on stderr (no traceback) and exit 1."""
    if isinstance(error, BrokenPipeError):
        # The reader (`| head`) went away: not worth a message. Point stdout at
        # devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    message = str(error)
    if isinstance(error, OSError | ValueError):
        # These carry no source location of their own; name the tool instead.
        message = f"{tool}: error: {message}"
    print(message, file=sys.stderr)
    notes = getattr(error, "__notes__", ())
    for note in notes:
        print(note, file=sys.stderr)
    sys.exit(1)


@interruptible("sofa-opt")
def main(args: Sequence[str] | None = None) -> None:
    try:
        # The constructor already parses the pass pipeline, so it is guarded too.
        SofaOptMain(args=args).run()
    except USER_ERRORS as e:
        report_user_error("sofa-opt", e)


if __name__ == "__main__":
    main()
