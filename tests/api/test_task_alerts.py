"""The tasks API's health and alert settings, the health filter and the health counts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler_app.choices import HealthState
from scheduler_app.models import (
    Alert,
    AlertChannel,
    AlertDelivery,
    ScheduledTask,
    SchedulerInstance,
)
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks"
STATUS = "/api/v1/scheduler/status"
VALID = {
    "name": "nightly_sync",
    "task_type": "cron",
    "cron_expression": "0 2 * * *",
    "handler_path": "scripts:data_sync",
    "handler_kwargs": {"days": "7"},
}
ZERO_HEALTH = dict.fromkeys(HealthState.values, 0)


def task_url(task: ScheduledTask) -> str:
    return "%s/%s" % (TASKS, task.pk)


def channel(name: str, **fields: Any) -> AlertChannel:
    return AlertChannel.objects.create(
        name=name, kind="email", target="%s@example.com" % name, **fields
    )


def field_errors(response: Any) -> tuple[str, dict[str, list[str]]]:
    assert response.status_code == 400, response.content
    body = response.json()
    return body["field"], body["errors"]


def test_a_task_is_created_with_thresholds_and_channels_and_reads_its_health(
    api: APIClient,
) -> None:
    ops, mail = channel("ops"), channel("mail")

    response = api.post(
        TASKS,
        {
            **VALID,
            "failure_threshold": 3,
            "recovery_threshold": 2,
            "alert_grace_seconds": 300,
            "max_run_seconds": 600,
            "alert_channels": [mail.pk, ops.pk],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["health"] == "new" and body["health_since"] is None
    assert body["failure_threshold"] == 3 and body["max_run_seconds"] == 600
    assert sorted(body["alert_channels"]) == sorted([ops.pk, mail.pk])
    task = ScheduledTask.objects.get(name="nightly_sync")
    assert set(task.alert_channels.all()) == {ops, mail}


def test_blank_thresholds_are_null_the_projects_default(api: APIClient) -> None:
    response = api.post(TASKS, {**VALID, "failure_threshold": None}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["failure_threshold"] is None and body["alert_channels"] == []


def test_changing_the_channels_bumps_the_etag_and_the_same_channels_keep_it(
    api: APIClient,
) -> None:
    ops, mail = channel("ops"), channel("mail")
    task = make_task()
    etag = api.get(task_url(task))["ETag"]

    changed = api.patch(
        task_url(task),
        {"alert_channels": [ops.pk, mail.pk]},
        format="json",
        HTTP_IF_MATCH=etag,
    )
    assert changed.status_code == 200, changed.content
    assert changed["ETag"] != etag
    again = api.patch(
        task_url(task), {"alert_channels": [mail.pk, ops.pk]}, format="json"
    )
    assert again["ETag"] == changed["ETag"]
    stale = api.patch(
        task_url(task), {"alert_channels": []}, format="json", HTTP_IF_MATCH=etag
    )
    assert stale.status_code == 412
    assert set(task.alert_channels.all()) == {ops, mail}

    cleared = api.patch(task_url(task), {"alert_channels": []}, format="json")
    assert cleared.json()["alert_channels"] == []
    assert cleared["ETag"] != changed["ETag"]


def test_an_unknown_channel_is_a_400_naming_alert_channels(api: APIClient) -> None:
    ops = channel("ops")

    field, errors = field_errors(
        api.post(TASKS, {**VALID, "alert_channels": [ops.pk, 9999]}, format="json")
    )

    assert field == "alert_channels"
    assert "no channel 9999" in errors["alert_channels"][0]
    assert not ScheduledTask.objects.filter(name="nightly_sync").exists()


def test_a_zero_threshold_is_a_400_naming_it(api: APIClient) -> None:
    task = make_task()

    field, errors = field_errors(
        api.patch(task_url(task), {"recovery_threshold": 0}, format="json")
    )

    assert field == "recovery_threshold"
    assert errors["recovery_threshold"][0].startswith(
        "Recovery threshold: enter a whole number from 1"
    )


def test_health_is_read_only(api: APIClient) -> None:
    task = make_task(health="failing")

    response = api.patch(task_url(task), {"health": "up"}, format="json")

    assert response.status_code == 200
    task.refresh_from_db()
    assert task.health == "failing"


def test_the_list_filters_and_sorts_by_health(api: APIClient) -> None:
    ScheduledTask.objects.all().delete()
    make_task(name="b", health="up")
    make_task(name="a", health="failing")
    make_task(name="c", health="late")

    def names(**query: str) -> list[str]:
        response = api.get(TASKS, query)
        assert response.status_code == 200, response.content
        return [row["name"] for row in response.json()["results"]]

    assert names(health="failing") == ["a"]
    assert names(ordering="health") == ["a", "c", "b"]
    assert names(ordering="-health") == ["b", "c", "a"]
    assert field_errors(api.get(TASKS, {"health": "sick"}))[0] == "health"


def test_scheduler_status_counts_tasks_by_health_and_the_backlog(
    api: APIClient,
) -> None:
    ScheduledTask.objects.all().delete()
    now = timezone.now()
    task = make_task(health="failing")
    make_task(health="up")
    make_task(health="up", status="paused")
    make_execution(task)  # pending, its time has come
    make_execution(
        task, trigger_type="scheduled", scheduled_for=now + dt.timedelta(minutes=5)
    )  # staged ahead
    make_execution(task, run_after=now + dt.timedelta(minutes=5))  # a retry waiting

    body = api.get(STATUS).json()

    assert body["health"] == {**ZERO_HEALTH, "failing": 1, "up": 2}
    assert body["task_counts"]["paused"] == 1 and body["task_count"] == 3
    assert body["execution_counts"]["pending"] == 3
    assert body["pending_backlog"] == 1


def test_health_endpoint_counts_tasks_by_health_with_the_backlog(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    ScheduledTask.objects.all().delete()
    SchedulerInstance.objects.create(
        instance_id="lead", hostname="h", pid=1, is_leader=True
    )
    task = make_task(health="missed")
    make_execution(task)

    with django_assert_max_num_queries(6):
        body = client.get("/health/").json()

    assert body["tasks"] == {"health": {**ZERO_HEALTH, "missed": 1}}
    assert body["pending_backlog"] == 1
    assert body["executions"] == {"pending": 1, "running": 0}
    assert "heartbeat_age_seconds" in body["scheduler"]


# GET /api/v1/alerts/

ALERTS = "/api/v1/alerts/"


def alert_with_deliveries(task: ScheduledTask | None = None, **fields: Any) -> Alert:
    hook = AlertChannel.objects.create(
        name="hook-%d" % AlertChannel.objects.count(),
        kind="slack",
        target="https://hooks.slack.com/services/T0/B0/secret-token",
    )
    alert = Alert.objects.create(
        kind=fields.pop("kind", "failing"),
        task=task,
        task_name=task.name if task else "",
        message="it broke",
        **fields,
    )
    AlertDelivery.objects.create(
        alert=alert,
        channel=hook,
        channel_kind="slack",
        target=hook.target,
        status="failed",
        attempts=12,
        last_error="HTTP 404",
    )
    return alert


def test_alerts_list_with_their_deliveries_without_the_targets(
    client_with: Any,
) -> None:
    task = make_task(name="nightly")
    alert = alert_with_deliveries(task)
    reader = client_with("view_alert")

    response = reader.get(ALERTS)

    assert response.status_code == 200, response.content
    [row] = response.json()["results"]
    assert (row["id"], row["kind"], row["task"], row["task_name"]) == (
        alert.pk,
        "failing",
        task.pk,
        "nightly",
    )
    [delivery] = row["deliveries"]
    assert delivery["status"] == "failed" and delivery["last_error"] == "HTTP 404"
    assert delivery["channel_name"].startswith("hook-")
    assert "secret-token" not in response.content.decode()
    assert reader.get("%s%d/" % (ALERTS, alert.pk)).json()["id"] == alert.pk


def test_alerts_filter_by_kind_and_task(api: APIClient) -> None:
    task = make_task()
    alert_with_deliveries(task)
    alert_with_deliveries(None, kind="test")

    def kinds(**query: Any) -> list[str]:
        response = api.get(ALERTS, query)
        assert response.status_code == 200, response.content
        return [row["kind"] for row in response.json()["results"]]

    assert sorted(kinds()) == ["failing", "test"]
    assert kinds(kind="test") == ["test"]
    assert kinds(task=task.pk) == ["failing"]
    assert field_errors(api.get(ALERTS, {"kind": "gossip"}))[0] == "kind"


def test_alerts_need_the_view_alert_permission(client_with: Any) -> None:
    alert_with_deliveries()

    assert client_with("view_scheduledtask").get(ALERTS).status_code == 403


def test_the_alerts_list_costs_the_same_queries_for_1_and_10_alerts(
    api: APIClient, django_assert_max_num_queries: Any
) -> None:
    for _index in range(10):
        alert_with_deliveries()
    api.get(ALERTS)

    with django_assert_max_num_queries(8):
        response = api.get(ALERTS)

    assert response.json()["count"] == 10
