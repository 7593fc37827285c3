"""GET /api/v1/audit: the audit trail, its own permission, its filters, its pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler_app.api.permissions import VIEW_AUDIT
from scheduler_app.choices import AuditAction, AuditSource
from scheduler_app.models import AuditEntry, ScheduledTask
from scheduler_app.services.audit import CLI, Origin, audit_record
from tests.factories import make_task, make_user

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit"


def record(
    task: ScheduledTask,
    action: AuditAction = AuditAction.UPDATE,
    *,
    user: User | None = None,
    source: AuditSource = AuditSource.API,
    **fields: Any,
) -> AuditEntry:
    origin = Origin(
        source=source,
        user=user,
        api_key=fields.pop("api_key", ""),
        reason=fields.pop("reason", ""),
    )
    [entry] = audit_record(origin=origin, action=action, tasks=[task], **fields)
    return entry


def ids(api: APIClient, **query: Any) -> list[int]:
    response = api.get(URL, query)
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_an_entry_has_the_documented_fields(api: APIClient) -> None:
    alice = make_user("alice")
    task = make_task(name="nightly")
    entry = record(
        task,
        AuditAction.PAUSE,
        user=alice,
        api_key="ci",
        reason="deploy freeze",
        changes={"status": ["active", "paused"]},
        run_id=7,
    )

    [row] = api.get(URL).json()["results"]

    assert row == {
        "id": entry.pk,
        "at": row["at"],
        "task": task.pk,
        "task_name": "nightly",
        "actor": "alice",
        "api_key": "ci",
        "source": "api",
        "action": "pause",
        "changes": {"status": ["active", "paused"]},
        "reason": "deploy freeze",
        "run_id": 7,
    }
    assert dt.datetime.fromisoformat(row["at"]) == entry.at


def test_a_deleted_task_s_entry_keeps_its_name_and_loses_its_id(
    api: APIClient,
) -> None:
    task = make_task(name="gone")
    audit_record(origin=CLI, action=AuditAction.DELETE, tasks=[task])
    ScheduledTask.objects.filter(pk=task.pk).delete()

    [row] = api.get(URL).json()["results"]

    assert (row["task"], row["task_name"], row["actor"]) == (None, "gone", "")
    assert ids(api, task="gone") == [row["id"]]


def test_reading_the_trail_needs_view_auditentry(
    client_with: Callable[..., APIClient], anonymous: APIClient
) -> None:
    record(make_task(), AuditAction.PAUSE)
    task_viewer = client_with("view_scheduledtask", "view_taskexecution")
    auditor = client_with(VIEW_AUDIT.split(".", 1)[1])

    refused = task_viewer.get(URL)
    allowed = auditor.get(URL)

    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert allowed.status_code == 200
    assert len(allowed.json()["results"]) == 1
    assert anonymous.get(URL).status_code == 401


def test_the_trail_is_read_only(api: APIClient) -> None:
    assert api.post(URL, {}, format="json").status_code == 405
    assert api.delete(URL).status_code == 405


def test_each_filter_keeps_its_entries(api: APIClient) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    one, two = make_task(name="one"), make_task(name="two")
    old = record(
        one,
        AuditAction.PAUSE,
        user=alice,
        source=AuditSource.ADMIN,
        at=timezone.now() - dt.timedelta(days=3),
    )
    by_bob = record(two, AuditAction.DISABLE, user=bob)
    by_cli = record(two, AuditAction.RUN_NOW, source=AuditSource.CLI)

    assert ids(api) == [by_cli.pk, by_bob.pk, old.pk]  # newest first
    assert ids(api, task=one.pk) == [old.pk]
    assert ids(api, task="two") == [by_cli.pk, by_bob.pk]
    assert ids(api, actor="alice") == [old.pk]
    assert ids(api, actor="nobody") == []
    assert ids(api, action="disable") == [by_bob.pk]
    assert ids(api, source="cli") == [by_cli.pk]
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert ids(api, since=since) == [by_cli.pk, by_bob.pk]
    assert ids(api, task="two", action="run_now", source="cli") == [by_cli.pk]


def test_a_numeric_task_is_an_id_when_such_a_task_exists_else_a_name(
    api: APIClient,
) -> None:
    by_id = make_task(name="first")
    named = make_task(name="424242")
    first = record(by_id)
    second = record(named)

    assert ids(api, task=by_id.pk) == [first.pk]
    assert ids(api, task="424242") == [second.pk]
    assert ids(api, task="99999999999999999999") == []  # beyond any id: a name


def test_a_renamed_task_is_found_by_its_new_name_with_its_old_entries(
    api: APIClient,
) -> None:
    task = make_task(name="before")
    old = record(task)
    ScheduledTask.objects.filter(pk=task.pk).update(name="after")
    task.refresh_from_db()
    new = record(task)

    assert ids(api, task="after") == [new.pk, old.pk]
    assert ids(api, task="before") == [old.pk]


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("since", "yesterday"),
        ("since", "2025-13-01T00:00:00Z"),
        ("since", "0001-01-01T00:00:00+15:00"),
        ("action", "explode"),
        ("source", "mars"),
        ("task", "a\x00b"),
        ("actor", "a\x00b"),
        ("page_size", "0"),
        ("page", "2"),
        ("cursor", "not-a-cursor"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(
    api: APIClient, parameter: str, value: str
) -> None:
    response = api.get(URL, {parameter: value})

    assert response.status_code == (404 if parameter == "cursor" else 400)
    if parameter != "cursor":
        assert response.json()["field"] == parameter


def test_pages_follow_the_cursor_and_never_count(api: APIClient) -> None:
    task = make_task()
    entries = [record(task, AuditAction.RUN_NOW) for _ in range(5)]

    first = api.get(URL, {"page_size": 2}).json()
    seen = [row["id"] for row in first["results"]]
    link = first["next"]
    while link:
        page = api.get(link).json()
        seen += [row["id"] for row in page["results"]]
        link = page["next"]

    assert "count" not in first
    assert seen == [entry.pk for entry in reversed(entries)]


def test_the_list_s_queries_do_not_grow_with_entries(api: APIClient) -> None:
    task = make_task()
    record(task)
    api.get(URL)  # the key's first use is written once (last_used_at)
    with CaptureQueriesContext(connection) as few:
        api.get(URL)
    for _ in range(20):
        record(make_task(), reason="r", changes={"description": ["a", "b"]})
    with CaptureQueriesContext(connection) as many:
        response = api.get(URL)

    assert len(response.json()["results"]) == 21
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_schema_describes_the_endpoint_and_its_filters(api: APIClient) -> None:
    schema = api.get("/api/v1/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/audit/"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"task", "actor", "action", "source", "since", "cursor"} <= names
    entry = schema["components"]["schemas"]["AuditEntry"]["properties"]
    assert set(entry) == {
        "id",
        "at",
        "task",
        "task_name",
        "actor",
        "api_key",
        "source",
        "action",
        "changes",
        "reason",
        "run_id",
    }
    assert entry["task"]["nullable"] is True


def test_the_api_root_links_the_trail(api: APIClient) -> None:
    assert api.get("/api/v1/").json()["audit"] == "http://testserver/api/v1/audit"
