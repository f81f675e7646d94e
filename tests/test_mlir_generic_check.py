"""The MLIR cross-check must accept valid generic IR and reject invalid IR."""

import subprocess
import sys
from pathlib import Path

import pytest

CHECKER = Path(__file__).parent / "tools" / "mlir_generic_check.py"

VALID = """\
"builtin.module"() ({
  "func.func"() <{sym_name = "main", function_type = (f32) -> f32}> ({
  ^bb0(%a: f32):
    %b = "arith.addf"(%a, %a) <{fastmath = #arith.fastmath<none>}> : (f32, f32) -> f32
    "sofa.unknown_to_mlir"(%b) : (f32) -> ()
    "func.return"(%b) : (f32) -> ()
  }) : () -> ()
}) : () -> ()
"""

# Well-formed syntax, but func.return's operand type contradicts the signature.
INVALID = """\
"builtin.module"() ({
  "func.func"() <{sym_name = "main", function_type = (f32) -> f32}> ({
  ^bb0(%a: f32):
    %c = "arith.constant"() <{value = 1 : i32}> : () -> i32
    "func.return"(%c) : (i32) -> ()
  }) : () -> ()
}) : () -> ()
"""


def check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECKER)], input=text, capture_output=True, text=True, timeout=60)


def test_valid_generic_ir_passes():
    result = check(VALID)
    assert result.returncode == 0, result.stderr
    # func.func, arith.addf, the unregistered op, func.return.
    assert result.stdout.strip() == "MLIR-OK 4"


def test_invalid_ir_fails_with_located_diagnostic():
    result = check(INVALID)
    assert result.returncode == 1
    assert "<stdin>:5:5" in result.stderr
    assert "doesn't match function result type" in result.stderr
    assert "MLIR-OK" not in result.stdout


@pytest.mark.parametrize(("second", "code"), [(VALID, 0), (INVALID, 1)])
def test_split_input_checks_every_chunk(second: str, code: int):
    result = check(VALID + "// -----\n" + second)
    assert result.returncode == code
    assert result.stdout.count("MLIR-OK") == 2 - code
    if code:
        # Lines count from the top of the whole input: VALID, the marker, then line 5.
        assert f"<stdin>:{VALID.count(chr(10)) + 1 + 5}:5" in result.stderr
