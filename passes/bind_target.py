"""`sofa-bind-target`: bind a module to the SOFA hardware it is compiled for.

The driver's first pass after import; as a pass (not a Python-side
assignment) it appears in every stage dump's recorded pipeline, so the
import stage replays to the bound one with plain `sofa-opt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.passes import ModulePass
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException

from dialects.sofa import TargetAttr
from passes.coordinated_tiling import TARGET_ATTRIBUTE

_PREFIX = "#sofa.target<"


@dataclass(frozen=True)
class BindTargetPass(ModulePass):
    """Set the module's ``sofa.target`` attribute.

    ``target`` holds the parameters that differ from the paper's design, as
    ``#sofa.target<...>`` prints them (``"lanes = 64, temp_sram = 57344"``);
    empty, the default, is the paper's design.
    """

    name = "sofa-bind-target"

    target: str = ""

    @staticmethod
    def for_target(target: TargetAttr) -> BindTargetPass:
        stream = StringIO()
        Printer(stream=stream).print_attribute(target)
        return BindTargetPass(target=stream.getvalue().removeprefix(_PREFIX).removesuffix(">"))

    def target_attr(self, ctx: Context) -> TargetAttr:
        attr = Parser(ctx, f"{_PREFIX}{self.target}>", "sofa-bind-target{target}").parse_attribute()
        if not isinstance(attr, TargetAttr):
            raise DiagnosticException(f"sofa-bind-target: '{self.target}' is not a list of target parameters")
        return attr

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        op.attributes[TARGET_ATTRIBUTE] = self.target_attr(ctx)
