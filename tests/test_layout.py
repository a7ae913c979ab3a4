"""The package stays readable at once (issue 15): no function a reader must scroll, no class
that holds several roles. A project rule, checked on the source as the family rule is
(tests/test_families.py); the layers themselves are import-linter's (make lint)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vlcli"
LONGEST_FUNCTION = 80  # lines, decorators excluded, docstring included
LONGEST_CLASS = 200


def _definitions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [node for node in ast.walk(tree) if isinstance(node, kinds)]


def _too_long(source: str, name: str) -> list[str]:
    found = []
    for node in _definitions(ast.parse(source)):
        lines = (node.end_lineno or node.lineno) - node.lineno + 1
        limit = LONGEST_CLASS if isinstance(node, ast.ClassDef) else LONGEST_FUNCTION
        if lines > limit:
            found.append(f"{name}:{node.lineno} {node.name}: {lines} lines (limit {limit})")
    return found


def test_no_function_or_class_is_too_long_to_read_at_once() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += _too_long(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    assert found == []


@pytest.mark.parametrize(("kind", "body"), [("def", "    x = 1\n"), ("class", "    x = 1\n")])
def test_the_check_finds_a_long_definition(kind: str, body: str) -> None:
    lines = (LONGEST_CLASS if kind == "class" else LONGEST_FUNCTION) + 1
    source = f"{kind} long{'()' if kind == 'def' else ''}:\n" + body * (lines - 1)
    assert _too_long(source, "x.py") == [f"x.py:1 long: {lines} lines (limit {lines - 1})"]


# ---------------------------------------------------------------- one home for each name

TESTS = PACKAGE.parent / "tests"


def _module_file(module: str) -> Path | None:
    path = PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _borrowed_names(module: str) -> dict[str, str]:
    """The names ``module`` binds at its top level by importing them from another vlcli module
    (name -> that module): what importing them from ``module`` would reach through it."""
    source = _module_file(module)
    if source is None:
        return {}
    borrowed = {}
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vlcli."):
            for alias in node.names:
                borrowed[alias.asname or alias.name] = node.module or ""
    return borrowed


def _imports_through(source: str, name: str) -> list[str]:
    """Where ``source`` imports a name from a vlcli module that only passes it on."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("vlcli."):
            continue
        borrowed = _borrowed_names(node.module or "")
        for alias in node.names:
            home = borrowed.get(alias.name)
            if home is not None:
                found.append(f"{name}:{node.lineno} {alias.name} from {node.module} (home: {home})")
    return found


def test_every_name_is_imported_from_its_home() -> None:
    """No module passes on a name that lives elsewhere (a shim): a test that patches it there
    would patch a copy the rest of vlcli does not use. The public API (``vlcli``) is the one
    place that gathers names, and it is not a vlcli.X module."""
    found = []
    for path in sorted([*PACKAGE.rglob("*.py"), *TESTS.rglob("*.py")]):
        where = str(path.relative_to(TESTS.parent))
        found += _imports_through(path.read_text(encoding="utf-8"), where)
    assert found == []


def test_the_check_finds_a_name_passed_on() -> None:
    found = _imports_through("from vlcli.cli.views import json_text\n", "x.py")
    assert found == ["x.py:1 json_text from vlcli.cli.views (home: vlcli.outputs.text)"]
    assert _imports_through("from vlcli.outputs.text import json_text\n", "x.py") == []


# ---------------------------------------------------------------- the README's tree

README = PACKAGE.parent / "README.md"


def _layout_sections() -> dict[str, str]:
    """The README's layout tree (Development > Layout), the text of each top-level folder."""
    tree = README.read_text(encoding="utf-8").split("### Layout", 1)[1].split("```")[1]
    sections: dict[str, str] = {}
    folder = ""
    for line in tree.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            folder = line.split()[0].rstrip("/")
        if folder:  # below the tree's root line, vlcli/
            sections[folder] = sections.get(folder, "") + line + "\n"
    return sections


def test_the_readme_tree_names_every_module() -> None:
    """A maintainer finds each module of vlcli/ under its folder in the README's tree (its
    ``__init__.py`` and ``__main__.py`` apart), and no folder the package does not have."""
    sections = _layout_sections()
    unnamed = []
    for path in sorted([*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.c")]):
        relative = path.relative_to(PACKAGE)
        if path.name in ("__init__.py", "__main__.py"):
            continue
        folder = relative.parts[0] if len(relative.parts) > 1 else relative.name
        if path.name not in sections.get(folder, ""):
            unnamed.append(str(relative))
    assert unnamed == []
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert set(sections) - {p.name for p in PACKAGE.glob("*.py")} == folders
