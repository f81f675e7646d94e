"""`sofa-opt`: xDSL's modular optimizer driver with the SOFA dialects and passes.

MLIR's habits on top of xDSL's: ``--pass-pipeline='builtin.module(a,b{x=1})'``
(as ``-p``), ``--print-ir-after-all``, ``--print-ir-after=PASS`` and
``--mlir-elide-elementsattrs-if-larger=N`` (`sofa_compiler.ir_printing`), and
parse errors as ``file:line:col: error: message``. A stage dump of
`sofa-compile` is a reproducer (`sofa_compiler.reproducer`): given no pipeline,
`sofa-opt DUMP` runs the dump's next pass and prints the next stage's dump.

Bad input (syntax errors, verifier failures, unknown passes, missing files)
is reported as a one-diagnostic message on stderr with exit status 1, never as
a Python traceback. Genuine compiler bugs still raise. MLIR text is read with
`SofaParser`, which fixes xDSL parser bugs that let small bad inputs hang.
"""

import argparse
import sys
from collections.abc import Sequence
from io import StringIO
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.arg_spec import parse_spec
from xdsl.utils.exceptions import DiagnosticException, ParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from sofa_compiler.cli import exit_statuses
from sofa_compiler.context import register_sofa_dialects, register_sofa_passes
from sofa_compiler.files import atomic_write_text
from sofa_compiler.ir_printing import IrPrinting, add_ir_printing_options, dump_banner, print_ir
from sofa_compiler.parser import SofaParser, mlir_parse_error, parser_assertions_as_errors
from sofa_compiler.reproducer import PipelineRecord, split_pipeline


class _OutputBuffer(StringIO):
    """The `-o` text, collected; xDSL closes its output stream even after an error, so closing keeps it."""

    def close(self) -> None:
        pass


class SofaOptMain(xDSLOptMain):
    output_buffer: _OutputBuffer | None = None
    record: PipelineRecord | None = None
    """The reproducer record of the chunk being run, advanced once its next pass ran."""
    printing: IrPrinting
    replays: bool
    """No pipeline was given, so a stage dump's recorded next pass runs."""

    def __init__(
        self,
        description: str = "SOFA modular optimizer driver",
        args: Sequence[str] | None = None,
    ):
        super().__init__(description, args)

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.set_defaults(passes=None)  # None: no pipeline given, so a reproducer's own applies
        arg_parser.add_argument(
            "--pass-pipeline", metavar="PIPELINE", help="passes in MLIR's syntax: 'builtin.module(a,b{x=1})'"
        )
        add_ir_printing_options(arg_parser)

    @property
    def explicit_pipeline(self) -> str | None:
        """The pipeline `-p` or `--pass-pipeline` gives, as `-p` text; None when neither does."""
        if self.args.pass_pipeline is not None:
            if self.args.passes is not None:
                raise ValueError("give the passes with -p or with --pass-pipeline, not both")
            return ",".join(split_pipeline(self.args.pass_pipeline))
        return self.args.passes

    def setup_pipeline(self) -> None:
        self.printing = IrPrinting.from_args(self.args)
        self.printing.check_passes(frozenset(self.available_passes))
        given = self.explicit_pipeline
        self.args.passes = given or ""
        super().setup_pipeline()
        xdsl_callback = self.pipeline.callback

        def callback(previous: ModulePass | None, module: ModuleOp, next_pass: ModulePass | None) -> None:
            if xdsl_callback is not None:
                xdsl_callback(previous, module, next_pass)
            if previous is not None and self.printing.prints_after(previous.name):
                self.print_dump(previous.name, module)

        self.pipeline = PassPipeline(self.pipeline.passes, callback)
        self.replays = given is None

    def print_dump(self, pass_name: str, module: ModuleOp) -> None:
        # Replaying, the dump is the next stage's reproducer; otherwise MLIR's banner names the pass twice.
        stage = self.record.advanced() if self.record is not None and self.replays else None
        text = print_ir(module, self.printing.dump_elide_limit, dialects=self.ctx.loaded_dialects)
        print(dump_banner(pass_name, stage.stage if stage else pass_name), file=sys.stderr)
        print(stage.dump(text) if stage else text, file=sys.stderr)

    def apply_passes(self, prog: ModuleOp) -> None:
        if self.record is None or not self.replays:
            self.record = None  # the IR no longer is the recorded stage: print it without the record
            super().apply_passes(prog)
            return
        next_pass = self.record.next_pass
        if next_pass is None:
            return  # the last stage: nothing left to replay
        PassPipeline.parse_spec(self.available_passes, next_pass, self.pipeline.callback).apply(self.ctx, prog)
        self.record = self.record.advanced()

    def output_resulting_program(self, prog: ModuleOp) -> str:
        if parse_spec(self.args.target).name != "mlir" or self.args.syntax_highlight:
            return super().output_resulting_program(prog)
        text = print_ir(
            prog,
            self.printing.elide_larger_than,
            generic=self.args.print_op_generic,
            properties_as_attributes=self.args.print_no_properties,
            debuginfo=self.args.print_debuginfo,
            dialects=self.ctx.loaded_dialects,
        )
        return self.record.dump(text) if self.record is not None else text + "\n"

    def parse_chunk(self, chunk: IO[bytes], file_extension: str, start_offset: int = 0) -> ModuleOp | None:
        self.record = None
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
            module = parser.parse_module(not self.args.no_implicit_module)
            self.record = PipelineRecord.read(parser.external_resources)
            return module

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
