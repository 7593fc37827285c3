"""LATEST_RUNS: each task's latest executions, for every task in one statement."""

from __future__ import annotations

import datetime as dt

import pytest
from pytest_django import DjangoAssertNumQueries

from scheduler_app.db.recent_runs import latest_runs
from scheduler_app.models import TaskExecution
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def test_each_task_gives_its_latest_runs_and_a_task_without_runs_none(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    busy, few, idle = make_task(), make_task(), make_task()
    for minutes in range(8):
        make_execution(
            busy,
            status=TaskExecution.Status.SUCCESS,
            created_at=T0 - dt.timedelta(minutes=minutes),
            duration_ms=minutes,
        )
    make_execution(few, status=TaskExecution.Status.FAILED, created_at=T0)
    make_execution(few, created_at=T0 - dt.timedelta(minutes=1))

    with django_assert_num_queries(1):
        rows = latest_runs(limit=3)

    mine = {busy.pk, few.pk, idle.pk}
    assert sorted(row for row in rows if row[0] in mine) == sorted(
        [
            (busy.pk, "success", 0),
            (busy.pk, "success", 1),
            (busy.pk, "success", 2),
            (few.pk, "failed", None),
            (few.pk, "pending", None),
        ]
    )
