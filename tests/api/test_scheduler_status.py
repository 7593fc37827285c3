"""GET /api/v1/scheduler/status: running or not, the leader, instances, task counts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler_app.models import SchedulerInstance
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

STATUS = "/api/v1/scheduler/status"


def instance(name: str, *, age_seconds: float, **fields: Any) -> SchedulerInstance:
    return SchedulerInstance.objects.create(
        instance_id=name,
        hostname="host",
        pid=1,
        last_heartbeat_at=timezone.now() - dt.timedelta(seconds=age_seconds),
        **fields,
    )


def test_status_shows_alive_instances_the_leader_and_counts(api: APIClient) -> None:
    instance("leader-1", age_seconds=2, is_leader=True)
    instance("standby-1", age_seconds=3)
    instance("dead-1", age_seconds=600, is_leader=True)
    make_task(status="paused")
    make_execution(status="pending")

    response = api.get(STATUS)

    assert response.status_code == 200
    body = response.json()
    assert body["running"] is True
    assert body["leader"] == "leader-1"
    by_id = {row["instance_id"]: row for row in body["instances"]}
    assert by_id["leader-1"]["alive"] is True and by_id["leader-1"]["is_leader"] is True
    assert by_id["dead-1"]["alive"] is False and by_id["dead-1"]["is_leader"] is False
    assert 500 < by_id["dead-1"]["heartbeat_age_seconds"] < 700
    assert body["task_counts"]["paused"] == 1
    assert (
        body["task_counts"]["active"] >= 2
    )  # make_execution's task and cleanup_executions
    assert body["task_count"] == sum(body["task_counts"].values())
    assert body["execution_counts"] == {"pending": 1, "running": 0}


def test_status_says_not_running_when_no_heartbeat_is_fresh(api: APIClient) -> None:
    instance("gone", age_seconds=3600)
    instance("stopped", age_seconds=1, stopped_at=timezone.now())

    body = api.get(STATUS + "/").json()

    assert body["running"] is False and body["leader"] is None


def test_status_needs_the_view_permission(
    nobody: APIClient, anonymous: APIClient, viewer: APIClient
) -> None:
    assert anonymous.get(STATUS).status_code == 401
    assert nobody.get(STATUS).status_code == 403
    assert viewer.get(STATUS).status_code == 200


def test_status_costs_the_same_queries_however_many_tasks(
    viewer: APIClient, django_assert_num_queries: Any
) -> None:
    for _ in range(20):
        make_task()

    viewer.get(STATUS)  # the key's first use of the minute also records it
    # The key with its user, permissions (2), alive ids, instances, workers, two counts.
    with django_assert_num_queries(8):
        viewer.get(STATUS)


def test_status_lists_celery_workers_apart_from_scheduler_instances(
    api: APIClient,
) -> None:
    instance("celery@host:11:aaaaaa", age_seconds=1, kind="worker")
    instance("celery@host:12:bbbbbb", age_seconds=600, kind="worker")

    body = api.get(STATUS).json()

    # Only a scheduler makes the scheduler "running": workers alone fire nothing.
    assert body["running"] is False and body["instances"] == []
    assert body["worker_count"] == 1
    by_id = {row["instance_id"]: row for row in body["workers"]}
    assert by_id["celery@host:11:aaaaaa"]["alive"] is True
    assert by_id["celery@host:12:bbbbbb"]["alive"] is False
    assert {row["kind"] for row in body["workers"]} == {"worker"}


def test_status_counts_only_alive_scheduler_instances_as_running(
    api: APIClient,
) -> None:
    instance("vm:1:cccccc", age_seconds=1, is_leader=True)
    instance("celery@host:11:aaaaaa", age_seconds=1, kind="worker")

    body = api.get(STATUS).json()

    assert body["running"] is True and body["leader"] == "vm:1:cccccc"
    assert [row["kind"] for row in body["instances"]] == ["scheduler"]
    assert body["worker_count"] == 1


def test_status_is_degraded_with_the_reasons_the_instances_heartbeat(
    api: APIClient,
) -> None:
    reason = "Redis at redis://127.0.0.1:6391/0 is unreachable since 2026-03-02 (...)"
    instance("leader-1", age_seconds=1, is_leader=True, degraded_reason=reason)
    instance("gone-1", age_seconds=3600, degraded_reason="old news")

    body = api.get(STATUS).json()

    assert body["running"] is True and body["degraded"] is True
    assert body["degraded_reasons"] == ["leader-1: " + reason]
    by_id = {row["instance_id"]: row for row in body["instances"]}
    assert by_id["leader-1"]["degraded_reason"] == reason


def test_status_is_degraded_when_schedulers_run_and_none_leads(api: APIClient) -> None:
    instance("standby-1", age_seconds=1)

    body = api.get(STATUS).json()

    assert body["running"] is True and body["leader"] is None
    assert body["degraded"] is True
    assert "No scheduler instance holds the leader lease" in body["degraded_reasons"][0]


def test_status_is_not_degraded_while_the_leader_works(api: APIClient) -> None:
    instance("leader-1", age_seconds=1, is_leader=True)

    body = api.get(STATUS).json()

    assert (body["degraded"], body["degraded_reasons"]) == (False, [])
