"""GET /health/: for uptime monitors and probes, without credentials."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from scheduler_app import selectors
from scheduler_app.models import SchedulerInstance
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

HEALTH = "/health/"


def beating(instance_id: str, *, leader: bool = False, **fields: Any) -> None:
    SchedulerInstance.objects.create(
        instance_id=instance_id,
        hostname="web-1",
        pid=7,
        is_leader=leader,
        last_heartbeat_at=timezone.now() - dt.timedelta(seconds=2),
        **fields,
    )


def test_with_no_scheduler_it_is_503_and_says_why(client: Client) -> None:
    response = client.get(HEALTH)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["reasons"] == [
        "No scheduler instance heartbeats: nothing fires or runs."
    ]
    assert body["scheduler"]["running"] is False
    assert body["scheduler"]["heartbeat_age_seconds"] is None


def test_a_heartbeating_leader_is_ok_with_its_backlog_and_needs_no_login(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    beating("web-1:7:lead", leader=True)
    task = make_task()
    make_execution(task)
    make_execution(task, status="running")

    with django_assert_max_num_queries(6):
        response = client.get(HEALTH)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["reasons"] == []
    assert body["scheduler"]["leader"] == "web-1:7:lead"
    assert body["scheduler"]["instances_alive"] == 1
    assert 1.5 <= body["scheduler"]["heartbeat_age_seconds"] < 10
    assert body["executions"] == {"pending": 1, "running": 1}
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_degraded_scheduler_is_200_with_its_reasons(client: Client) -> None:
    beating("web-1:7:lead", leader=False, degraded_reason="Redis is unreachable")

    body = client.get(HEALTH).json()

    assert body["status"] == "degraded"
    assert body["reasons"][0] == "web-1:7:lead: Redis is unreachable"
    assert "No scheduler instance holds the leader lease" in body["reasons"][1]


def test_a_database_that_does_not_answer_is_503(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away(**kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "scheduler_status", away)

    response = client.get(HEALTH)

    assert response.status_code == 503
    assert response.json()["reasons"] == [
        "The database does not answer (OperationalError)."
    ]


def test_only_reads_are_allowed(client: Client) -> None:
    assert client.post(HEALTH).status_code == 405
    assert client.head(HEALTH).status_code == 503
