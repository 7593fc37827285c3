"""Only registered handlers run: every way in refuses the others, and the run refuses them again.

The hostile handlers below are what a user allowed to add or change a task tried
(issue "Trust first"): each would run arbitrary code on the scheduler's host. Each
refusal says it came before the handler was looked up; for os:system and
subprocess:getoutput a canary file would also exist had they run (the same test
with a registered handler writes it, so the canary can tell).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from scheduler_app import scheduler
from scheduler_app.exceptions import HandlerNotAllowed
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import execution_run
from tests.admin.helpers import (
    TASK_ADD,
    add_form_data,
    form_errors,
    sent_messages,
    task_url,
)
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks"
HANDLER_PARAMETERS = reverse("admin:scheduler_app_scheduledtask_handler_parameters")
REGISTERED = "tests.sample_handlers.testapp.scheduled_tasks:write_canary"
HOSTILE = [
    "os:system",
    "subprocess:getoutput",
    "builtins:eval",
    "builtins:exec",
    "importlib:import_module",
    "pickle:loads",
]
NOT_ALLOWED = "is not allowed"


def hostile_kwargs(handler: str, canary: Path) -> dict[str, str]:
    """Parameters that would create the canary if the handler ever ran."""
    command = repr("touch %s" % canary)
    code = repr("open(%r, 'w').close()" % str(canary))
    return {
        "os:system": {"command": command},
        "subprocess:getoutput": {"cmd": command},
        "builtins:eval": {"source": code},
        "builtins:exec": {"source": code},
        "importlib:import_module": {"name": repr("antigravity")},
        "pickle:loads": {"data": repr("not a pickle")},
    }[handler]


def says_not_allowed(text: str) -> bool:
    return (
        NOT_ALLOWED in text
        and "@scheduler_app.handler" in text
        and ("SCHEDULER_HANDLER_MODULES" in text)
    )


# Saving: API, admin add and change forms, the Python API


@pytest.mark.parametrize("handler", HOSTILE)
def test_the_api_refuses_a_hostile_handler_on_create_and_on_change(
    api: APIClient, handler: str, tmp_path: Path
) -> None:
    body = {
        "name": "innocent",
        "task_type": "date",
        "run_date": "2099-01-01T00:00:00Z",
        "handler_path": handler,
        "handler_kwargs": hostile_kwargs(handler, tmp_path / "canary"),
    }
    created = api.post(TASKS, body, format="json")
    task = make_task(handler_path="scripts:example_task")
    changed = api.patch(
        "%s/%d" % (TASKS, task.pk), {"handler_path": handler}, format="json"
    )

    for response in (created, changed):
        assert response.status_code == 400, response.content
        assert response.json()["field"] == "handler_path"
        assert says_not_allowed(response.json()["errors"]["handler_path"][0])
    assert not ScheduledTask.objects.filter(name="innocent").exists()
    task.refresh_from_db()
    assert task.handler_path == "scripts:example_task"


@pytest.mark.parametrize("handler", HOSTILE)
def test_the_admin_add_and_change_forms_refuse_a_hostile_handler(
    admin_client: Client, handler: str
) -> None:
    added = admin_client.post(
        TASK_ADD, add_form_data(handler_path=handler, handler_kwargs="{}")
    )
    system = ScheduledTask.objects.get(name="cleanup_executions")
    change_data = add_form_data(
        name=system.name,
        handler_path=handler,
        handler_kwargs="{}",
        cron_expression="0 2 * * *",
    )
    changed = admin_client.post(task_url("change", system), change_data)

    for response in (added, changed):
        [message] = form_errors(response)["handler_path"]
        assert says_not_allowed(message)
    assert not ScheduledTask.objects.filter(name="nightly_sync").exists()
    system.refresh_from_db()
    assert system.handler_path == "scripts:cleanup_executions"


@pytest.mark.parametrize("handler", HOSTILE)
def test_the_python_api_refuses_a_hostile_handler_naming_the_decorator_and_the_setting(
    handler: str,
) -> None:
    with pytest.raises(HandlerNotAllowed) as excinfo:
        scheduler.add_cron_job(handler, "0 2 * * *", name="innocent")

    assert says_not_allowed(excinfo.value.message)
    assert not ScheduledTask.objects.filter(name="innocent").exists()


@pytest.mark.parametrize("func", [os.system, subprocess.getoutput, eval, exec])
def test_the_python_api_refuses_an_unregistered_callable(
    func: Callable[..., Any],
) -> None:
    with pytest.raises(HandlerNotAllowed, match=NOT_ALLOWED):
        scheduler.add_interval_job(func, minutes=5, name="innocent")

    assert not ScheduledTask.objects.filter(name="innocent").exists()


# A row written behind the services' back (SQL, a restored dump)


def test_the_change_page_of_a_hostile_row_shows_why_its_handler_is_refused(
    admin_client: Client,
) -> None:
    task = make_task(handler_path="os:system")

    page = admin_client.get(task_url("change", task))

    assert page.status_code == 200
    assert '<optgroup label="Current value">' in page.content.decode()
    assert "os:system — Handler “os:system” is not allowed" in page.content.decode()


@pytest.mark.parametrize("handler", HOSTILE)
def test_a_row_with_a_hostile_handler_runs_nothing_and_its_run_says_why(
    handler: str, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    task = make_task(
        handler_path=handler, handler_kwargs=hostile_kwargs(handler, canary)
    )
    modules_before = set(sys.modules)

    execution = execution_run(execution=make_execution(task))

    assert execution.status == TaskExecution.Status.FAILED
    assert says_not_allowed(execution.error_message)
    assert says_not_allowed(execution.log_output)
    assert not canary.exists()
    assert "antigravity" not in set(sys.modules) - modules_before


def test_the_canary_would_tell_a_handler_that_ran(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    task = make_task(
        handler_path=REGISTERED, handler_kwargs={"path": repr(str(canary))}
    )

    execution = execution_run(execution=make_execution(task))

    assert execution.status == TaskExecution.Status.SUCCESS
    assert canary.read_text() == "ran"


def test_an_undecorated_function_beside_registered_ones_does_not_run(
    tmp_path: Path,
) -> None:
    canary = tmp_path / "canary"
    task = make_task(
        handler_path="tests.sample_handlers.testapp.scheduled_tasks:not_registered",
        handler_kwargs={"path": repr(str(canary))},
    )

    execution = execution_run(execution=make_execution(task))

    assert execution.status == TaskExecution.Status.FAILED
    assert says_not_allowed(execution.error_message)
    assert not canary.exists()


@pytest.mark.parametrize("handler", HOSTILE)
def test_run_now_of_a_hostile_row_is_refused_with_or_without_overrides(
    api: APIClient, admin_client: Client, handler: str, tmp_path: Path
) -> None:
    task = make_task(handler_path=handler)
    url = "%s/%d/run" % (TASKS, task.pk)

    plain = api.post(url, {}, format="json")
    overridden = api.post(
        url, {"kwargs": hostile_kwargs(handler, tmp_path / "c")}, format="json"
    )
    button = admin_client.post(task_url("run", task))
    with_parameters = admin_client.post(task_url("run_with_parameters", task), {})
    action = admin_client.post(
        reverse("admin:scheduler_app_scheduledtask_changelist"),
        {"action": "run_now", "_selected_action": [task.pk]},
        follow=True,
    )

    for response in (plain, overridden):
        assert response.status_code == 400, response.content
        assert says_not_allowed(str(response.json()))
    assert button.status_code == 302
    assert any(says_not_allowed(text) for _level, text in sent_messages(button))
    assert with_parameters.status_code == 200
    assert NOT_ALLOWED in with_parameters.content.decode()
    assert any(says_not_allowed(text) for _level, text in sent_messages(action))
    assert not TaskExecution.objects.filter(task=task).exists()


# Nothing a request names is imported by the web process


@pytest.mark.parametrize("module", ["this", "tests.sample_handlers.never_imported"])
def test_no_request_makes_the_web_process_import_a_module_it_names(
    api: APIClient, admin_client: Client, module: str
) -> None:
    sys.modules.pop(module, None)
    path = "%s:anything" % module

    described = admin_client.get(HANDLER_PARAMETERS, {"path": path})
    created = api.post(
        TASKS,
        {"name": "x", "task_type": "manual", "handler_path": path},
        format="json",
    )
    added = admin_client.post(
        TASK_ADD, add_form_data(handler_path=path, handler_kwargs="{}")
    )

    assert described.status_code == 200
    assert described.json()["found"] is False
    assert NOT_ALLOWED in described.json()["error"]
    assert created.status_code == 400
    assert NOT_ALLOWED in form_errors(added)["handler_path"][0]
    assert module not in sys.modules


# A registered handler is accepted everywhere


def test_a_registered_handler_is_accepted_by_the_api_and_runs(api: APIClient) -> None:
    created = api.post(
        TASKS,
        {
            "name": "greeting",
            "task_type": "manual",
            "handler_path": "tests.sample_handlers.testapp.scheduled_tasks:greet",
            "handler_kwargs": {"name": "'Ada'"},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    run = api.post(
        "%s/greeting/run" % TASKS, {"kwargs": {"name": "'Grace'"}}, format="json"
    )
    assert run.status_code == 202, run.content

    execution = execution_run(execution=TaskExecution.objects.get(pk=run.json()["id"]))

    assert execution.status == TaskExecution.Status.SUCCESS
    assert execution.result == {"greeted": "Grace"}


def test_a_registered_handler_is_offered_and_accepted_by_the_admin_form(
    admin_client: Client,
) -> None:
    page = admin_client.get(TASK_ADD).content.decode()
    described = admin_client.get(HANDLER_PARAMETERS, {"path": REGISTERED}).json()
    saved = admin_client.post(
        TASK_ADD,
        add_form_data(
            handler_path=REGISTERED,
            handler_kwargs="{}",
            param_path="'/tmp/x'",
            task_type="manual",
        ),
    )

    assert '<optgroup label="Registered in code">' in page
    assert 'value="%s"' % REGISTERED in page
    assert "Write a canary file" in page
    assert described["found"] is True and described["broken"] is False
    assert [(spec["name"], spec["label"]) for spec in described["params"]] == [
        ("path", "File"),
        ("text", "text"),
    ]
    assert saved.status_code == 302, form_errors(saved)
    task = ScheduledTask.objects.get(name="nightly_sync")
    assert (task.handler_path, task.handler_kwargs) == (
        REGISTERED,
        {"path": "'/tmp/x'"},
    )


def test_a_registered_handler_is_accepted_by_the_python_api() -> None:
    from tests.sample_handlers.testapp.scheduled_tasks import Report, greet

    function_task = scheduler.add_interval_job(greet, minutes=5, kwargs={"name": "Ada"})
    class_task = scheduler.add_cron_job(Report, "0 6 * * *", args=[7])

    assert (
        function_task.handler_path
        == "tests.sample_handlers.testapp.scheduled_tasks:greet"
    )
    assert function_task.handler_kwargs == {"name": "'Ada'"}
    assert (
        class_task.handler_path
        == "tests.sample_handlers.testapp.scheduled_tasks:Report"
    )
    assert class_task.handler_kwargs == {"days": 7}
    assert execution_run(execution=scheduler.run_job(class_task.name)).result == {
        "days": 7
    }


def test_the_api_lists_scripts_and_registered_handlers_only(
    api: APIClient, settings: Any
) -> None:
    # Even listed, the standard library's functions are no handlers.
    settings.SCHEDULER_HANDLER_MODULES = [
        *settings.SCHEDULER_HANDLER_MODULES,
        "os",
        "subprocess",
    ]

    response = api.get(TASKS + "/handlers", {"page_size": 500})

    assert response.status_code == 200
    rows = {row["path"]: row for row in response.json()["results"]}
    assert rows[REGISTERED]["name"] == "Write a canary file"
    assert rows[REGISTERED]["kind"] == "function"
    assert (
        rows["tests.sample_handlers.testapp.scheduled_tasks:Report"]["kind"] == "class"
    )
    assert "tests.sample_handlers.testapp.scheduled_tasks:not_registered" not in rows
    assert all(
        row["kind"] == "script" or row["path"].startswith("tests.sample_handlers.")
        for row in rows.values()
    )
    assert not any(
        path.split(":")[0] in ("os", "subprocess", "builtins") for path in rows
    )


@pytest.mark.parametrize("handler", ["os:system", "builtins:exec"])
def test_run_task_refuses_a_hostile_row_and_runs_nothing(
    handler: str, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    task = make_task(
        handler_path=handler, handler_kwargs=hostile_kwargs(handler, canary)
    )

    with pytest.raises(CommandError) as excinfo:
        call_command("run_task", task.name)

    assert says_not_allowed(str(excinfo.value))
    assert not canary.exists()
    assert not TaskExecution.objects.filter(task=task).exists()


def test_the_bulk_run_action_requests_the_allowed_tasks_and_names_the_refused_ones(
    admin_client: Client,
) -> None:
    fine = make_task(name="fine", handler_path="scripts:example_task")
    hostile = make_task(name="hostile", handler_path="os:system")

    response = admin_client.post(
        reverse("admin:scheduler_app_scheduledtask_changelist"),
        {"action": "run_now", "_selected_action": [fine.pk, hostile.pk]},
        follow=True,
    )

    texts = [text for _level, text in sent_messages(response)]
    assert any(
        text.startswith("Task “hostile”: Handler “os:system” is not allowed")
        for text in texts
    )
    assert any(text.startswith("Requested a run of 1 task") for text in texts)
    assert (
        TaskExecution.objects.filter(
            task=fine, status=TaskExecution.Status.PENDING
        ).count()
        == 1
    )
    assert not TaskExecution.objects.filter(task=hostile).exists()


def test_the_tasks_whose_handler_is_refused_are_named_once_each_by_name() -> None:
    from scheduler_app.services import tasks_with_refused_handlers

    make_task(name="b-shell", handler_path="os:system")
    make_task(name="a-shell", handler_path="os:system")
    make_task(
        name="off", handler_path="os:system", status=ScheduledTask.Status.DISABLED
    )
    make_task(name="legacy", handler_path="myproject.jobs:send")
    make_task(name="fine", handler_path="scripts:example_task")

    refused = tasks_with_refused_handlers()

    assert [name for name, _why in refused] == ["a-shell", "b-shell", "legacy"]
    assert all(NOT_ALLOWED in why for _name, why in refused)
