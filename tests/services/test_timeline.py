"""The timeline's read model (services/timeline.py): slots, outcomes, missed and upcoming fires."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler_app.admin.timeline import Painter
from scheduler_app.choices import AuditAction, AuditSource
from scheduler_app.models import AuditEntry, ScheduledTask, TaskExecution
from scheduler_app.services.timeline import (
    SPANS_BY_KEY,
    CellKind,
    Timeline,
    timeline,
    timeline_grid,
)
from tests.factories import make_cron_task, make_execution, make_fire, make_task

pytestmark = pytest.mark.django_db

DAY = SPANS_BY_KEY["24h"]  # 15-minute slots
WEEK = SPANS_BY_KEY["7d"]  # one-hour slots
#: A quarter past a slot's start, in any zone with whole-quarter offsets.
NOW = dt.datetime(2026, 12, 4, 12, 7, 30, tzinfo=dt.UTC)


def cron_task(cron: str, *, created: dt.datetime, **fields: Any) -> ScheduledTask:
    return make_cron_task(cron, created=created, **fields)


fire = make_fire


def audit(task: ScheduledTask, action: str, at: dt.datetime, **changes: Any) -> None:
    AuditEntry.objects.create(
        task=task,
        task_name=task.name,
        source=AuditSource.ADMIN,
        action=action,
        at=at,
        changes=changes,
    )


def cells_of(drawn: Timeline, task: ScheduledTask) -> list[tuple[str, int, int]]:
    """(kind, first slot, width) of the task's cells."""
    [row] = [row for row in drawn.rows if row.task.pk == task.pk]
    return [(cell.kind, cell.first, cell.width) for cell in row.cells]


def test_the_grid_ends_a_day_after_the_slot_of_now() -> None:
    grid, now_slot = timeline_grid(WEEK, now=NOW)

    assert grid.step == 3600
    assert grid.count == 7 * 24 + 24
    assert now_slot == 7 * 24 - 1
    assert grid.slot_start(now_slot) <= NOW < grid.slot_start(now_slot + 1)
    assert grid.slot_start(0) == grid.slot_start(now_slot) - dt.timedelta(days=7) + (
        dt.timedelta(hours=1)
    )


def test_each_slot_takes_its_most_telling_outcome_and_neighbours_merge() -> None:
    grid, now_slot = timeline_grid(WEEK, now=NOW)
    task = cron_task("0 * * * *", created=NOW - dt.timedelta(days=30))
    base = grid.slot_start(now_slot - 5)
    fire(task, base)  # one success
    fire(task, base + dt.timedelta(hours=1))  # a success...
    make_execution(
        task, status="failed", created_at=base + dt.timedelta(hours=1, minutes=9)
    )
    fire(task, base + dt.timedelta(hours=2), "skipped")
    fire(task, base + dt.timedelta(hours=3))
    fire(task, base + dt.timedelta(hours=4))
    running = fire(task, base + dt.timedelta(hours=5), "running")

    drawn = timeline([task], span=WEEK, now=NOW)
    row = drawn.rows[0].cells
    past = [
        cell for cell in row if cell.first >= now_slot - 5 and cell.first <= now_slot
    ]

    assert [(cell.kind, cell.first, cell.width) for cell in past] == [
        (CellKind.SUCCESS, now_slot - 5, 1),
        (CellKind.FAILED, now_slot - 4, 1),
        (CellKind.SKIPPED, now_slot - 3, 1),
        (CellKind.SUCCESS, now_slot - 2, 2),
        (CellKind.RUNNING, now_slot, 1),
    ]
    assert past[1].counts == {"success": 1, "failed": 1}
    assert past[1].run_id is None  # two runs: the cell links to the list
    assert past[3].counts == {"success": 2}
    assert past[4].run_id == running.pk


def test_fires_the_schedule_expected_without_a_run_are_missed() -> None:
    grid, now_slot = timeline_grid(DAY, now=NOW)
    hourly = cron_task("0 * * * *", created=NOW - dt.timedelta(days=3))
    start = grid.slot_start(0)
    first_hour = start + dt.timedelta(minutes=(60 - start.minute) % 60)
    ran = {
        first_hour + dt.timedelta(hours=hours)
        for hours in range(24)
        if hours not in (5, 6)
    }
    for at in ran:
        if at < NOW:
            fire(hourly, at)

    drawn = timeline([hourly], span=DAY, now=NOW)
    missed = [cell for cell in drawn.rows[0].cells if cell.kind == CellKind.MISSED]

    assert [(cell.fire_at, cell.width) for cell in missed] == [
        (first_hour + dt.timedelta(hours=5), 1),
        (first_hour + dt.timedelta(hours=6), 1),
    ]
    assert all(cell.runs == 0 for cell in missed)


