"""schedule_preview: the next fire times of a schedule being edited, and DST changes among them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from scheduler_app.exceptions import ScheduleError, SchedulerError
from scheduler_app.schedules import Schedule
from scheduler_app.services import schedule_preview
from scheduler_app.services.previews import DST_SCAN_HORIZON

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.UTC


def test_cron_preview_lists_fire_times_in_the_tasks_zone() -> None:
    now = dt.datetime(2025, 1, 10, 12, 0, tzinfo=UTC)

    preview = schedule_preview(
        schedule=Schedule(kind="cron", cron="0 2 * * *", zone="Europe/Paris"), now=now
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
        schedule=Schedule(kind="cron", cron="0 9 * * *", zone="Europe/Paris"), now=now
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
        schedule=Schedule(kind="interval", every_seconds=600), count=3, now=now
    )

    assert [moment.astimezone(UTC) for moment in preview.fire_times] == [
        now + dt.timedelta(minutes=10),
        now + dt.timedelta(minutes=20),
        now + dt.timedelta(minutes=30),
    ]


def test_a_manual_task_has_no_fire_times() -> None:
    now = dt.datetime(2025, 1, 1, tzinfo=UTC)

    assert schedule_preview(schedule=Schedule(kind="manual"), now=now).fire_times == []


def test_a_past_run_date_is_said_to_be_past_not_previewed_as_no_fire() -> None:
    now = dt.datetime(2025, 1, 1, tzinfo=UTC)

    with pytest.raises(SchedulerError) as caught:
        schedule_preview(
            schedule=Schedule(kind="date", run_date=now - dt.timedelta(days=1)),
            now=now,
        )

    assert caught.value.field == "run_date"
    assert "is in the past" in caught.value.message  # in the schedule's zone


def test_an_invalid_schedule_raises_with_its_field() -> None:
    with pytest.raises(ScheduleError) as caught:
        schedule_preview(schedule=Schedule(kind="cron", cron="0 25 * * *"))

    assert caught.value.field == "cron_expression"


def test_the_longest_interval_previews_within_the_dst_horizon() -> None:
    now = dt.datetime(2025, 1, 1, tzinfo=UTC)

    preview = schedule_preview(
        schedule=Schedule(
            kind="interval", every_seconds=2**31 - 1, zone="Europe/Paris"
        ),
        now=now,
    )

    # Five fires 68 years apart, the last in 2365; DST changes are looked for in
    # the first five years only (two a year), not hour by hour for 340 years.
    assert len(preview.fire_times) == 5
    assert preview.fire_times[-1].year == 2365
    assert len(preview.dst_transitions) == 10
    assert preview.dst_transitions[-1] < now + DST_SCAN_HORIZON


@pytest.mark.parametrize("seconds", [2**31, 10**14, 10**30])
def test_an_interval_beyond_its_bound_is_a_message_not_an_overflow(
    seconds: int,
) -> None:
    with pytest.raises(SchedulerError) as caught:
        schedule_preview(schedule=Schedule(kind="interval", every_seconds=seconds))

    assert caught.value.field == "interval_seconds"
    assert "from 0 to 2147483647" in caught.value.message


@pytest.mark.parametrize(
    "run_date",
    [
        dt.datetime(9999, 12, 31, 23, 59, 59),
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        dt.datetime(1, 1, 1),
    ],
)
def test_a_run_date_out_of_range_is_a_message_not_an_overflow(
    run_date: dt.datetime,
) -> None:
    with pytest.raises(ScheduleError) as caught:
        schedule_preview(
            schedule=Schedule(kind="date", run_date=run_date, zone="America/New_York")
        )

    assert caught.value.field == "run_date"
    assert "between 1970 and 9000" in caught.value.message


def test_fire_times_past_year_9999_end_the_schedule() -> None:
    now = dt.datetime(9800, 1, 1, tzinfo=UTC)

    preview = schedule_preview(
        schedule=Schedule(
            kind="interval", every_seconds=2**31 - 1, zone="Pacific/Kiritimati"
        ),
        now=now,
    )

    # 9868, 9936, then 10004: beyond datetime, so the list ends there.
    assert [moment.year for moment in preview.fire_times] == [9868, 9936]


@pytest.mark.parametrize("name", ["x" * 5000, "a\x00b", "../../etc/passwd"])
def test_a_time_zone_that_cannot_be_a_file_name_is_a_message(name: str) -> None:
    with pytest.raises(SchedulerError) as caught:
        schedule_preview(schedule=Schedule(kind="cron", cron="0 2 * * *", zone=name))

    assert caught.value.field == "timezone"
