"""The admin's side of the audit trail: who acts (the signed-in user, source admin),
the reason asked on the confirmation pages and the task form, and requested_by."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from scheduler_app.models import AuditEntry, ScheduledTask, TaskExecution
from tests.admin.helpers import (
    TASK_CHANGELIST,
    add_form_data,
    confirm_action,
    execution_url,
    form_errors,
    post_action,
    task_url,
)
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

MSG_REQUIRED_START = "Say why (field “reason”)"


def entries() -> list[tuple[str, str, str, str, str]]:
    return list(
        AuditEntry.objects.order_by("id").values_list(
            "task_name", "action", "source", "actor_name", "reason"
        )
    )


def edit_data(**overrides: str) -> dict[str, str]:
    return add_form_data(
        name="every_minute",
        handler_path="scripts:example_task",
        handler_kwargs="{}",
        task_type=ScheduledTask.TaskType.INTERVAL,
        cron_expression="",
        interval_seconds="60",
        **overrides,
    )


# The actions that ask why: pause, disable, delete


@pytest.mark.parametrize("action", ["pause", "disable", "delete_tasks"])
def test_the_action_asks_for_a_reason_first_and_changes_nothing_yet(
    admin_client: Client, action: str
) -> None:
    task = make_task(name="nightly")

    response = post_action(admin_client, TASK_CHANGELIST, action, [task])

    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="reason"' in content and 'name="post" value="yes"' in content
    assert 'name="action" value="%s"' % action in content
    assert "nightly" in content
    task.refresh_from_db()
    assert task.status == ScheduledTask.Status.ACTIVE
    assert AuditEntry.objects.count() == 0


@pytest.mark.parametrize(
    ("action", "recorded"),
    [("pause", "pause"), ("disable", "disable"), ("delete_tasks", "delete")],
)
def test_the_confirmed_action_records_the_user_and_the_reason(
    admin_client: Client, action: str, recorded: str
) -> None:
    tasks = [make_task(name="a"), make_task(name="b")]

    response = confirm_action(
        admin_client, TASK_CHANGELIST, action, tasks, reason=" upstream down "
    )

    assert response.status_code == 302
    assert entries() == [
        ("a", recorded, "admin", "admin", "upstream down"),
        ("b", recorded, "admin", "admin", "upstream down"),
    ]


@pytest.mark.parametrize(
    ("setting", "action"),
    [("pause", "pause"), ("disable", "disable"), ("delete", "delete_tasks")],
)
def test_a_required_reason_missing_is_an_error_on_the_reason_field(
    admin_client: Client, settings: Any, setting: str, action: str
) -> None:
    settings.SCHEDULER_REQUIRE_REASON_FOR = setting
    task = make_task(name="guarded")

    response = confirm_action(admin_client, TASK_CHANGELIST, action, [task], reason="")

    assert response.status_code == 200
    assert response.context["reason_error"].startswith(MSG_REQUIRED_START)
    content = response.content.decode()
    assert 'id="reason-error"' in content
    assert (
        'name="reason" id="id_reason" rows="3" cols="60" maxlength="1000" required'
        in (content)
    )
    assert ScheduledTask.objects.get(pk=task.pk).status == ScheduledTask.Status.ACTIVE
    assert AuditEntry.objects.count() == 0


def test_resume_and_enable_ask_nothing(admin_client: Client) -> None:
    paused = make_task(name="p", status=ScheduledTask.Status.PAUSED)
    disabled = make_task(name="d", status=ScheduledTask.Status.DISABLED)

    post_action(admin_client, TASK_CHANGELIST, "resume", [paused])
    post_action(admin_client, TASK_CHANGELIST, "enable", [disabled])

    assert entries() == [
        ("p", "resume", "admin", "admin", ""),
        ("d", "enable", "admin", "admin", ""),
    ]


# The single delete and the change form


def test_the_delete_page_records_its_reason(admin_client: Client) -> None:
    task = make_task(name="doomed")

    page = admin_client.get(task_url("delete", task))
    response = admin_client.post(
        task_url("delete", task), {"post": "yes", "reason": "replaced"}
    )

    assert 'name="reason"' in page.content.decode()
    assert response.status_code == 302
    assert not ScheduledTask.objects.filter(pk=task.pk).exists()
    assert entries() == [("doomed", "delete", "admin", "admin", "replaced")]


def test_the_delete_page_refuses_a_required_reason_missing_on_its_field(
    admin_client: Client, settings: Any
) -> None:
    settings.SCHEDULER_REQUIRE_REASON_FOR = ["delete"]
    task = make_task(name="kept")

    response = admin_client.post(task_url("delete", task), {"post": "yes"})

    assert response.status_code == 200
    assert response.context["reason_error"].startswith(MSG_REQUIRED_START)
    assert 'id="reason-error"' in response.content.decode()
    assert ScheduledTask.objects.filter(pk=task.pk).exists()
    assert AuditEntry.objects.count() == 0


def test_the_delete_page_checks_the_reason_on_any_post(
    admin_client: Client, settings: Any
) -> None:
    # Django's delete view deletes on any non-empty POST, not only the form's.
    settings.SCHEDULER_REQUIRE_REASON_FOR = ["delete"]
    task = make_task(name="kept")

    response = admin_client.post(task_url("delete", task), {"x": "1"})

    assert response.status_code == 200
    assert ScheduledTask.objects.filter(pk=task.pk).exists()


@pytest.mark.parametrize("reason", ["a\x00b", "x" * 1001])
def test_a_reason_no_database_stores_or_too_long_is_an_error_not_a_500(
    admin_client: Client, reason: str
) -> None:
    task = make_task(name="kept")

    response = admin_client.post(
        task_url("delete", task), {"post": "yes", "reason": reason}
    )

    assert response.status_code == 200
    assert response.context["reason_error"]
    assert ScheduledTask.objects.filter(pk=task.pk).exists()
    assert AuditEntry.objects.count() == 0


def test_the_change_form_records_its_changes_and_its_optional_reason(
    admin_client: Client,
) -> None:
    task = make_task(name="every_minute", handler_path="scripts:example_task")

    page = admin_client.get(task_url("change", task))
    response = admin_client.post(
        task_url("change", task),
        edit_data(description="now documented", reason="asked by ops"),
    )

    assert 'name="reason"' in page.content.decode()
    assert response.status_code == 302
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.source, entry.actor_name, entry.reason) == (
        "update",
        "admin",
        "admin",
        "asked by ops",
    )
    assert entry.changes["description"] == ["", "now documented"]


def test_the_add_form_records_a_create(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:scheduler_app_scheduledtask_add"), add_form_data()
    )

    assert response.status_code == 302
    [entry] = AuditEntry.objects.all()
    assert (entry.task_name, entry.action, entry.source, entry.actor_name) == (
        "nightly_sync",
        "create",
        "admin",
        "admin",
    )


def test_the_change_form_needs_a_required_reason_to_disable(
    admin_client: Client, settings: Any
) -> None:
    settings.SCHEDULER_REQUIRE_REASON_FOR = "disable"
    task = make_task(name="every_minute", handler_path="scripts:example_task")

    refused = admin_client.post(
        task_url("change", task), edit_data(status="disabled", reason=" ")
    )
    edited = admin_client.post(
        task_url("change", task), edit_data(description="no status change")
    )

    [message] = form_errors(refused)["reason"]
    assert message.startswith(MSG_REQUIRED_START)
    assert edited.status_code == 302
    task.refresh_from_db()
    assert (task.status, task.description) == ("active", "no status change")
    assert [entry.action for entry in AuditEntry.objects.all()] == ["update"]


# Runs: requested_by, run now, run with parameters, cancel


def test_run_now_says_who_asked_and_the_execution_page_shows_it(
    admin_client: Client,
) -> None:
    task = make_task(name="by_button")

    admin_client.post(task_url("run", task))

    run = TaskExecution.objects.get(task=task)
    assert run.requested_by == "admin (admin)"
    assert entries() == [("by_button", "run_now", "admin", "admin", "")]
    assert AuditEntry.objects.get().run_id == run.pk
    page = admin_client.get(execution_url(run)).content.decode()
    assert "Requested by" in page and "admin (admin)" in page


def test_the_bulk_run_now_records_each_run(admin_client: Client) -> None:
    tasks = [make_task(name="a"), make_task(name="b")]

    post_action(admin_client, TASK_CHANGELIST, "run_now", tasks)

    runs = {run.task_id: run for run in TaskExecution.objects.all()}
    assert {run.requested_by for run in runs.values()} == {"admin (admin)"}
    assert sorted(AuditEntry.objects.values_list("task_name", "action", "run_id")) == [
        ("a", "run_now", runs[tasks[0].pk].pk),
        ("b", "run_now", runs[tasks[1].pk].pk),
    ]


def test_run_with_parameters_is_recorded_so(admin_client: Client) -> None:
    task = make_task(handler_path="scripts:data_sync", handler_kwargs={"days": "3"})

    admin_client.post(task_url("run_with_parameters", task), {"param_days": "5"})

    run = TaskExecution.objects.get(task=task)
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.run_id, entry.changes) == (
        "run_with_parameters",
        run.pk,
        {"kwargs": [None, {"days": "5"}]},
    )


def test_a_cancel_is_recorded_with_its_run(admin_client: Client) -> None:
    task = make_task(name="long")
    run = make_execution(task, status="pending")

    admin_client.post(
        reverse("admin:scheduler_app_taskexecution_cancel", args=[run.pk])
    )

    assert entries() == [("long", "cancel", "admin", "admin", "")]
    assert AuditEntry.objects.get().run_id == run.pk