def test_a_recorded_missed_row_is_a_missed_cell_with_its_run() -> None:
    grid, now_slot = timeline_grid(DAY, now=NOW)
    task = cron_task("*/15 * * * *", created=NOW - dt.timedelta(days=3))
    for slot in range(now_slot + 1):
        at = grid.slot_start(slot)
        if at < NOW - dt.timedelta(minutes=5):
            fire(task, at, "missed" if slot == 10 else "success")

    kinds = cells_of(timeline([task], span=DAY, now=NOW), task)

    assert (CellKind.MISSED, 10, 1) in kinds
    assert (CellKind.SUCCESS, 0, 10) in kinds


def test_nothing_is_missed_before_the_task_existed_nor_within_its_grace() -> None:
    grid, now_slot = timeline_grid(DAY, now=NOW)
    created = grid.slot_start(now_slot - 3) + dt.timedelta(minutes=1)
    task = cron_task("*/15 * * * *", created=created, alert_grace_seconds=600)

    kinds = cells_of(timeline([task], span=DAY, now=NOW), task)

    # Fires at now_slot - 2 and - 1 went by more than 600 s ago; the one at the
    # start of now's slot (7.5 min ago) is within its grace; nothing before.
    assert [kind for kind in kinds if kind[0] == CellKind.MISSED] == [
        (CellKind.MISSED, now_slot - 2, 2)
    ]


def test_nothing_is_missed_while_the_task_was_paused_or_before_its_schedule_changed() -> (
    None
):
    grid, now_slot = timeline_grid(WEEK, now=NOW)
    task = cron_task("0 * * * *", created=NOW - dt.timedelta(days=30))
    paused_at = grid.slot_start(now_slot - 20) + dt.timedelta(minutes=30)
    resumed_at = grid.slot_start(now_slot - 10) + dt.timedelta(minutes=30)
    changed_at = grid.slot_start(now_slot - 40) + dt.timedelta(minutes=30)
    audit(
        task, AuditAction.UPDATE, changed_at, cron_expression=["0 3 * * *", "0 * * * *"]
    )
    audit(task, AuditAction.PAUSE, paused_at)
    audit(task, AuditAction.RESUME, resumed_at)
    # An edit that paused it through the form, and one back, earlier on.
    audit(
        task,
        AuditAction.UPDATE,
        grid.slot_start(now_slot - 30),
        status=["active", "paused"],
    )
    audit(
        task,
        AuditAction.UPDATE,
        grid.slot_start(now_slot - 25),
        status=["paused", "active"],
    )

    missed = [
        (first, width)
        for kind, first, width in cells_of(timeline([task], span=WEEK, now=NOW), task)
        if kind == CellKind.MISSED
    ]

    assert missed == [
        (now_slot - 39, 9),  # from the schedule change to the form's pause
        (now_slot - 25, 6),  # resumed by the form, until the pause (its :00 fire too)
        (now_slot - 9, 10),  # after the resume, now's slot too (7.5 min > 60 s grace)
    ]


def test_a_task_paused_now_misses_nothing_since_its_pause() -> None:
    grid, now_slot = timeline_grid(DAY, now=NOW)
    task = cron_task(
        "*/15 * * * *",
        created=NOW - dt.timedelta(days=3),
        status=ScheduledTask.Status.PAUSED,
    )
    audit(task, AuditAction.PAUSE, grid.slot_start(now_slot - 4))

    kinds = cells_of(timeline([task], span=DAY, now=NOW), task)

    assert kinds == [(CellKind.MISSED, 0, now_slot - 4)]


def test_the_day_ahead_shows_the_upcoming_fires() -> None:
    grid, now_slot = timeline_grid(WEEK, now=NOW)
    first = grid.slot_start(now_slot + 1) + dt.timedelta(hours=2)
    daily = cron_task(
        "0 %d * * *" % first.astimezone(dt.UTC).hour, created=NOW, next_run_at=first
    )
    paused = cron_task(
        "0 * * * *", created=NOW, next_run_at=first, status=ScheduledTask.Status.PAUSED
    )
    manual = make_task(task_type=ScheduledTask.TaskType.MANUAL, interval_seconds=None)

    drawn = timeline([daily, paused, manual], span=WEEK, now=NOW)

    [cell] = drawn.rows[0].cells
    assert (cell.kind, cell.first, cell.width, cell.fire_at) == (
        CellKind.UPCOMING,
        now_slot + 3,
        1,
        first,
    )
    assert drawn.rows[1].cells == []
    assert drawn.rows[2].cells == []


