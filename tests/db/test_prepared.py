"""PreparedQuery: a queryset compiled once (its polls are tested in test_polls)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db.models import QuerySet

from scheduler_app.db.prepared import PreparedQuery
from scheduler_app.models import TaskExecution

pytestmark = pytest.mark.django_db


def test_a_query_on_the_time_must_be_given_the_time() -> None:
    query = PreparedQuery(
        TaskExecution,
        lambda now, limit: TaskExecution.objects.startable(now=now).values_list(
            "pk", flat=True
        ),
    )
    with pytest.raises(TypeError):
        query()


def test_the_queryset_is_built_once_per_limit() -> None:
    built: list[int | None] = []

    def build(now: dt.datetime, limit: int | None) -> QuerySet[Any, Any]:
        built.append(limit)
        return TaskExecution.objects.startable(now=now).values_list("pk", flat=True)[
            :limit
        ]

    query = PreparedQuery(TaskExecution, build)
    now = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
    for seconds in range(3):
        for limit in (1, 8):
            assert query(now + dt.timedelta(seconds=seconds), limit=limit) == []

    assert built == [1, 8]
