"""The xDSL plug-in entry point for the SOFA compiler.

`pyproject.toml` publishes `SOFA_UNIVERSE` under the `xdsl.universe` entry
point group, so `xdsl-opt`, `sofa-opt` and any other xDSL tool see the SOFA
dialects and passes once the package is installed.
"""

from xdsl.ir import Dialect
from xdsl.universe import Universe

from passes import get_all_passes


# The dialects are imported lazily: the multiverse loads this module for every
# xDSL tool invocation, and a dialect should only cost an import when used.
def get_sofa() -> Dialect:
    from dialects.sofa import Sofa

    return Sofa


def get_sofa_isa() -> Dialect:
    from dialects.sofa_isa import SofaISA

    return SofaISA


def get_host() -> Dialect:
    from dialects.host import Host

    return Host


SOFA_UNIVERSE = Universe(
    all_dialects={"sofa": get_sofa, "sofa_isa": get_sofa_isa, "host": get_host},
    all_passes=get_all_passes(),
)
