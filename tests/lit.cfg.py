# ruff: noqa: F821  (lit injects `config` and `lit_config`)
"""lit configuration for the SOFA compiler's FileCheck tests.

Run with `python -m lit -v tests` (or `scripts/test-all`, or the CMake
`check-sofa` target). The tools come from the Python environment that runs
lit, so the tests always exercise the checkout that is installed there.
"""

import os
import shutil
import sys

import lit.formats

config.name = "SOFA"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".test"]
# Excluded names match at any depth: helper inputs, not tests.
config.excludes = ["lit.cfg.py", "lit.local.cfg", "fixtures", "Inputs", "__pycache__"]

config.test_source_root = os.path.dirname(__file__)
repo_root = os.path.dirname(config.test_source_root)
# Keep lit's Output/ directories and timing file out of the source tree.
config.test_exec_root = os.environ.get("SOFA_LIT_EXEC_ROOT", os.path.join(repo_root, "build", "lit"))

# The interpreter running lit is the venv's; its bin directory has our tools.
bin_dir = os.path.dirname(sys.executable)
config.environment["PATH"] = os.pathsep.join([bin_dir, config.environment.get("PATH", os.environ.get("PATH", ""))])
for var in ("HOME", "TMPDIR", "PYTHONPATH"):
    if var in os.environ:
        config.environment[var] = os.environ[var]


def tool(name: str) -> str:
    path = shutil.which(name, path=config.environment["PATH"])
    if path is None:
        lit_config.fatal(f"'{name}' not found next to {sys.executable}; run `pip install -e \".[dev]\"` first")
    return path


def word(name: str) -> str:
    """A substitution pattern matching `name` only as a whole command word."""
    return r"(?<![\w./%-])" + name.replace("-", r"\-") + r"(?![\w./-])"


# lit applies these before its own (%s, %t, ...) and in this order, so the
# longer `%mlir-check` is expanded directly rather than through `%python`.
config.substitutions.append(("%mlir-check", f"{sys.executable} {repo_root}/tests/tools/mlir_generic_check.py"))
config.substitutions.append(("%python", sys.executable))
for name in ("sofa-opt", "sofa-run-ir", "sofa-import", "sofa-as", "sofa-objdump", "sofa-sim", "filecheck"):
    config.substitutions.append((word(name), tool(name)))

# A per-test timeout needs psutil (to kill process trees), which is not a
# dependency; use it where it is installed. 300 s: the slowest tests take about
# 40 s on a quiet 2-core machine and passed 60 s under load; a hang still ends.
if lit_config.maxIndividualTestTimeIsSupported[0]:
    config.maxIndividualTestTime = 300
