"""The API's side of the audit trail (who: the key's user and the key's name), the
reason in the body, and the acceptance test of issue 16: the same pause through
the admin, the API and the Python API gives three entries, each with its actor
and source."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from scheduler_app import scheduler
from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import AuditEntry, ScheduledTask, TaskExecution, UserAPIKey
from tests.admin.helpers import TASK_CHANGELIST, confirm_action
from tests.factories import key_client, make_execution, make_task, make_user

pytestmark = pytest.mark.django_db

PAUSE = "scheduler_app.pause_scheduledtask"


def url(task: ScheduledTask, verb: str = "") -> str:
    return "/api/v1/tasks/%s/%s" % (task.pk, verb + "/" if verb else "")


@pytest.fixture
def ci_bot() -> APIClient:
    """The API client of alice's key named "ci-bot", allowed everything."""
    alice = make_user("alice", superuser=True)
    _key, plain = UserAPIKey.objects.create_key(name="ci-bot", user=alice)
    return key_client(plain)


def test_the_same_pause_through_the_admin_the_api_and_python_is_three_entries(
    admin_client: Client, ci_bot: APIClient
) -> None:
    by_admin, by_api, by_python = (
        make_task(name="by_admin"),
        make_task(name="by_api"),
        make_task(name="by_python"),
    )

    confirm_action(
        admin_client, TASK_CHANGELIST, "pause", [by_admin], reason="from the admin"
    )
    answer = ci_bot.post(url(by_api, "pause"), {"reason": "from CI"}, format="json")
    scheduler.pause_job("by_python", reason="from code")

    assert answer.status_code == 200
    got = list(
        AuditEntry.objects.order_by("id").values_list(
            "task_id", "action", "source", "actor_name", "api_key_name", "reason"
        )
    )
    assert got == [
        (by_admin.pk, "pause", "admin", "admin", "", "from the admin"),
        (by_api.pk, "pause", "api", "alice", "ci-bot", "from CI"),
        (by_python.pk, "pause", "python", "", "", "from code"),
    ]
    actors = [entry.actor for entry in AuditEntry.objects.order_by("id")]
    assert [actor and actor.get_username() for actor in actors] == [
        "admin",
        "alice",
        None,
    ]
    mine = ScheduledTask.objects.filter(pk__in=[by_admin.pk, by_api.pk, by_python.pk])
    assert set(mine.values_list("status", flat=True)) == {"paused"}


# Reasons in the API


@pytest.mark.parametrize(
    ("setting", "request_"),
    [
        ("pause", lambda api, task: api.post(url(task, "pause"), {}, format="json")),
        ("delete", lambda api, task: api.delete(url(task))),
        (
            "disable",
            lambda api, task: api.patch(
                url(task), {"status": "disabled"}, format="json"
            ),
        ),
        (
            "disable",
            lambda api, task: api.post(url(task, "disable"), {}, format="json"),
        ),
        (
            "release_lock",
            lambda api, task: api.post(url(task, "release-lock"), format="json"),
        ),
    ],
)
def test_a_required_reason_missing_is_a_400_naming_reason(
    ci_bot: APIClient, settings: Any, setting: str, request_: Any
) -> None:
    settings.SCHEDULER_REQUIRE_REASON_FOR = setting
    task = make_task(name="guarded")
    get_lock_backend().acquire(task_lock_key(task.pk), owner="gone", ttl_seconds=60)

    answer = request_(ci_bot, task)

    assert answer.status_code == 400, answer.content
    body = answer.json()
    assert body["field"] == "reason"
    assert "Say why (field “reason”)" in body["detail"]
    task.refresh_from_db()
    assert task.status == ScheduledTask.Status.ACTIVE
    assert get_lock_backend().get(task_lock_key(task.pk)) is not None
    assert AuditEntry.objects.count() == 0


def test_the_reason_of_a_delete_comes_in_the_body_or_the_query(
    ci_bot: APIClient,
) -> None:
    in_body, in_query = make_task(name="in_body"), make_task(name="in_query")

    first = ci_bot.delete(url(in_body), {"reason": "body"}, format="json")
    second = ci_bot.delete(url(in_query) + "?reason=query")

    assert (first.status_code, second.status_code) == (204, 204)
    assert list(
        AuditEntry.objects.order_by("id").values_list("task_name", "action", "reason")
    ) == [("in_body", "delete", "body"), ("in_query", "delete", "query")]


