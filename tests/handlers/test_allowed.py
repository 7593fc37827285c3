"""Which handlers are allowed: scripts, @handler-registered code, SCHEDULER_HANDLER_MODULES."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import run_checks

import scheduler_app
from scheduler_app.exceptions import HandlerNotAllowed
from scheduler_app.handlers.registry import check_allowed, get_handler, list_handlers
from tests.processes import run_to_end

APP = "tests.sample_handlers.testapp.scheduled_tasks"


@pytest.fixture
def listed_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> str:
    """A module of the project's own code, listed in SCHEDULER_HANDLER_MODULES."""
    (tmp_path / "project_jobs.py").write_text(
        textwrap.dedent(
            '''
            from os import system
            from scheduler_app.handlers import BaseTask
            from tests.sample_handlers.api import needs_day

            LIMIT = 5

            def refresh(days: int = 1) -> dict:
                """Refresh the caches."""
                return {"days": days}

            async def refresh_async() -> dict:
                return {}

            def _helper() -> None:
                pass

            class Rebuild(BaseTask):
                def run(self) -> dict:
                    return {}
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "project_jobs", raising=False)
    settings.SCHEDULER_HANDLER_MODULES = ["project_jobs"]
    return "project_jobs"


def test_the_decorator_registers_a_function_with_its_name_description_and_labels() -> (
    None
):
    plain = get_handler(APP + ":greet")
    described = get_handler(APP + ":write_canary")

    assert (plain.kind, plain.name, plain.description) == (
        "function",
        "greet",
        "Say hello to someone.",
    )
    assert described.name == "Write a canary file"
    assert described.description.startswith("Writes the given text")
    assert [(spec.name, spec.label, spec.help_text) for spec in described.params] == [
        ("path", "File", "Where to write"),
        ("text", "text", ""),
    ]


def test_the_decorator_registers_a_base_task_class() -> None:
    info = get_handler(APP + ":Report")

    assert (info.kind, info.name, info.description) == (
        "class",
        "Daily report",
        "Build a report.",
    )
    assert [spec.name for spec in info.params] == ["days"]


def test_a_function_of_a_scheduled_tasks_module_that_is_not_decorated_is_not_allowed() -> (
    None
):
    with pytest.raises(HandlerNotAllowed, match="@scheduler_app.handler"):
        get_handler(APP + ":not_registered")


def test_scheduled_tasks_modules_of_installed_apps_are_imported_at_start_up() -> None:
    """A fresh process lists the app's handlers although nothing imported the module."""
    code = (
        "import django; django.setup(); "
        "from scheduler_app.handlers.registry import list_code_handlers; "
        "import json; print(json.dumps([info.path for info in list_code_handlers()]))"
    )
    out = run_to_end(
        [sys.executable, "-c", code],
        {"DJANGO_SETTINGS_MODULE": "config.settings_test", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr

    paths = json.loads(out.stdout.strip().splitlines()[-1])
    assert {APP + ":greet", APP + ":write_canary", APP + ":Report"} <= set(paths)
    assert APP + ":not_registered" not in paths


def test_the_decorator_refuses_what_another_process_could_not_find() -> None:
    def nested() -> None:
        pass

    class NotATask:
        def run(self) -> None:
            pass

    with pytest.raises(TypeError, match="cannot be a handler"):
        scheduler_app.handler(nested)
    with pytest.raises(TypeError, match="cannot be a handler"):
        scheduler_app.handler(lambda: None)
    with pytest.raises(TypeError, match="cannot be a handler"):
        scheduler_app.handler(NotATask)


def test_the_decorator_refuses_a_class_that_is_not_a_base_task() -> None:
    namespace: dict[str, Any] = {"__name__": "tests.handlers.fake_module"}
    exec(  # noqa: S102 - builds a module-level class for the test
        "class Plain:\n    def run(self):\n        return {}\n", namespace
    )

    with pytest.raises(TypeError, match="function or a BaseTask subclass"):
        scheduler_app.handler(namespace["Plain"])


def test_a_listed_module_allows_its_own_public_functions_and_task_classes(
    listed_module: str,
) -> None:
    paths = {info.path for info in list_handlers()}

    assert {
        "project_jobs:refresh",
        "project_jobs:refresh_async",
        "project_jobs:Rebuild",
    } <= paths
    assert get_handler("project_jobs:refresh").description == "Refresh the caches."
    assert (
        not {
            "project_jobs:system",
            "project_jobs:needs_day",
            "project_jobs:_helper",
            "project_jobs:LIMIT",
        }
        & paths
    )
    assert "project_jobs:BaseTask" not in paths


@pytest.mark.parametrize(
    ("attr", "reason"),
    [
        (
            "needs_day",
            "is imported from module “tests.sample_handlers.api”, not defined in it",
        ),
        (
            "system",
            "is a builtin_function_or_method, not a function or a BaseTask subclass",
        ),
        ("_helper", "is private"),
        ("LIMIT", "is a int, not a function or a BaseTask subclass"),
        ("BaseTask", "is BaseTask itself, not a subclass of it"),
    ],
)
def test_a_listed_module_refuses_what_is_not_its_own_public_handler(
    listed_module: str, attr: str, reason: str
) -> None:
    with pytest.raises(HandlerNotAllowed, match=reason) as excinfo:
        check_allowed("project_jobs:%s" % attr)

    assert "SCHEDULER_HANDLER_MODULES" in excinfo.value.message
    assert excinfo.value.field == "handler_path"


def test_a_listed_module_with_all_allows_only_its_names(
    listed_module: str, tmp_path: Path
) -> None:
    source = (tmp_path / "project_jobs.py").read_text()
    (tmp_path / "project_jobs.py").write_text('__all__ = ["refresh"]\n' + source)

    check_allowed("project_jobs:refresh")
    with pytest.raises(HandlerNotAllowed, match="not in the module's __all__"):
        check_allowed("project_jobs:refresh_async")


def test_a_module_that_is_not_listed_is_refused_before_it_is_imported(
    listed_module: str, settings: Any
) -> None:
    settings.SCHEDULER_HANDLER_MODULES = []

    with pytest.raises(HandlerNotAllowed, match="is not allowed"):
        get_handler("project_jobs:refresh")
    assert "project_jobs" not in sys.modules


def test_the_setting_may_be_a_comma_separated_string(
    listed_module: str, settings: Any
) -> None:
    settings.SCHEDULER_HANDLER_MODULES = " project_jobs , tests.sample_handlers.api"

    check_allowed("project_jobs:refresh")
    check_allowed("tests.sample_handlers.api:needs_day")


@pytest.mark.parametrize(
    "module", ["os", "subprocess", "builtins", "importlib", "os.path"]
)
def test_standard_library_modules_never_count_even_when_listed(
    settings: Any, module: str
) -> None:
    settings.SCHEDULER_HANDLER_MODULES = [module]

    with pytest.raises(HandlerNotAllowed):
        check_allowed("%s:system" % module)
    [error] = [
        problem
        for problem in run_checks(tags=["scheduler"])
        if problem.id == "scheduler_app.E007"
    ]
    assert module in error.msg


def test_a_listed_module_that_cannot_be_imported_fails_the_system_check(
    settings: Any,
) -> None:
    settings.SCHEDULER_HANDLER_MODULES = ["no_such_project.jobs"]

    [error] = [
        problem
        for problem in run_checks(tags=["scheduler"])
        if problem.id == "scheduler_app.E008"
    ]
    assert "no_such_project.jobs" in error.msg and "ModuleNotFoundError" in error.msg


def test_scripts_are_allowed_without_registration() -> None:
    check_allowed("scripts:example_task")
    assert get_handler("scripts:example_task").kind == "script"


def test_listing_an_installed_package_is_warned_about(settings: Any) -> None:
    settings.SCHEDULER_HANDLER_MODULES = [
        "django.core.management",
        "tests.sample_handlers.api",
    ]

    warnings = [
        problem
        for problem in run_checks(tags=["scheduler"])
        if problem.id == "scheduler_app.W002"
    ]

    assert [warning.msg.split(",")[0] for warning in warnings] == [
        "SCHEDULER_HANDLER_MODULES lists 'django.core.management'"
    ]
