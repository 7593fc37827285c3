"""module:function and module:Class handlers: how each is described and called.

They come from tests.sample_handlers.registry, which the test settings list in
SCHEDULER_HANDLER_MODULES; which module handlers are allowed at all is in
test_allowed.py.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from scheduler_app.exceptions import HandlerBroken, HandlerNotAllowed, HandlerNotFound
from scheduler_app.handlers.registry import get_handler, load_handler
from scheduler_app.handlers.results import TaskResult

SAMPLES = "tests.sample_handlers.registry"


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
    from tests.sample_handlers import registry

    func = load_handler(SAMPLES + ":sync_accounts")

    assert func is registry.sync_accounts
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
