"""`sofa-opt`: xDSL's modular optimizer driver with the SOFA dialects and passes.

Bad input (syntax errors, verifier failures, unknown passes, missing files)
is reported as a one-diagnostic message on stderr with exit status 1, never as
a Python traceback. Genuine compiler bugs still raise. MLIR text is read with
`SofaParser`, which fixes xDSL parser bugs that let small bad inputs hang.
"""

import sys
from collections.abc import Sequence
from io import StringIO
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import DiagnosticException, ParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from sofa_compiler.cli import exit_statuses
from sofa_compiler.context import register_sofa_dialects, register_sofa_passes
from sofa_compiler.files import atomic_write_text
from sofa_compiler.parser import SofaParser, mlir_parse_error, parser_assertions_as_errors


class _OutputBuffer(StringIO):
    """The `-o` text, collected; xDSL closes its output stream even after an error, so closing keeps it."""

    def close(self) -> None:
        pass


class SofaOptMain(xDSLOptMain):
    output_buffer: _OutputBuffer | None = None

    def __init__(
        self,
        description: str = "SOFA modular optimizer driver",
        args: Sequence[str] | None = None,
    ):
        super().__init__(description, args)

    def parse_chunk(self, chunk: IO[bytes], file_extension: str, start_offset: int = 0) -> ModuleOp | None:
        try:
            with parser_assertions_as_errors(self.args.input_file or "<stdin>"):
                return super().parse_chunk(chunk, file_extension, start_offset)
        except ParseError as error:
            raise mlir_parse_error(error) from None

    def prepare_output(self) -> IO[str]:
        # `-o` goes through atomic_write once every chunk succeeded, like every other tool's output.
        if self.args.output_file is None:
            return sys.stdout
        self.output_buffer = _OutputBuffer()
        return self.output_buffer

    def run(self) -> None:
        super().run()
        if self.output_buffer is not None:
            atomic_write_text(self.args.output_file, self.output_buffer.getvalue())

    def register_all_dialects(self) -> None:
        super().register_all_dialects()
        register_sofa_dialects(self.ctx)

    def register_all_frontends(self) -> None:
        super().register_all_frontends()

        def parse_mlir(io: IO[bytes]) -> ModuleOp:
            parser = SofaParser(self.ctx, io.read(), self.get_input_name())
            return parser.parse_module(not self.args.no_implicit_module)

        self.available_frontends["mlir"] = parse_mlir

    def register_all_passes(self) -> None:
        super().register_all_passes()
        register_sofa_passes(self.register_pass, self.available_passes)


# DiagnosticException covers VerifyException, PassFailedException and
# InterpretationError; ValueError is what xDSL raises for an unknown pass or
# file extension; OSError (always reported) for missing or unreadable files.
@exit_statuses("sofa-opt", ValueError, located=(ParseError, DiagnosticException))
def main(args: Sequence[str] | None = None) -> None:
    # The constructor already parses the pass pipeline, so it is guarded too.
    SofaOptMain(args=args).run()


if __name__ == "__main__":
    sys.exit(main())
