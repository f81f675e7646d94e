"""docs/isa.md stays in step with the instruction table the tools use."""

from pathlib import Path

import pytest

from dialects.sofa_isa import OPS
from sofa_compiler.isa.encoding import opcode_section

DOC = (Path(__file__).parent.parent.parent / "docs" / "isa.md").read_text()


@pytest.mark.parametrize("spec", OPS, ids=lambda spec: spec.mnemonic)
def test_every_instruction_is_documented_exactly(spec):
    assert opcode_section(spec) in DOC, f"docs/isa.md is out of date for {spec.mnemonic}: regenerate its table"
