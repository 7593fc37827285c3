"""RECORD_NEXT_RUNS: the engine's next fire times written in one statement."""

from __future__ import annotations

import datetime as dt

import pytest
from pytest_django import DjangoAssertNumQueries

from scheduler_app.db.next_runs import record_next_runs
from scheduler_app.models import ScheduledTask
from tests.factories import make_task

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def test_next_runs_are_set_and_updated_at_is_left_alone(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    later, cleared, untouched = make_task(), make_task(next_run_at=T0), make_task()
    mine = ScheduledTask.objects.filter(pk__in=[later.pk, cleared.pk, untouched.pk])
    mine.update(updated_at=T0 - dt.timedelta(days=1))

    with django_assert_num_queries(1):
        record_next_runs(
            next_runs={
                later.pk: T0 + dt.timedelta(seconds=5, microseconds=1),
                cleared.pk: None,
            }
        )

    assert dict(mine.values_list("pk", "next_run_at")) == {
        later.pk: T0 + dt.timedelta(seconds=5, microseconds=1),
        cleared.pk: None,
        untouched.pk: None,
    }
    assert set(mine.values_list("updated_at", flat=True)) == {T0 - dt.timedelta(days=1)}


def test_no_next_runs_send_no_statement(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    with django_assert_num_queries(0):
        record_next_runs(next_runs={})
