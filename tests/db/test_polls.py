"""The scheduler's polls give what their querysets give, whatever the time and limit."""

from __future__ import annotations

import datetime as dt

import pytest
from pytest_django import DjangoAssertNumQueries

from scheduler_app.db.polls import startable_ids, tasks_version_values
from scheduler_app.models import ScheduledTask, SchedulerState, TaskExecution
from scheduler_app.services import task_create, task_pause, tasks_version
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
Status, Trigger = TaskExecution.Status, TaskExecution.TriggerType


def teststartable_ids_follow_the_time_and_the_limit() -> None:
    task = make_task(name="t", task_type="manual", interval_seconds=None)
    for seconds, status, trigger in [
        (None, Status.PENDING, Trigger.MANUAL),
        (-5, Status.PENDING, Trigger.RETRY),
        (5, Status.PENDING, Trigger.RETRY),
        (10, Status.PENDING, Trigger.SCHEDULED),
        (None, Status.PENDING, Trigger.CLI),
        (None, Status.RUNNING, Trigger.MANUAL),
        (-1, Status.PENDING, Trigger.SCHEDULED),
    ]:
        make_execution(
            task,
            status=status,
            trigger_type=trigger,
            run_after=None if seconds is None else T0 + dt.timedelta(seconds=seconds),
        )

    for seconds in (-10, 0, 5, 7, 60):
        now = T0 + dt.timedelta(seconds=seconds)
        for limit in (1, 2, 512):
            expected = list(
                TaskExecution.objects.startable(now=now).values_list("pk", flat=True)[
                    :limit
                ]
            )
            assert startable_ids(now, limit=limit) == expected, (seconds, limit)
    assert len(startable_ids(T0 + dt.timedelta(seconds=60), limit=512)) == 5


def test_the_tasks_version_moves_with_every_change() -> None:
    before = tasks_version()
    task = task_create(
        task=ScheduledTask(
            name="v", task_type="manual", handler_path="scripts:example_task"
        )
    )
    created = tasks_version()
    task_pause(task=task)

    assert before < created < tasks_version()


def test_the_stored_tasks_version_is_read_in_one_query(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    SchedulerState.objects.filter(key=SchedulerState.TASKS_VERSION).delete()
    assert tasks_version_values() == []

    SchedulerState.objects.create(key="declared:other", value=7)
    SchedulerState.objects.create(key=SchedulerState.TASKS_VERSION, value=1 << 40)
    with django_assert_num_queries(1):
        assert tasks_version_values() == [1 << 40]
