"""Layering: dialects <- passes <- sofa_compiler.

`dialects` must not import `passes` or `sofa_compiler`, and `passes` must not
import `sofa_compiler`, so the IR definitions stay usable without the driver.
ruff's TID251 catches `import sofa_compiler` in both; this also catches
`dialects` -> `passes`.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "dialects": ("passes", "sofa_compiler"),
    "passes": ("sofa_compiler",),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module name `path` imports anywhere (also inside functions), with its line.

    Relative imports are skipped: they cannot leave their top-level package.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(package: str) -> list[str]:
    bad: list[str] = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(REPO)}:{line}: imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering(package: str):
    assert (REPO / package / "__init__.py").is_file()
    assert violations(package) == []


def test_checker_sees_relative_and_local_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # A fake tree proves the walk would catch the imports it is meant to catch.
    (tmp_path / "dialects" / "sub").mkdir(parents=True)
    (tmp_path / "dialects" / "__init__.py").write_text("")
    (tmp_path / "dialects" / "sub" / "__init__.py").write_text("")
    (tmp_path / "dialects" / "sub" / "x.py").write_text(
        "import numpy\ndef f():\n    from passes.p import P\n    import sofa_compiler.tools\n"
    )
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    assert violations("dialects") == [
        "dialects/sub/x.py:3: imports passes.p",
        "dialects/sub/x.py:4: imports sofa_compiler.tools",
    ]
