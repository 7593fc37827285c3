"""Prepared polls give what their querysets give, whatever the time and limit."""

from __future__ import annotations

import datetime as dt

import pytest

from scheduler_app.db.prepared import PreparedQuery
from scheduler_app.engine.loop import _startable_ids
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import task_create, task_pause, tasks_version

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
Status, Trigger = TaskExecution.Status, TaskExecution.TriggerType


def test_startable_ids_follow_the_time_and_the_limit() -> None:
    task = ScheduledTask.objects.create(
        name="t", task_type="manual", handler_path="scripts:example_task"
    )
    for seconds, status, trigger in [
        (None, Status.PENDING, Trigger.MANUAL),
        (-5, Status.PENDING, Trigger.RETRY),
        (5, Status.PENDING, Trigger.RETRY),
        (10, Status.PENDING, Trigger.SCHEDULED),
        (None, Status.PENDING, Trigger.CLI),
        (None, Status.RUNNING, Trigger.MANUAL),
        (-1, Status.PENDING, Trigger.SCHEDULED),
    ]:
        TaskExecution.objects.create(
            task=task,
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
            assert _startable_ids(now, limit=limit) == expected, (seconds, limit)
    assert len(_startable_ids(T0 + dt.timedelta(seconds=60), limit=512)) == 5


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


def test_a_query_on_the_time_must_be_given_the_time() -> None:
    query = PreparedQuery(
        TaskExecution,
        lambda now, limit: TaskExecution.objects.startable(now=now).values_list(
            "pk", flat=True
        ),
    )
    with pytest.raises(TypeError):
        query()
