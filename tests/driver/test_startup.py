"""Tools start fast: ``--help`` imports none of the slow packages (benchmarks/startup.py measures the time)."""

import subprocess
import sys
from pathlib import Path

import pytest

from sofa_compiler.compile_options import PIPELINE_HELP
from sofa_compiler.driver import PRESETS

ROOT = Path(__file__).resolve().parent.parent.parent
SLOW = ("onnx", "onnxruntime", "ml_dtypes", "rich", "jsonschema")
"""Each takes 0.1 s or more to import; no tool needs them to print its help."""
LIGHT_HELP = ("sofa_sim", "sofa_compile", "sofa_run", "sofa_import")
"""Tools whose --help imports neither numpy nor xDSL's dialects either (the others' options need xDSL)."""
TOOLS = ("sofa_opt", "sofa_run_ir", "sofa_as", "sofa_objdump", *LIGHT_HELP)


def modules_after_help(tool: str) -> set[str]:
    code = (
        f"import sys\nfrom sofa_compiler.tools import {tool}\n"
        f"try:\n    {tool}.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sys.modules), file=sys.stderr)"  # stdout has the help text
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(run.stderr.split())


@pytest.mark.parametrize("tool", TOOLS)
def test_help_imports_no_slow_package(tool: str):
    loaded = modules_after_help(tool)
    assert [name for name in SLOW if name in loaded] == []
    if tool in LIGHT_HELP:
        assert "numpy" not in loaded
        assert "xdsl.dialects.builtin" not in loaded


def test_pipeline_help_names_every_preset():
    for name in PRESETS:
        assert name in PIPELINE_HELP
