"""The timeline's edges, from an outside review: interval tasks re-counted by a save,
jittered intervals, status walked back through the audit trail, cell links that must
list every run of the cell (retries, missed records), who sees run ids, bad query
strings, SQLite's sub-second slot edges, the 30-day axis across a DST change, and a
jitter of 68 years."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from scheduler_app.admin.timeline import Painter
from scheduler_app.choices import AuditAction
from scheduler_app.models import ScheduledTask
from scheduler_app.services.timeline import (
    SPANS_BY_KEY,
    CellKind,
    timeline,
    timeline_grid,
)
from tests.admin.helpers import staff_user
from tests.factories import make_execution, make_task
from tests.services.test_timeline import (
    DAY,
    NOW,
    WEEK,
    audit,
    cells_of,
    cron_task,
    fire,
)

pytestmark = pytest.mark.django_db
H = dt.timedelta(hours=1)


def interval_task(created, next_run, **fields):
    task = make_task(
        task_type=ScheduledTask.TaskType.INTERVAL,
        interval_seconds=3600,
        timezone="UTC",
        next_run_at=next_run,
        **fields,
    )
    ScheduledTask.objects.filter(pk=task.pk).update(created_at=created)
    task.refresh_from_db()
    return task


def missed_kinds(drawn, task):
    return [c for c in cells_of(drawn, task) if c[0] == CellKind.MISSED]


def test_an_interval_counted_afresh_by_an_edit_misses_nothing_before_it():
    # Hourly interval, created 10:20 the day before: fires at :20 each hour.
    created = dt.datetime(2026, 12, 3, 16, 20, tzinfo=dt.UTC)
    edit_at = dt.datetime(2026, 12, 4, 11, 50, tzinfo=dt.UTC)
    # An edit of a non-schedule field (or a resume) re-anchors: next = edit + 1h.
    task = interval_task(created, edit_at + H)
    t = created
    while t < edit_at:
        fire(task, t)
        t += H
    audit(task, AuditAction.UPDATE, edit_at, description=["", "x"])
    drawn = timeline([task], span=DAY, now=NOW)
    assert missed_kinds(drawn, task) == []


def test_an_interval_counted_afresh_by_a_resume_misses_nothing_before_it():
    created = dt.datetime(2026, 12, 3, 16, 20, tzinfo=dt.UTC)
    pause_at = dt.datetime(2026, 12, 4, 9, 30, tzinfo=dt.UTC)
    resume_at = dt.datetime(2026, 12, 4, 10, 50, tzinfo=dt.UTC)
    task = interval_task(created, resume_at + H)
    t = created
    while t < pause_at:
        fire(task, t)
        t += H
    audit(task, AuditAction.PAUSE, pause_at, status=["active", "paused"])
    audit(task, AuditAction.RESUME, resume_at, status=["paused", "active"])
    drawn = timeline([task], span=DAY, now=NOW)
    assert missed_kinds(drawn, task) == []


def test_a_jittered_interval_whose_fires_drift_misses_nothing():
    # APScheduler's IntervalTrigger adds jitter to the previous (jittered) fire:
    # the phase walks forward; here 300 s each fire.
    created = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    t = created
    times = []
    while t < NOW - dt.timedelta(minutes=20):
        times.append(t)
        t += dt.timedelta(seconds=3900)
    task = interval_task(created, t, jitter_seconds=600)
    for when in times:
        fire(task, when)
    drawn = timeline([task], span=DAY, now=NOW)
    assert missed_kinds(drawn, task) == []


def test_paused_then_disabled_then_enabled_misses_nothing_while_paused():
    created = NOW - dt.timedelta(hours=20)
    task = cron_task("0 * * * *", created=created)
    pause = NOW - dt.timedelta(hours=10)
    disable = NOW - dt.timedelta(hours=6)
    enable = NOW - dt.timedelta(minutes=30)
    t = created.replace(minute=0, second=0, microsecond=0) + H
    while t < NOW:
        if not (pause <= t < enable):
            fire(task, t)
        t += H
    audit(task, AuditAction.PAUSE, pause, status=["active", "paused"])
    audit(task, AuditAction.DISABLE, disable, status=["paused", "disabled"])
    audit(task, AuditAction.ENABLE, enable, status=["disabled", "active"])
    drawn = timeline([task], span=DAY, now=NOW)
    assert missed_kinds(drawn, task) == []


def _cell_link_ids(client, task, drawn, kind):
    [row] = drawn.rows
    painter = Painter(drawn)
    [cell] = [c for c in row.cells if c.kind == kind and c.runs]
    url = painter.url(cell, task).replace("&amp;", "&")
    resp = client.get(url)
    assert resp.status_code == 200
    ids = {o.pk for o in resp.context["cl"].result_list}
    return cell, ids


def test_a_cell_s_link_lists_a_missed_record_created_after_the_cell(admin_client):
    # Every-10-min cron; 1-hour slots. Scheduler down 10:50..11:30: the missed
    # row stands at 10:50 but is created 11:30.
    now = timezone.now()
    grid, now_slot = timeline_grid(WEEK, now=now)
    base = grid.slot_start(now_slot - 5)
    task = cron_task("*/10 * * * *", created=base - dt.timedelta(minutes=1))
    for minutes in (0, 10, 20, 30, 40):
        fire(task, base + dt.timedelta(minutes=minutes))
    missed = make_execution(
        task,
        status="missed",
        trigger_type="scheduled",
        scheduled_for=base + dt.timedelta(minutes=50),
        created_at=base + dt.timedelta(minutes=90),
    )
    for m in range(90, 60 * 5, 10):
        fire(task, base + dt.timedelta(minutes=m))
    drawn = timeline([task], span=WEEK, now=now)
    cell, ids = _cell_link_ids(admin_client, task, drawn, CellKind.MISSED)
    assert cell.runs == 6 and cell.first == now_slot - 5
    assert missed.pk in ids


def test_a_cell_s_link_lists_the_retry_of_its_failure(admin_client):
    now = timezone.now()
    grid, now_slot = timeline_grid(DAY, now=now)
    task = cron_task("0 0 1 1 *", created=now - dt.timedelta(days=2))  # rarely fires
    at = grid.slot_start(now_slot - 8) + dt.timedelta(minutes=14)
    first = fire(task, at, "failed")
    retry = make_execution(
        task,
        status="success",
        trigger_type="retry",
        scheduled_for=at,
        created_at=at + dt.timedelta(minutes=2),
        attempt=2,
    )
    drawn = timeline([task], span=DAY, now=now)
    [row] = drawn.rows
    [cell] = row.cells
    assert cell.runs == 2
    url = (
        Painter(drawn)
        .url(cell, task)
        .replace("&amp;", "&")
        .replace("&status=failed", "")
    )
    ids = {o.pk for o in admin_client.get(url).context["cl"].result_list}
    assert ids == {first.pk, retry.pk}


def test_a_reader_who_may_not_view_runs_sees_no_run_ids(client):
    user = staff_user("view_scheduledtask")
    client.force_login(user)
    now = timezone.now()
    task = cron_task("0 0 1 1 *", created=now - dt.timedelta(days=2))
    run = fire(task, now - dt.timedelta(hours=2), "failed")
    resp = client.get(reverse("admin:scheduler_app_scheduledtask_timeline"))
    assert resp.status_code == 200
    assert (
        client.get(reverse("admin:scheduler_app_taskexecution_changelist")).status_code
        == 403
    )
    assert ("Run #%d" % run.pk) not in resp.content.decode()


def test_a_description_edit_counts_an_interval_afresh():
    from scheduler_app.services.tasks import task_create, task_update

    t0 = dt.datetime(2026, 12, 3, 16, 20, tzinfo=dt.UTC)
    task = task_create(
        task=ScheduledTask(
            name="iv",
            task_type="interval",
            interval_seconds=3600,
            handler_path="scripts:example_task",
            timezone="UTC",
        ),
        now=t0,
    )
    assert task.next_run_at == t0 + H
    task = task_update(
        task=task, changes={"description": "x"}, now=t0 + dt.timedelta(minutes=30)
    )
    # phase moved from :20 to :50
    assert task.next_run_at == t0 + H + dt.timedelta(minutes=30)


@pytest.mark.parametrize(
    "query",
    [
        "fired_gte=0001-01-01T00:00",
        "fired_gte=0001-01-01T00:30%2B01:00",
        "fired_lt=0001-01-01T00:00",
        "fired_gte=9999-12-31T23:59:59-23:00",
        "fired_lt=9999-12-31T23:59",
        "fired_gte=2026-12-04T10:00%00",
        "fired_gte=2026-12-04T10:00&fired_gte=x",
        "fired_gte=2026-02-30T10:00",
        "fired_gte=2026-12-04T25:00",
        "fired_gte=2026-03-29T02:30",
    ],
)
def test_the_fire_time_filter_answers_bad_values_without_an_error(
    admin_client, query, settings
):
    settings.TIME_ZONE = "Europe/Berlin"
    make_execution(make_task())
    resp = admin_client.get(
        reverse("admin:scheduler_app_taskexecution_changelist") + "?" + query
    )
    assert resp.status_code in (200, 302), resp.status_code


@pytest.mark.parametrize(
    "query",
    [
        "p=%00",
        "p=99999999999999999999",
        "p=-1",
        "span=%00",
        "health=%00",
        "status=%00",
        "handler=%00",
        "span=30d&p=2",
        "handler=" + "x" * 10000,
    ],
)
def test_the_timeline_answers_bad_values_without_an_error(admin_client, query):
    make_task()
    resp = admin_client.get(
        reverse("admin:scheduler_app_scheduledtask_timeline") + "?" + query
    )
    assert resp.status_code == 200


def test_the_fire_time_filter_takes_an_offset_postgresql_refuses(admin_client):
    make_execution(make_task())
    resp = admin_client.get(
        reverse("admin:scheduler_app_taskexecution_changelist")
        + "?fired_gte=2026-12-04T10:00-20:00"
    )
    assert resp.status_code in (200, 302)


def test_a_run_a_microsecond_before_a_slot_s_end_is_counted_in_it():
    from scheduler_app.db.timeline import runs_by_slot
    from scheduler_app.schedules.buckets import Grid

    task = make_task(task_type="manual", interval_seconds=None)
    start = dt.datetime(2026, 12, 4, 0, 0, tzinfo=dt.UTC)
    grid = Grid(start, 900, 96)
    moments = [
        start,
        start + dt.timedelta(seconds=899, microseconds=999999),
        start + dt.timedelta(seconds=900),
        start + dt.timedelta(seconds=1799, microseconds=999_999),
        start + dt.timedelta(hours=5, microseconds=1),
    ]
    for m in moments:
        make_execution(task, status="success", scheduled_for=m, created_at=m)
    rows = runs_by_slot(
        task_ids=[task.pk], start=start, end=start + dt.timedelta(days=1), step=900
    )
    got = {slot: sum(counts) for _, slot, _, _, counts in rows}
    want: dict[int, int] = {}
    for m in moments:
        want[grid.slot_of(m)] = want.get(grid.slot_of(m), 0) + 1
    assert got == want


def test_the_30_day_axis_labels_the_days_before_a_dst_change():
    from scheduler_app.admin.timeline import axis

    now = dt.datetime(2026, 11, 10, 12, 0, tzinfo=dt.UTC)  # DST ended 2026-10-25
    with timezone.override("Europe/Berlin"):
        drawn = timeline([], span=SPANS_BY_KEY["30d"], now=now)
        html = str(axis(drawn))
    cols = [int(c) for c in re.findall(r"grid-column:(\d+)", html)]
    change_slot = drawn.grid.slot_of(dt.datetime(2026, 10, 25, 1, 0, tzinfo=dt.UTC))
    assert any(c - 1 < change_slot for c in cols), cols


def test_a_jitter_longer_than_the_range_expects_no_fire():
    # 2**31 - 1 s (68 years) of jitter: no fire can be told missed, and the page
    # does not look 2.4 million slots ahead for one.
    task = cron_task(
        "0 * * * *", created=NOW - dt.timedelta(days=3), jitter_seconds=2**31 - 1
    )

    assert missed_kinds(timeline([task], span=DAY, now=NOW), task) == []
