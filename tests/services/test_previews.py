"""schedule_preview: the next fire times of a schedule being edited, and DST changes among them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from scheduler_app.exceptions import ScheduleError
from scheduler_app.services import schedule_preview

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.timezone.utc


def test_cron_preview_lists_fire_times_in_the_tasks_zone() -> None:
    now = dt.datetime(2025, 1, 10, 12, 0, tzinfo=UTC)

    preview = schedule_preview(
        task_type="cron",
        cron_expression="0 2 * * *",
        timezone_name="Europe/Paris",
        now=now,
    )

    assert preview.timezone_name == "Europe/Paris"
    assert [moment.isoformat() for moment in preview.fire_times] == [
        "2025-01-11T02:00:00+01:00",
        "2025-01-12T02:00:00+01:00",
        "2025-01-13T02:00:00+01:00",
        "2025-01-14T02:00:00+01:00",
        "2025-01-15T02:00:00+01:00",
    ]
    assert preview.dst_transitions == []


def test_preview_reports_the_dst_change_among_the_fire_times() -> None:
    now = dt.datetime(2025, 3, 28, 12, 0, tzinfo=UTC)

    preview = schedule_preview(
        task_type="cron",
        cron_expression="0 9 * * *",
        timezone_name="Europe/Paris",
        now=now,
    )

    assert [moment.utcoffset() for moment in preview.fire_times] == [
        dt.timedelta(hours=1),
        dt.timedelta(hours=2),
        dt.timedelta(hours=2),
        dt.timedelta(hours=2),
        dt.timedelta(hours=2),
    ]
    (change,) = preview.dst_transitions
    assert change == dt.datetime(2025, 3, 30, 3, 0, tzinfo=PARIS)


def test_interval_preview_counts_from_now() -> None:
    now = dt.datetime(2025, 1, 1, tzinfo=UTC)

    preview = schedule_preview(
        task_type="interval", interval_seconds=600, count=3, now=now
    )

    assert [moment.astimezone(UTC) for moment in preview.fire_times] == [
        now + dt.timedelta(minutes=10),
        now + dt.timedelta(minutes=20),
        now + dt.timedelta(minutes=30),
    ]


def test_a_past_run_date_and_a_manual_task_have_no_fire_times() -> None:
    now = dt.datetime(2025, 1, 1, tzinfo=UTC)

    past = schedule_preview(
        task_type="date", run_date=now - dt.timedelta(days=1), now=now
    )
    manual = schedule_preview(task_type="manual", now=now)

    assert past.fire_times == manual.fire_times == []


def test_an_invalid_schedule_raises_with_its_field() -> None:
    with pytest.raises(ScheduleError) as caught:
        schedule_preview(task_type="cron", cron_expression="0 25 * * *")

    assert caught.value.field == "cron_expression"
