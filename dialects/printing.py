"""Printing IR with large constants elided, as ``mlir-opt --mlir-elide-elementsattrs-if-larger=N`` does.

An elided elements attribute prints as MLIR's own elided form,
``dense_resource<__elided__> : tensor<...>``: it re-parses (in xDSL and in
upstream MLIR) with its type intact, but its values are gone, so IR printed
this way is for reading, not for running. Ops that print their own large
payloads (`host.constant`, `host.partition`) ask `elides` whether to.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, DenseResourceAttr, ShapedType
from xdsl.ir import Attribute
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException

ELIDED_HANDLE = "__elided__"
"""The resource handle MLIR prints for an elided constant."""


@dataclass(eq=False, repr=False)
class ElidingPrinter(Printer):
    """xDSL's printer, eliding elements attributes of more than `elide_larger_than` elements (None: none)."""

    elide_larger_than: int | None = None

    def elides(self, count: int) -> bool:
        return self.elide_larger_than is not None and count > self.elide_larger_than

    def print_attribute(self, attribute: Attribute) -> None:
        if isinstance(attribute, DenseIntOrFPElementsAttr) and self.elides(len(attribute)):
            print_elided(self, attribute.get_type())
            return
        super().print_attribute(attribute)


def elides(printer: Printer, count: int) -> bool:
    """Whether `printer` elides a payload of `count` elements."""
    return isinstance(printer, ElidingPrinter) and printer.elides(count)


def print_elided(printer: Printer, value_type: Attribute) -> None:
    printer.print_string(f"dense_resource<{ELIDED_HANDLE}> : ")
    printer.print_attribute(value_type)


def elided(value_type: ShapedType) -> DenseResourceAttr:
    """The attribute an elided constant parses back as: its type, no values."""
    return DenseResourceAttr.from_params(ELIDED_HANDLE, value_type)


def elided_error(what: str) -> DiagnosticException:
    return DiagnosticException(
        f"{what} was elided when this IR was printed (--mlir-elide-elementsattrs-if-larger);"
        " print it without eliding to run it"
    )