def test_an_interval_s_upcoming_fires_count_from_its_next_run() -> None:
    grid, now_slot = timeline_grid(WEEK, now=NOW)
    next_run = grid.slot_start(now_slot + 1) + dt.timedelta(minutes=10)
    task = make_task(interval_seconds=3 * 3600, next_run_at=next_run)
    ScheduledTask.objects.filter(pk=task.pk).update(created_at=NOW)
    task.refresh_from_db()

    [row] = timeline([task], span=WEEK, now=NOW).rows

    assert [cell.first for cell in row.cells] == list(
        range(now_slot + 1, grid.count, 3)
    )
    assert row.cells[0].fire_at == next_run


def test_staged_fires_ahead_of_now_are_not_past_runs() -> None:
    grid, now_slot = timeline_grid(DAY, now=NOW)
    task = make_task(task_type=ScheduledTask.TaskType.MANUAL, interval_seconds=None)
    make_execution(
        task,
        trigger_type=TaskExecution.TriggerType.SCHEDULED,
        scheduled_for=NOW + dt.timedelta(minutes=3),
        created_at=NOW - dt.timedelta(seconds=5),
    )

    assert timeline([task], span=DAY, now=NOW).rows[0].cells == []


def test_the_queries_do_not_grow_with_the_tasks_or_their_runs() -> None:
    grid, now_slot = timeline_grid(DAY, now=NOW)

    def tasks(count: int) -> list[ScheduledTask]:
        made = []
        for _ in range(count):
            task = cron_task("*/15 * * * *", created=NOW - dt.timedelta(days=2))
            for slot in range(0, now_slot, 3):
                fire(task, grid.slot_start(slot))
            audit(task, AuditAction.PAUSE, grid.slot_start(5))
            made.append(task)
        return made

    few = tasks(2)
    with CaptureQueriesContext(connection) as small:
        timeline(few, span=DAY, now=NOW)
    many = few + tasks(8)
    with CaptureQueriesContext(connection) as large:
        drawn = timeline(many, span=DAY, now=NOW)

    assert len(small.captured_queries) == len(large.captured_queries) == 2
    assert len(drawn.rows) == 10


def test_times_are_slotted_in_the_reader_s_zone() -> None:
    with timezone.override("Asia/Kolkata"):  # UTC+05:30
        grid, _now_slot = timeline_grid(SPANS_BY_KEY["30d"], now=NOW)

    assert (
        timezone.localtime(grid.start, timezone.get_fixed_timezone(330)).hour % 6 == 0
    )
    assert timezone.localtime(grid.start, timezone.get_fixed_timezone(330)).minute == 0


def test_slots_keep_their_length_across_a_dst_change() -> None:
    # Paris springs forward on 2026-03-29 at 02:00: a week over it.
    now = dt.datetime(2026, 4, 1, 10, 30, tzinfo=dt.UTC)
    with timezone.override("Europe/Paris"):
        grid, now_slot = timeline_grid(WEEK, now=now)

    assert grid.slot_start(now_slot) <= now < grid.slot_start(now_slot + 1)
    assert grid.slot_of(now) == now_slot  # a run's time finds its slot
    assert all(
        (grid.slot_start(slot + 1) - grid.slot_start(slot)).total_seconds() == 3600
        and grid.slot_of(grid.slot_start(slot)) == slot
        for slot in range(grid.count)
    )
    assert grid.slot_start(now_slot).minute == 0


def test_a_run_now_in_a_slot_does_not_stand_for_its_missed_fire() -> None:
    grid, now_slot = timeline_grid(WEEK, now=NOW)
    task = cron_task("0 * * * *", created=grid.slot_start(now_slot - 3))
    for back in (3, 2, 0):
        fire(task, grid.slot_start(now_slot - back))
    # No run of the fire an hour ago, only one somebody started by hand.
    manual = make_execution(
        task,
        status="success",
        created_at=grid.slot_start(now_slot - 1) + dt.timedelta(minutes=20),
    )

    [row] = timeline([task], span=WEEK, now=NOW).rows
    [missed] = [cell for cell in row.cells if cell.kind == CellKind.MISSED]

    assert missed.first == now_slot - 1 and missed.run_id == manual.pk
    painter = Painter(timeline([task], span=WEEK, now=NOW))
    assert painter.title(missed).startswith("No run of the fires due here. Run #")
    assert "status=" not in painter.url(missed, task)
