"""Layering: dialects <- passes <- sofa_compiler <- tools; benchmarks on top; no import cycles.

Checked by parsing the imports (also those inside functions) of every module
in dialects/, passes/, sofa_compiler/ and benchmarks/:

* `dialects` imports neither `passes` nor `sofa_compiler`, `passes` does not
  import `sofa_compiler`, and the product (all three) never imports `benchmarks`;
* the library (every module but the tools) never imports `sofa_compiler.tools`,
  and no tool imports another: what tools share lives in the library;
* no two modules import each other, directly or through others.

ruff's TID251 catches `import sofa_compiler` in dialects and passes; this
catches the rest. A last test imports the whole product and checks that no
third-party class was patched on the way.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PACKAGES = ("dialects", "passes", "sofa_compiler", "benchmarks")

FORBIDDEN = {
    "dialects": ("passes", "sofa_compiler", "benchmarks"),
    "passes": ("sofa_compiler", "benchmarks"),
    "sofa_compiler": ("benchmarks",),
}
"""Top-level packages each product package must not import."""

TOOLS = "sofa_compiler.tools"


@dataclass(frozen=True)
class Import:
    """One name an import statement brings in: ``import a.b`` is a.b, ``from a import b`` is a.b."""

    path: Path
    line: int
    written: str
    """The module as the statement names it (relative imports made absolute)."""
    name: str
    """`written` plus the imported name for ``from`` imports (which may be a module or not)."""

    def at(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[Import]:
    """Every import in `path`, anywhere in it (also inside functions and `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            written = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                yield Import(path, node.lineno, written, f"{written}.{alias.name}")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours that `name` is or lies in (``a.b.f`` -> ``a.b``), or None for a third-party name."""
    parts = name.split(".")
    while parts:
        if (candidate := ".".join(parts)) in known:
            return candidate
        parts.pop()
    return None


def graph() -> dict[str, list[tuple[str, Import]]]:
    """module -> [(imported module of ours, the import)]."""
    known = modules()
    edges: dict[str, list[tuple[str, Import]]] = {name: [] for name in known}
    for name, path in known.items():
        for imp in imports(path):
            target = resolve(imp.name, known)
            if target is not None and target != name:
                edges[name].append((target, imp))
    return edges


def is_tool(module: str) -> bool:
    return module.startswith(f"{TOOLS}.")


def forbidden_imports(package: str) -> list[str]:
    bad: list[str] = []
    for path in sorted((REPO / package).rglob("*.py")):
        for imp in imports(path):
            if imp.written.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{imp.at()}: imports {imp.written}")
    return bad


def tool_imports() -> list[str]:
    """Imports of `sofa_compiler.tools` from the library, and of one tool from another."""
    bad: dict[str, None] = {}  # one line per statement and module, in order
    for module, edges in graph().items():
        for target, imp in edges:
            if target != TOOLS and not is_tool(target):
                continue
            if is_tool(module):
                bad[f"{imp.at()}: tool {module} imports {target} (share code through the library)"] = None
            elif module != TOOLS:
                bad[f"{imp.at()}: library module {module} imports {target}"] = None
    return list(bad)


def strongly_connected(edges: dict[str, list[tuple[str, Import]]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module (each one an import cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _ in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def cycle_through(start: str, component: list[str], edges: dict[str, list[tuple[str, Import]]]) -> str:
    """A shortest import path from `start` back to itself inside `component`: ``a -> b (a.py:3) -> a (b.py:7)``."""
    members = set(component)
    paths: dict[str, list[tuple[str, Import]]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target, imp in edges[node]:
            if target == start:
                steps = [*paths[node], (target, imp)]
                return " -> ".join([start, *(f"{module} ({step.at()})" for module, step in steps)])
            if target in members and target not in paths:
                paths[target] = [*paths[node], (target, imp)]
                queue.append(target)
    raise AssertionError(f"{start} is on no cycle of {component}")


def import_cycles() -> list[str]:
    edges = graph()
    return [cycle_through(component[0], component, edges) for component in strongly_connected(edges)]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering(package: str):
    assert (REPO / package / "__init__.py").is_file()
    assert forbidden_imports(package) == []


def test_library_and_tools_apart():
    assert tool_imports() == []


def test_no_import_cycles():
    assert import_cycles() == []


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_sees_relative_and_local_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # A fake tree proves the walk would catch the imports it is meant to catch.
    write_tree(
        tmp_path,
        {
            "dialects/__init__.py": "",
            "dialects/sub/__init__.py": "",
            "dialects/sub/x.py": "import numpy\ndef f():\n    from passes.p import P\n    import sofa_compiler.tools\n",
            "sofa_compiler/__init__.py": "",
            "sofa_compiler/lib.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import benchmarks.b\n",
        },
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert forbidden_imports("dialects") == [
        "dialects/sub/x.py:3: imports passes.p",
        "dialects/sub/x.py:4: imports sofa_compiler.tools",
    ]
    assert forbidden_imports("sofa_compiler") == ["sofa_compiler/lib.py:3: imports benchmarks.b"]


def test_checker_sees_tool_imports_and_cycles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_tree(
        tmp_path,
        {
            "sofa_compiler/__init__.py": "",
            "sofa_compiler/lib.py": "def f():\n    from sofa_compiler.tools.a import main\n",
            "sofa_compiler/tools/__init__.py": "",
            "sofa_compiler/tools/a.py": "from sofa_compiler import lib\n",
            "sofa_compiler/tools/b.py": "from . import a\n",
            "sofa_compiler/sim/__init__.py": "",
            "sofa_compiler/sim/x.py": "from sofa_compiler.sim.y import g\n",
            "sofa_compiler/sim/y.py": "from .z import h\n",
            "sofa_compiler/sim/z.py": "import sofa_compiler.sim.x\n",
        },
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert tool_imports() == [
        "sofa_compiler/lib.py:2: library module sofa_compiler.lib imports sofa_compiler.tools.a",
        "sofa_compiler/tools/b.py:1: tool sofa_compiler.tools.b imports sofa_compiler.tools.a"
        " (share code through the library)",
    ]
    assert import_cycles() == [
        "sofa_compiler.lib -> sofa_compiler.tools.a (sofa_compiler/lib.py:2)"
        " -> sofa_compiler.lib (sofa_compiler/tools/a.py:1)",
        "sofa_compiler.sim.x -> sofa_compiler.sim.y (sofa_compiler/sim/x.py:1)"
        " -> sofa_compiler.sim.z (sofa_compiler/sim/y.py:1) -> sofa_compiler.sim.x (sofa_compiler/sim/z.py:1)",
    ]


UNPATCHED = """
import importlib, pathlib, sys
from xdsl.parser.attribute_parser import AttrParser
from xdsl.utils.mlir_lexer import MLIRLexer

originals = (
    MLIRLexer._unescaped_characters_regex,
    AttrParser._builtin_integer_type_regex,
    AttrParser._TensorLiteralElement.to_type,
)
for name in sys.argv[1:]:
    importlib.import_module(name)
now = (
    MLIRLexer._unescaped_characters_regex,
    AttrParser._builtin_integer_type_regex,
    AttrParser._TensorLiteralElement.to_type,
)
changed = [label for label, a, b in zip(("lexer string regex", "integer type regex", "to_type"), originals, now) if a is not b]
print("changed:", ", ".join(changed) if changed else "nothing")
"""


def test_importing_the_product_patches_no_xdsl_class():
    """The parser fixes live in `sofa_compiler.parser`'s subclasses; importing SOFA leaves xDSL as it is."""
    product = [name for name in modules() if name.split(".")[0] != "benchmarks" and not name.endswith("__main__")]
    result = subprocess.run(
        [sys.executable, "-c", UNPATCHED, *product], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "changed: nothing"
