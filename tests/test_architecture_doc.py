"""docs/ARCHITECTURE.md stays true: the modules, functions and names it cites exist,
and its layers table is tests/test_layers.py's LAYERS (which gives every module a
layer).

The page is read by newcomers before the code; a rename that leaves it behind would
send them to files that are gone. The checks read the source (ast); nothing is
imported.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from tests.test_layers import APP_DIR, LAYERS

DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"
TEXT = DOC.read_text(encoding="utf-8")

#: `services/runs.py`, `engine/loop.py:dispatch_due`, `runtime/threads.py` ...
FILE_REFERENCE = re.compile(r"`((?:[a-z_]+/)*[a-z_]+\.py)(?::([A-Za-z_][\w.]*))?`")
#: `db/`, `services/` ...
PACKAGE_REFERENCE = re.compile(r"`([a-z_]+(?:/[a-z_]+)*)/`")


@cache
def _names_defined(path: Path) -> frozenset[str]:
    """Top-level functions, classes and assigned names of a module, and methods."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return frozenset(names)


def _app_file(relative: str) -> Path | None:
    """The file a reference names: below scheduler_app/, or from the project root."""
    for root in (APP_DIR, APP_DIR.parent):
        if (root / relative).is_file():
            return root / relative
    return None


FILE_REFERENCES = sorted(set(FILE_REFERENCE.findall(TEXT)))


@pytest.mark.parametrize(("relative", "name"), FILE_REFERENCES)
def test_every_module_it_cites_exists_with_the_names_it_cites(
    relative: str, name: str
) -> None:
    path = _app_file(relative)

    assert path is not None, f"docs/ARCHITECTURE.md cites {relative}, which is gone"
    if name:
        assert name in _names_defined(path), (
            f"docs/ARCHITECTURE.md cites {relative}:{name}; {relative} has no {name}"
        )


def test_every_package_it_cites_exists() -> None:
    missing = [
        package
        for package in set(PACKAGE_REFERENCE.findall(TEXT))
        if not (APP_DIR / package).is_dir() and not (APP_DIR.parent / package).is_dir()
    ]

    assert missing == []


def _layers_table() -> dict[str, set[str]]:
    """The page's layers table: layer name -> the modules its second column names."""
    table: dict[str, set[str]] = {}
    section = TEXT.split("## The layers", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or cells[0] in {"layer", ""} or set(cells[0]) <= {"-"}:
            continue
        modules = {
            module.removesuffix("/").replace("/", ".")
            for module in re.findall(r"`([^`]+)`", cells[1])
        }
        table[cells[0]] = modules
    return table


def test_its_layers_table_is_the_layering_tests_table() -> None:
    expected = {
        layer.name: {module for module in layer.modules if module} for layer in LAYERS
    }

    assert _layers_table() == expected


#: Names the page may cite that are not the app's own.
NOT_THE_APPS = {
    "CommandError": "Django's error of management commands",
    "nightly": "the example task of the path of one fire",
}
#: `reconcile`, `STAGE_AHEAD_SECONDS`, `exec_one_per_fire`, `skip` ...
IDENTIFIER = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


@cache
def _app_vocabulary() -> frozenset[str]:
    """Every name the app defines, its modules, and the words of its string constants."""
    words: set[str] = set(NOT_THE_APPS) | _names_defined(
        Path(__file__).with_name("test_layers.py")
    )
    for path in APP_DIR.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        words.add(path.stem)
        words |= _names_defined(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", node.value))
    return frozenset(words)


def test_every_name_it_cites_is_one_the_app_has() -> None:
    unknown = sorted(set(IDENTIFIER.findall(TEXT)) - _app_vocabulary())

    assert unknown == [], f"docs/ARCHITECTURE.md cites names the app lacks: {unknown}"