def test_a_patch_that_disables_takes_a_write_only_reason(ci_bot: APIClient) -> None:
    task = make_task()

    answer = ci_bot.patch(
        url(task), {"status": "disabled", "reason": "flaky"}, format="json"
    )

    assert answer.status_code == 200
    assert "reason" not in answer.json()
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.changes, entry.reason, entry.api_key_name) == (
        "disable",
        {"status": ["active", "disabled"]},
        "flaky",
        "ci-bot",
    )


def test_an_update_records_before_and_after(ci_bot: APIClient) -> None:
    task = make_task(interval_seconds=60, description="")

    ci_bot.patch(
        url(task), {"interval_seconds": 300, "description": "slower"}, format="json"
    )
    ci_bot.patch(url(task), {"interval_seconds": 300}, format="json")  # no change

    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.changes) == (
        "update",
        {"interval_seconds": [60, 300], "description": ["", "slower"]},
    )


def test_a_reason_that_is_not_text_is_a_400(ci_bot: APIClient) -> None:
    task = make_task()

    answer = ci_bot.post(url(task, "pause"), {"reason": 42}, format="json")

    assert answer.status_code == 400
    assert answer.json()["field"] == "reason"
    assert AuditEntry.objects.count() == 0


def test_a_nul_in_a_reason_of_the_query_is_a_400(ci_bot: APIClient) -> None:
    task = make_task()

    answer = ci_bot.post(url(task, "pause") + "?reason=a%00b")

    assert answer.status_code == 400
    assert answer.json()["field"] == "reason"
    task.refresh_from_db()
    assert task.status == "active"


def test_a_new_task_s_reason_is_held_to_the_same_limit(ci_bot: APIClient) -> None:
    body = {
        "name": "long-why",
        "task_type": "manual",
        "handler_path": "scripts:example_task",
        "reason": "x" * 1001,
    }

    answer = ci_bot.post("/api/v1/tasks", body, format="json")

    assert answer.status_code == 400
    assert answer.json()["field"] == "reason"
    assert not ScheduledTask.objects.filter(name="long-why").exists()


@pytest.mark.parametrize("body", ["false", "[]", "null", '"why"'])
@pytest.mark.parametrize("verb", ["pause", "release-lock"])
def test_a_body_that_is_no_object_is_a_400(
    ci_bot: APIClient, body: str, verb: str
) -> None:
    task = make_task()

    answer = ci_bot.post(url(task, verb), body, content_type="application/json")

    assert answer.status_code == 400, answer.content
    task.refresh_from_db()
    assert task.status == ScheduledTask.Status.ACTIVE
    assert AuditEntry.objects.count() == 0


def test_an_empty_body_is_no_reason(ci_bot: APIClient) -> None:
    task = make_task()

    answer = ci_bot.post(url(task, "pause"))

    assert answer.status_code == 200
    assert AuditEntry.objects.get().reason == ""


def test_a_release_records_its_reason(ci_bot: APIClient) -> None:
    task = make_task()
    get_lock_backend().acquire(task_lock_key(task.pk), owner="gone", ttl_seconds=60)

    answer = ci_bot.post(
        url(task, "release-lock"), {"reason": "holder died"}, format="json"
    )

    assert answer.json()["released"] is True
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.reason, entry.changes) == (
        "release_lock",
        "holder died",
        {"lock": ["gone", ""]},
    )


# Runs


def test_a_run_says_who_asked_in_the_execution(ci_bot: APIClient) -> None:
    task = make_task()

    answer = ci_bot.post(url(task, "run"), {}, format="json")

    run = TaskExecution.objects.get(task=task)
    assert answer.status_code == 202
    assert run.requested_by == "alice (api, key ci-bot)"
    detail = ci_bot.get("/api/v1/tasks/executions/%s/" % run.pk).json()
    listed = ci_bot.get(url(task, "executions")).json()["results"]
    assert detail["requested_by"] == "alice (api, key ci-bot)"
    assert listed[0]["requested_by"] == "alice (api, key ci-bot)"
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.run_id) == ("run_now", run.pk)


def test_a_cancel_is_recorded_with_its_run(ci_bot: APIClient) -> None:
    task = make_task()
    run = make_execution(task, status="pending")

    ci_bot.post("/api/v1/tasks/executions/%s/cancel/" % run.pk)

    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.run_id, entry.source) == ("cancel", run.pk, "api")


def test_requested_by_is_read_only_in_the_schema(api: APIClient) -> None:
    schema = api.get("/api/v1/schema/?format=json").json()

    execution = schema["components"]["schemas"]["Execution"]["properties"]
    assert execution["requested_by"]["readOnly"] is True
    write = schema["components"]["schemas"]["TaskWriteRequest"]["properties"]
    assert write["reason"]["writeOnly"] is True
