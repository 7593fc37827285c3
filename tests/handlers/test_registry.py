"""Handler discovery and loading: scripts:<file>, module:function and module:Class.

Which module handlers are allowed at all is in test_allowed.py; the module handlers
here come from tests.handlers.sample_handlers, which the test settings list in
SCHEDULER_HANDLER_MODULES.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import os
import re
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler_app.exceptions import HandlerBroken, HandlerNotAllowed, HandlerNotFound
from scheduler_app.handlers import registry
from scheduler_app.handlers.registry import (
    HandlerInfo,
    get_handler,
    list_scripts,
    load_handler,
)
from scheduler_app.handlers.results import TaskResult

SAMPLES = "tests.handlers.sample_handlers"

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
        "tests.handlers.sample_handlers.sync_accounts",
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


# module:function


def test_module_function_is_described() -> None:
    info = get_handler(SAMPLES + ":sync_accounts")

    assert info.kind == "function"
    assert info.name == "sync_accounts"
    assert info.description == "Synchronise accounts."
    assert [(spec.name, spec.type_name) for spec in info.params] == [
        ("days", "int"),
        ("target", "str"),
    ]
    assert info.accepts_var_kwargs is True
    assert (info.is_async, info.schedule, info.broken) == (False, None, False)


def test_module_function_is_loaded_as_is() -> None:
    from tests.handlers import sample_handlers

    func = load_handler(SAMPLES + ":sync_accounts")

    assert func is sample_handlers.sync_accounts
    assert func(days=2, extra=1) == {"days": 2, "target": "all", "extra": 1}


def test_async_module_function_is_reported_async() -> None:
    info = get_handler(SAMPLES + ":fetch_report")

    assert info.is_async is True
    assert [(spec.name, spec.required, spec.optional) for spec in info.params] == [
        ("when", True, False),
        ("limit", False, True),
    ]


def test_missing_listed_module_is_not_found_with_the_import_error(
    settings: Any,
) -> None:
    settings.SCHEDULER_HANDLER_MODULES = ["no_such_pkg.tasks"]

    with pytest.raises(
        HandlerNotFound, match="cannot import module “no_such_pkg.tasks”"
    ) as exc:
        get_handler("no_such_pkg.tasks:run")

    assert "No module named 'no_such_pkg'" in str(exc.value)
    assert exc.value.field == "handler_path"


def test_missing_attribute_is_not_found_naming_it() -> None:
    with pytest.raises(HandlerNotFound, match="has no attribute “nope”") as exc:
        load_handler(SAMPLES + ":nope")

    assert SAMPLES in str(exc.value)
    assert exc.value.field == "handler_path"


def test_attribute_that_is_not_a_function_is_not_a_handler() -> None:
    with pytest.raises(
        HandlerNotAllowed, match="“NOT_CALLABLE” is a int, not a function"
    ) as exc:
        get_handler(SAMPLES + ":NOT_CALLABLE")

    assert exc.value.field == "handler_path"


def test_listed_module_that_fails_to_import_is_broken_not_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.SCHEDULER_HANDLER_MODULES = [
        "exploding_handlers_mod",
        "needy_handlers_mod",
    ]
    (tmp_path / "exploding_handlers_mod.py").write_text(
        "raise RuntimeError('kaboom')\n"
    )
    (tmp_path / "needy_handlers_mod.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(HandlerBroken, match="RuntimeError: kaboom"):
        get_handler("exploding_handlers_mod:run")
    with pytest.raises(HandlerBroken, match="no_such_dependency_xyz"):
        get_handler("needy_handlers_mod:run")
    assert "exploding_handlers_mod" not in sys.modules


def test_function_with_required_positional_only_parameter_is_broken() -> None:
    with pytest.raises(HandlerBroken, match="positional-only"):
        get_handler(SAMPLES + ":positional_only")


# module:Class


def test_task_class_is_described_from_its_attributes() -> None:
    info = get_handler(SAMPLES + ":SyncInventoryTask")

    assert info.kind == "class"
    assert info.name == "sync_inventory"
    assert info.description == "Synchronise inventory every hour"
    assert [spec.name for spec in info.params] == ["warehouse"]
    assert info.is_async is False
    assert info.schedule == {
        "task_type": "interval",
        "cron_expression": "",
        "interval_seconds": 3600,
        "run_date": None,
        "overlap_policy": "skip",
        "timeout_seconds": 0,
    }


def test_task_class_is_called_through_a_new_instance() -> None:
    call = load_handler(SAMPLES + ":SyncInventoryTask")

    result = call(warehouse="east")

    assert not inspect.iscoroutinefunction(call)
    assert result == TaskResult.success("synced", warehouse="east", count=100)
    assert list(inspect.signature(call).parameters) == ["warehouse"]


def test_async_task_class_gives_a_coroutine_function() -> None:
    info = get_handler(SAMPLES + ":AsyncReportTask")
    call = load_handler(SAMPLES + ":AsyncReportTask")

    first = asyncio.run(call(day=datetime.date(2024, 1, 1)))
    second = asyncio.run(call())

    assert info.is_async is True
    assert inspect.iscoroutinefunction(call)
    assert info.name == "async_report_task"
    assert info.description == "Builds the nightly report."
    assert info.enabled is False
    assert info.schedule is not None
    assert info.schedule["overlap_policy"] == "allow"
    assert info.schedule["timeout_seconds"] == 600
    assert info.params[0].kind == "keyword_only"
    assert first["day"] == datetime.date(2024, 1, 1)
    assert second["day"] is None


@pytest.mark.parametrize("attr", ["DuckTypedTask", "NoRunClass"])
def test_class_that_is_not_a_base_task_is_not_a_handler(attr: str) -> None:
    with pytest.raises(
        HandlerNotAllowed, match="is a type, not a function or a BaseTask"
    ):
        get_handler("%s:%s" % (SAMPLES, attr))


@pytest.mark.parametrize(
    ("attr", "error"),
    [
        ("AbstractTask", "class AbstractTask does not implement run()"),
        ("NeedsArgumentsTask", "needs constructor arguments (client)"),
    ],
)
def test_unusable_task_class_is_broken(attr: str, error: str) -> None:
    with pytest.raises(HandlerBroken, match=re.escape(error)) as excinfo:
        get_handler("%s:%s" % (SAMPLES, attr))

    assert excinfo.value.field == "handler_path"


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
