"""The MLIR context SOFA works in: every dialect of the xDSL universe plus SOFA's, and SOFA's passes.

The driver, the tools and the tests build their context here. SOFA's
dialects and passes are listed once, in `sofa_compiler.universe`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from xdsl.context import Context
from xdsl.passes import ModulePass
from xdsl.universe import Universe

from sofa_compiler.universe import SOFA_UNIVERSE


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


def register_sofa_passes(
    register: Callable[[str, Callable[[], type[ModulePass]]], None], registered: Collection[str]
) -> None:
    """Call `register(name, factory)` for each SOFA pass not in `registered` (the same gap as for dialects)."""
    for name, factory in SOFA_UNIVERSE.all_passes.items():
        if name not in registered:
            register(name, factory)


def sofa_context() -> Context:
    """A context with every xDSL-universe dialect plus SOFA's, as `sofa-opt` has."""
    ctx = Context()
    for name, factory in Universe.get_multiverse().all_dialects.items():
        ctx.register_dialect(name, factory)
    register_sofa_dialects(ctx)
    return ctx
