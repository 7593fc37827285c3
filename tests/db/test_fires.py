"""INSERT_FIRES: fires recorded pending once each, whatever the batch, on both databases."""

from __future__ import annotations

import datetime as dt

import pytest

from scheduler_app.db import fires
from scheduler_app.db.fires import insert_fires
from scheduler_app.models import ScheduledTask, TaskExecution
from tests.factories import make_task

pytestmark = pytest.mark.django_db

Status, Trigger = TaskExecution.Status, TaskExecution.TriggerType
T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def fire(task: ScheduledTask, seconds: int, *, ahead: bool = False) -> TaskExecution:
    at = T0 + dt.timedelta(seconds=seconds)
    return TaskExecution(
        task=task,
        status=Status.PENDING,
        trigger_type=Trigger.SCHEDULED,
        scheduled_for=at,
        run_after=at if ahead else None,
        created_at=T0,
    )


def test_fires_are_inserted_with_their_values_and_get_their_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fires, "FIRES_PER_INSERT", 2)  # several statements
    first, second = make_task(), make_task()
    rows = [fire(first, n, ahead=n > 1) for n in range(3)] + [fire(second, 0)]

    insert_fires(rows=rows)

    assert all(row.pk is not None and not row._state.adding for row in rows)
    stored = TaskExecution.objects.in_bulk([row.pk for row in rows])
    assert [
        (
            stored[row.pk].task_id,
            stored[row.pk].scheduled_for,
            stored[row.pk].run_after,
            stored[row.pk].status,
            stored[row.pk].trigger_type,
            stored[row.pk].created_at,
            stored[row.pk].kwargs_overrides,
        )
        for row in rows
    ] == [
        (row.task_id, row.scheduled_for, row.run_after, "pending", "scheduled", T0, {})
        for row in rows
    ]


def test_a_fire_recorded_already_is_left_out_without_an_id() -> None:
    task = make_task()
    already = fire(task, 0)
    insert_fires(rows=[already])

    again, new = fire(task, 0), fire(task, 1)
    insert_fires(rows=[again, new])

    assert again.pk is None
    assert new.pk is not None
    assert TaskExecution.objects.filter(task=task).count() == 2
