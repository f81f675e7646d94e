"""The MLIR-style IR printing flags `sofa-compile` and `sofa-opt` share.

* ``--print-ir-after-all``, ``--print-ir-after=PASS[,PASS...]`` (repeatable):
  the IR after those passes on stderr, each under MLIR's banner
  ``// -----// IR Dump After PASS (STAGE) //----- //``;
* ``--mlir-elide-elementsattrs-if-larger=N``: constants of more than N
  elements print as ``dense_resource<__elided__>`` (`dialects.printing`).
  Dumps on stderr elide above `DEFAULT_ELIDE_LIMIT` unless it is given;
  files and the main output elide only when it is given.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from io import StringIO
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # xDSL loads only when IR is printed, so that the tools' --help stays fast
    from xdsl.dialects.builtin import ModuleOp
    from xdsl.ir import Dialect

DEFAULT_ELIDE_LIMIT = 1024
"""Elements above which dumps on stderr elide a constant when no flag says otherwise."""


def _elide_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of elements, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of elements >= 0, got {value}")
    return value


def add_ir_printing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass to stderr")
    parser.add_argument(
        "--print-ir-after",
        action="append",
        default=[],
        metavar="PASS",
        help="print the IR after this pass (repeatable, or comma-separated) to stderr",
    )
    parser.add_argument(
        "--mlir-elide-elementsattrs-if-larger",
        dest="elide_larger_than",
        type=_elide_limit,
        metavar="N",
        help=f"print constants of more than N elements as dense_resource<__elided__> (dumps: {DEFAULT_ELIDE_LIMIT})",
    )


@dataclass(frozen=True)
class IrPrinting:
    """What the flags of `add_ir_printing_options` ask for."""

    after_all: bool
    after: frozenset[str]
    elide_larger_than: int | None

    @staticmethod
    def from_args(args: argparse.Namespace) -> IrPrinting:
        after = frozenset(name.strip() for text in args.print_ir_after for name in text.split(",") if name.strip())
        return IrPrinting(args.print_ir_after_all, after, args.elide_larger_than)

    def check_passes(self, known: set[str] | frozenset[str]) -> None:
        """A ``--print-ir-after`` pass that does not exist is a user error, not a silent no-op."""
        for name in sorted(self.after - known):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"--print-ir-after: unknown pass '{name}'{hint}")

    def prints_after(self, pass_name: str) -> bool:
        return self.after_all or pass_name in self.after

    @property
    def dump_elide_limit(self) -> int:
        """The elision of dumps on stderr: the flag's, else `DEFAULT_ELIDE_LIMIT`."""
        return DEFAULT_ELIDE_LIMIT if self.elide_larger_than is None else self.elide_larger_than


def dump_banner(pass_name: str, stage: str) -> str:
    return f"// -----// IR Dump After {pass_name} ({stage}) //----- //"


def print_ir(
    module: ModuleOp,
    elide_larger_than: int | None = None,
    *,
    generic: bool = False,
    properties_as_attributes: bool = False,
    debuginfo: bool = False,
    dialects: Iterable[Dialect] = (),
) -> str:
    """`module` as text ending in a newline; constants over `elide_larger_than` elements elided.

    The one printer of stage dumps, `--emit` IR and `sofa-opt` output, so that a
    replayed dump matches the compiler's byte for byte. `dialects` are those
    whose resource blobs (``dense_resource``) follow the module.
    """
    from dialects.printing import ElidingPrinter

    stream = StringIO()
    printer = ElidingPrinter(
        stream=stream,
        print_generic_format=generic,
        print_properties_as_attributes=properties_as_attributes,
        print_debuginfo=debuginfo,
        elide_larger_than=elide_larger_than,
    )
    printer.print_op(module)
    printer.print_metadata(dialects)
    return stream.getvalue() + "\n"
