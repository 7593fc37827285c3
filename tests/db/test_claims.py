"""CLAIM_PENDING: pending -> running for a batch, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from scheduler_app.db.claims import claim_pending
from scheduler_app.models import TaskExecution
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

Status = TaskExecution.Status
T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def test_only_pending_executions_are_claimed_and_their_ids_returned() -> None:
    task = make_task()
    pending = [make_execution(task) for _ in range(3)]
    running = make_execution(task, status=Status.RUNNING, instance_id="other")
    done = make_execution(task, status=Status.SUCCESS)

    claimed = claim_pending(
        ids=[e.pk for e in [*pending, running, done]], instance="me:1", now=T0
    )

    assert claimed == {e.pk for e in pending}
    rows = TaskExecution.objects.in_bulk([e.pk for e in [*pending, running, done]])
    assert [(rows[e.pk].status, rows[e.pk].instance_id) for e in pending] == [
        (Status.RUNNING, "me:1")
    ] * 3
    assert [rows[e.pk].started_at for e in pending] == [T0] * 3
    assert (rows[running.pk].status, rows[running.pk].instance_id) == (
        Status.RUNNING,
        "other",
    )
    assert rows[done.pk].status == Status.SUCCESS


def test_a_second_claim_of_the_same_ids_claims_nothing() -> None:
    execution = make_execution()
    assert claim_pending(ids=[execution.pk], instance="a", now=T0) == {execution.pk}

    assert claim_pending(ids=[execution.pk], instance="b", now=T0) == set()
    execution.refresh_from_db()
    assert execution.instance_id == "a"


def test_a_run_claimed_ahead_of_its_time_starts_at_its_time() -> None:
    task = make_task()
    ahead = make_execution(task, run_after=T0 + dt.timedelta(seconds=2))
    due = make_execution(task, run_after=T0 - dt.timedelta(seconds=2))
    now = make_execution(task, run_after=None)

    claim_pending(ids=[ahead.pk, due.pk, now.pk], instance="me", now=T0)

    started = dict(
        TaskExecution.objects.filter(pk__in=[ahead.pk, due.pk, now.pk]).values_list(
            "pk", "started_at"
        )
    )
    assert started == {ahead.pk: T0 + dt.timedelta(seconds=2), due.pk: T0, now.pk: T0}
