"""scripts:<file> handlers: listing, broken scripts, reloading and lookups.

Function and class handlers are in test_objects.py; which handlers are allowed at
all is in test_allowed.py.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import os
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler_app.exceptions import HandlerBroken, HandlerNotFound
from scheduler_app.handlers import registry
from scheduler_app.handlers.registry import (
    HandlerInfo,
    get_handler,
    list_scripts,
    load_handler,
)

SAMPLES = "tests.sample_handlers.registry"

GOOD_SCRIPT = '''
"""Synchronise data (module docstring)."""

import datetime

TASK_INFO = {
    "name": "Data sync",
    "description": "Synchronise the given number of days",
    "params": {"days": {"label": "Days", "help": "How many days back."}},
    "schedule": {"cron": "0 2 * * *"},
}


async def run(
    days: int = 7,
    target: str = "all",
    start_date: datetime.datetime | None = None,
) -> dict:
    return {"days": days, "target": target}
'''


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    registry.clear_cache()
    yield
    registry.clear_cache()


@pytest.fixture
def scripts(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "scripts"
    folder.mkdir()
    settings.SCHEDULER_SCRIPTS_PATH = str(folder)
    return folder


def write_script(folder: Path, name: str, source: str) -> Path:
    path = folder / ("%s.py" % name)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def rewrite_script(path: Path, source: str) -> None:
    """Change a script and move its mtime on explicitly (no reliance on the clock)."""
    before = path.stat().st_mtime_ns
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def by_path(infos: list[HandlerInfo]) -> dict[str, HandlerInfo]:
    return {info.path: info for info in infos}


# Listing scripts


def test_list_scripts_describes_each_script(scripts: Path) -> None:
    write_script(scripts, "data_sync", GOOD_SCRIPT)

    [info] = list_scripts()

    assert info.path == "scripts:data_sync"
    assert info.kind == "script"
    assert info.name == "Data sync"
    assert info.description == "Synchronise the given number of days"
    assert [spec.name for spec in info.params] == ["days", "target", "start_date"]
    assert info.params[0].label == "Days"
    assert info.params[0].help_text == "How many days back."
    assert info.params[2].type_name == "datetime"
    assert info.params[2].optional is True
    assert info.accepts_var_kwargs is False
    assert info.is_async is True
    assert info.schedule == {"task_type": "cron", "cron_expression": "0 2 * * *"}
    assert (info.broken, info.error, info.enabled) == (False, "", True)


def test_list_scripts_is_sorted_and_skips_private_and_other_files(
    scripts: Path,
) -> None:
    for name in ("zeta", "alpha", "_helpers", "__init__"):
        write_script(scripts, name, "def run(**kwargs):\n    return {}\n")
    (scripts / "notes.txt").write_text("not a script")
    (scripts / "package.py").mkdir()

    assert [info.path for info in list_scripts()] == ["scripts:alpha", "scripts:zeta"]


def test_script_without_task_info_uses_file_name_and_docstrings(scripts: Path) -> None:
    write_script(
        scripts,
        "plain",
        '"""Module summary.\n\nDetails."""\ndef run(**kwargs):\n    pass\n',
    )
    write_script(scripts, "run_doc", 'def run(**kwargs):\n    """Run summary."""\n')

    infos = by_path(list_scripts())

    assert infos["scripts:plain"].name == "plain"
    assert infos["scripts:plain"].description == "Module summary."
    assert infos["scripts:plain"].schedule is None
    assert infos["scripts:run_doc"].description == "Run summary."
    assert infos["scripts:run_doc"].is_async is False
    assert infos["scripts:run_doc"].accepts_var_kwargs is True
    assert infos["scripts:run_doc"].params == ()


def test_missing_scripts_folder_lists_nothing(settings: Any, tmp_path: Path) -> None:
    settings.SCHEDULER_SCRIPTS_PATH = str(tmp_path / "nowhere")

    assert list_scripts() == []


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (
            {"cron": "*/5 * * * *"},
            {"task_type": "cron", "cron_expression": "*/5 * * * *"},
        ),
        (
            {"interval_seconds": 3600},
            {"task_type": "interval", "interval_seconds": 3600},
        ),
        (
            {"run_date": "2030-01-01T09:00"},
            {"task_type": "date", "run_date": datetime.datetime(2030, 1, 1, 9, 0)},
        ),
        (
            {"interval_seconds": 60, "timeout_seconds": 30, "allow_concurrent": True},
            {
                "task_type": "interval",
                "interval_seconds": 60,
                "timeout_seconds": 30,
                "overlap_policy": "allow",
            },
        ),
        (
            {"cron": "@daily", "overlap_policy": "replace"},
            {
                "task_type": "cron",
                "cron_expression": "@daily",
                "overlap_policy": "replace",
            },
        ),
    ],
)
def test_declared_schedule_is_normalised_to_task_fields(
    scripts: Path, schedule: dict[str, Any], expected: dict[str, Any]
) -> None:
    write_script(
        scripts,
        "timed",
        "TASK_INFO = {'schedule': %r}\ndef run():\n    pass\n" % schedule,
    )

    assert get_handler("scripts:timed").schedule == expected


@pytest.mark.parametrize(
    ("schedule", "error"),
    [
        ({}, "exactly one of cron, interval_seconds, run_date"),
        ({"interval": 60}, "exactly one of"),
        ({"cron": "0 2 * * *", "interval_seconds": 60}, "exactly one of"),
        ("daily", "exactly one of"),
        ({"cron": ""}, "invalid cron expression"),
        ({"interval_seconds": 0}, "invalid interval_seconds: 0"),
        ({"interval_seconds": "60"}, "invalid interval_seconds"),
        ({"run_date": "soon"}, "invalid run_date: 'soon'"),
        ({"cron": "@daily", "timeout_seconds": -1}, "invalid timeout_seconds"),
        ({"cron": "@daily", "overlap_policy": "queue"}, "invalid overlap_policy"),
    ],
)
def test_invalid_declared_schedule_marks_the_script_broken(
    scripts: Path, schedule: Any, error: str
) -> None:
    write_script(
        scripts,
        "timed",
        "TASK_INFO = {'schedule': %r}\ndef run():\n    pass\n" % schedule,
    )

    [info] = list_scripts()

    assert info.broken is True
    assert error in info.error


# Broken scripts


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("x = 1\n\ndef run(:\n    pass\n", "SyntaxError: invalid syntax (line 3)"),
        ("def run():\nreturn 1\n", "IndentationError: expected an indented block"),
        ("import os\nraise RuntimeError('boom')\n", "RuntimeError: boom (line 2)"),
        ("import no_such_dependency_xyz\n", "No module named 'no_such_dependency_xyz'"),
        ("import sys\nsys.exit(3)\n", "SystemExit: 3 (line 2)"),
        ("TASK_INFO = {}\n", "no run() function"),
        ("run = 5\n", "run is not callable (it is a int)"),
        ("TASK_INFO = ['x']\ndef run():\n    pass\n", "TASK_INFO must be a dict"),
        ("def run(a, /):\n    pass\n", "cannot read the parameters of run()"),
    ],
)
def test_broken_script_is_listed_with_its_error_beside_working_ones(
    scripts: Path, source: str, error: str
) -> None:
    write_script(scripts, "a_good", "def run():\n    return {}\n")
    write_script(scripts, "broken", source)
    write_script(scripts, "z_good", "def run():\n    return {}\n")

    infos = by_path(list_scripts())

    assert [info.broken for info in infos.values()] == [False, True, False]
    broken = infos["scripts:broken"]
    assert error in broken.error
    assert (broken.kind, broken.name, broken.params) == ("script", "broken", ())
    assert "scheduler_scripts.broken" not in sys.modules
    assert "scheduler_scripts.a_good" in sys.modules


def test_file_name_that_is_not_an_identifier_is_listed_as_broken(scripts: Path) -> None:
    write_script(scripts, "my-task", "def run():\n    pass\n")

    [info] = list_scripts()

    assert info.path == "scripts:my-task"
    assert info.broken is True
    assert "not a Python identifier" in info.error


def test_get_handler_refuses_a_broken_script_naming_it_and_the_error(
    scripts: Path,
) -> None:
    write_script(scripts, "broken", "x = 1\n\ndef run(:\n    pass\n")

    with pytest.raises(HandlerBroken, match="“scripts:broken” is broken") as excinfo:
        load_handler("scripts:broken")

    assert "SyntaxError: invalid syntax (line 3)" in str(excinfo.value)
    assert excinfo.value.field == "handler_path"


# Reloading


def test_changed_script_is_seen_without_restarting(scripts: Path) -> None:
    path = write_script(
        scripts,
        "job",
        "TASK_INFO = {'name': 'First'}\ndef run(days: int = 1):\n    pass\n",
    )
    [before] = list_scripts()

    rewrite_script(
        path,
        "TASK_INFO = {'name': 'Second'}\n"
        "async def run(since: str, limit: int = 5):\n    pass\n",
    )
    [after] = list_scripts()

    assert (before.name, [spec.name for spec in before.params]) == ("First", ["days"])
    assert after.name == "Second"
    assert [spec.name for spec in after.params] == ["since", "limit"]
    assert after.is_async is True


def test_same_size_edit_is_seen_and_no_bytecode_is_written(scripts: Path) -> None:
    path = write_script(scripts, "job", "def run():\n    return {'v': 'AAA'}\n")
    assert load_handler("scripts:job")() == {"v": "AAA"}

    rewrite_script(path, "def run():\n    return {'v': 'BBB'}\n")

    assert load_handler("scripts:job")() == {"v": "BBB"}
    assert not (scripts / "__pycache__").exists()


def test_new_script_appears_and_deleted_script_disappears(scripts: Path) -> None:
    first = write_script(scripts, "first", "def run():\n    pass\n")
    assert [info.path for info in list_scripts()] == ["scripts:first"]

    write_script(scripts, "second", "def run():\n    pass\n")
    assert [info.path for info in list_scripts()] == [
        "scripts:first",
        "scripts:second",
    ]

    first.unlink()
    assert [info.path for info in list_scripts()] == ["scripts:second"]
    assert "scheduler_scripts.first" not in sys.modules
    with pytest.raises(HandlerNotFound):
        get_handler("scripts:first")


def test_fixed_script_is_no_longer_broken(scripts: Path) -> None:
    path = write_script(scripts, "job", "def run(:\n")
    assert list_scripts()[0].broken is True

    rewrite_script(path, "def run():\n    return {'ok': True}\n")

    assert list_scripts()[0].broken is False
    assert load_handler("scripts:job")() == {"ok": True}


def test_script_that_breaks_is_dropped_from_sys_modules(scripts: Path) -> None:
    path = write_script(scripts, "job", "def run():\n    pass\n")
    get_handler("scripts:job")
    assert "scheduler_scripts.job" in sys.modules

    rewrite_script(path, "raise ValueError('oops')\n")

    assert list_scripts()[0].error == "ValueError: oops (line 1)"
    assert "scheduler_scripts.job" not in sys.modules


def test_unchanged_script_keeps_its_module_state_between_runs(scripts: Path) -> None:
    write_script(
        scripts,
        "counter",
        """
        CALLS = 0

        def run():
            global CALLS
            CALLS += 1
            return {"calls": CALLS}
        """,
    )

    list_scripts()
    first = load_handler("scripts:counter")
    second = load_handler("scripts:counter")

    assert first is second
    assert [first(), second()] == [{"calls": 1}, {"calls": 2}]


def test_script_can_define_dataclasses_and_see_its_own_module(scripts: Path) -> None:
    write_script(
        scripts,
        "typed",
        """
        from __future__ import annotations

        import sys
        from dataclasses import dataclass

        @dataclass
        class Row:
            id: int

        def run() -> dict:
            return {"row": Row(1).id, "module": sys.modules[__name__].__name__}
        """,
    )

    assert load_handler("scripts:typed")() == {
        "row": 1,
        "module": "scheduler_scripts.typed",
    }


def test_concurrent_listing_imports_each_script_once(
    scripts: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "imports.log"
    write_script(
        scripts,
        "noisy",
        """
        with open(%r, "a") as log:
            log.write("imported\\n")

        def run():
            pass
        """
        % str(marker),
    )
    barrier = threading.Barrier(8)
    results: list[list[HandlerInfo]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(list_scripts())
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(results) == 8
    assert all(result == results[0] for result in results)
    assert marker.read_text() == "imported\n"


# Script lookups


def test_load_handler_returns_the_scripts_run(scripts: Path) -> None:
    write_script(scripts, "data_sync", GOOD_SCRIPT)

    run = load_handler("scripts:data_sync")

    assert inspect.iscoroutinefunction(run)
    assert asyncio.run(run(days=3)) == {"days": 3, "target": "all"}


def test_missing_script_names_the_file_and_the_folder(scripts: Path) -> None:
    with pytest.raises(HandlerNotFound) as excinfo:
        get_handler("scripts:nope")

    message = str(excinfo.value)
    assert "“scripts:nope” not found" in message
    assert "nope.py" in message
    assert str(scripts) in message
    assert excinfo.value.field == "handler_path"


@pytest.mark.parametrize(
    "path",
    [
        "scripts:../x",
        "scripts:sub/x",
        "scripts:x.py",
        "scripts:",
        "scripts",
        "sync_accounts",
        "tests.sample_handlers.registry.sync_accounts",
        ":run",
        "mod:",
        "my-mod:run",
        "mod..sub:run",
        "mod:func:extra",
        " mod:run",
        "",
    ],
)
def test_malformed_handler_path_is_refused_with_the_accepted_forms(path: str) -> None:
    with pytest.raises(HandlerNotFound, match="use scripts:<file>") as excinfo:
        get_handler(path)

    assert "dotted.module:attribute" in str(excinfo.value)
    assert excinfo.value.field == "handler_path"


def test_private_script_is_not_a_handler(scripts: Path) -> None:
    write_script(scripts, "_helpers", "def run():\n    pass\n")

    with pytest.raises(HandlerNotFound, match="starts with “_”"):
        load_handler("scripts:_helpers")


# Serialisation


def test_handler_info_to_dict_is_json_safe(scripts: Path) -> None:
    write_script(
        scripts,
        "dated",
        """
        import datetime

        TASK_INFO = {"schedule": {"run_date": datetime.datetime(2030, 1, 1, 9, 0)}}

        def run(when: datetime.date = datetime.date(2024, 1, 1)):
            pass
        """,
    )

    data = json.loads(json.dumps(get_handler("scripts:dated").to_dict()))

    assert data["schedule"] == {"task_type": "date", "run_date": "2030-01-01T09:00:00"}
    assert data["params"][0]["default"] == "2024-01-01"
    assert data["params"][0]["default_expression"] == "date(2024, 1, 1)"
    assert (data["kind"], data["broken"], data["error"]) == ("script", False, "")
