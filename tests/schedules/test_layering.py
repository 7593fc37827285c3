"""The schedules package stays pure: no models, and APScheduler only in triggers.py."""

from __future__ import annotations

import ast
from pathlib import Path

import scheduler_app.schedules

PACKAGE = Path(scheduler_app.schedules.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """The absolute names of the modules a file imports (relative ones resolved)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = ["scheduler_app", "schedules"][: 3 - node.level]
                base = ".".join([*package, base] if base else package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_no_module_of_the_package_imports_models() -> None:
    offenders = {
        path.name: sorted(
            name
            for name in imported_modules(path)
            if name.startswith(("scheduler_app.models", "django.db"))
        )
        for path in PACKAGE.glob("*.py")
    }

    assert {name: found for name, found in offenders.items() if found} == {}


def test_only_triggers_py_imports_apscheduler() -> None:
    importers = sorted(
        path.name
        for path in PACKAGE.glob("*.py")
        if any(name.startswith("apscheduler") for name in imported_modules(path))
    )

    assert importers == ["triggers.py"]


def test_in_the_whole_app_only_triggers_and_the_job_import_use_apscheduler() -> None:
    """Triggers are built in triggers.py; services/imports.py unpickles the triggers of
    a django-apscheduler installation's jobs, which are APScheduler objects."""
    app = PACKAGE.parent
    importers = sorted(
        str(path.relative_to(app))
        for path in app.rglob("*.py")
        if "migrations" not in path.parts
        and any(name.startswith("apscheduler") for name in imported_modules(path))
    )

    assert importers == ["schedules/triggers.py", "services/imports.py"]
