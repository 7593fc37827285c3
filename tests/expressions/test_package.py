"""The expressions package: its whitelist, its help text, and that it stays pure Python."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from scheduler_app import expressions
from scheduler_app.expressions import (
    ALLOWED_NAMES,
    UnsafeExpressionError,
    allowed_help,
    safe_eval,
)

MODULES = sorted(Path(expressions.__file__).parent.glob("*.py"))


def test_allowed_names_cover_the_documented_names() -> None:
    documented = {"datetime", "date", "time", "timedelta", "json", "len"}

    assert documented | {"True", "False", "None"} <= ALLOWED_NAMES
    assert isinstance(ALLOWED_NAMES, frozenset)
    assert not {"eval", "exec", "open", "getattr", "type", "__import__"} & ALLOWED_NAMES


def test_allowed_functions_and_types_cannot_be_used_as_values() -> None:
    for name in ALLOWED_NAMES - {"True", "False", "None", "json"}:
        with pytest.raises(UnsafeExpressionError, match="can only be called"):
            safe_eval(name)


def test_allowed_help_is_one_line_naming_the_helpers() -> None:
    text = allowed_help()

    assert "\n" not in text
    for word in ("datetime", "date", "time", "timedelta", "json", "len"):
        assert word in text


def _module_tree(module: Path) -> ast.Module:
    return ast.parse(module.read_text(encoding="utf-8"))


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.name)
def test_module_never_calls_eval_exec_or_compile(module: Path) -> None:
    called = {
        node.func.id
        for node in ast.walk(_module_tree(module))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }

    assert not called & {"eval", "exec", "compile", "__import__"}


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.name)
def test_module_is_pure_python_without_django(module: Path) -> None:
    imported: set[str] = set()
    for node in ast.walk(_module_tree(module)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")

    assert not {name for name in imported if name.split(".")[0] == "django"}


def test_every_module_of_the_package_is_checked() -> None:
    assert {module.stem for module in MODULES} >= {
        "__init__",
        "evaluate",
        "limits",
        "validate",
    }
