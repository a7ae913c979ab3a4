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
