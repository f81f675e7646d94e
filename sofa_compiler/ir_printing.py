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
from dataclasses import dataclass

from dialects.printing import DEFAULT_ELIDE_LIMIT


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
        if unknown := sorted(self.after - known):
            raise ValueError(
                f"--print-ir-after: unknown pass(es) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )

    def prints_after(self, pass_name: str) -> bool:
        return self.after_all or pass_name in self.after

    @property
    def dump_elide_limit(self) -> int:
        """The elision of dumps on stderr: the flag's, else `DEFAULT_ELIDE_LIMIT`."""
        return DEFAULT_ELIDE_LIMIT if self.elide_larger_than is None else self.elide_larger_than


def dump_banner(pass_name: str, stage: str) -> str:
    return f"// -----// IR Dump After {pass_name} ({stage}) //----- //"
