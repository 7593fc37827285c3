"""The Schedule value: built from a task, validated, as a trigger, fire times, DST."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from scheduler_app.exceptions import ScheduleError
from scheduler_app.models import ScheduledTask
from scheduler_app.schedules import (
    Schedule,
)

from .helpers import NEW_YORK, SAT_1_MARCH_SHANGHAI, SHANGHAI, UTC

NEW_YEAR = datetime(2025, 1, 1, tzinfo=UTC)


# --- the value ---------------------------------------------------------------------


def test_of_reads_the_six_schedule_fields_of_a_task() -> None:
    run_date = datetime(2030, 1, 31, 2, tzinfo=UTC)
    task = ScheduledTask(
        task_type=ScheduledTask.TaskType.INTERVAL,
        cron_expression="0 2 * * *",
        interval_seconds=300,
        run_date=run_date,
        timezone="Europe/Paris",
        jitter_seconds=7,
    )

    assert Schedule.of(task) == Schedule(
        kind="interval",
        cron="0 2 * * *",
        every_seconds=300,
        run_date=run_date,
        zone="Europe/Paris",
        jitter_seconds=7,
    )


def test_of_takes_anything_with_a_tasks_schedule_fields() -> None:
    task = SimpleNamespace(
        task_type="cron",
        cron_expression="@daily",
        interval_seconds=None,
        run_date=None,
        timezone="",
        jitter_seconds=0,
    )

    assert Schedule.of(task) == Schedule("cron", cron="@daily")


def test_a_schedule_is_a_frozen_hashable_value() -> None:
    schedule = Schedule("interval", every_seconds=60)

    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.every_seconds = 120  # type: ignore[misc]
    assert {schedule, Schedule("interval", every_seconds=60)} == {schedule}
    assert schedule != Schedule("interval", every_seconds=61)


def test_building_one_checks_nothing() -> None:
    Schedule("weekly", cron="nonsense", every_seconds=-1, zone="Mars/Base")


def test_tz_is_the_zone_and_blank_means_the_project_zone() -> None:
    assert Schedule("manual", zone="America/New_York").tz == NEW_YORK
    assert Schedule("manual").tz == SHANGHAI  # settings.TIME_ZONE in the tests


def test_tz_of_an_unknown_zone_is_a_schedule_error_on_the_timezone_field() -> None:
    with pytest.raises(ScheduleError) as caught:
        _ = Schedule("manual", zone="Mars/Base").tz

    assert caught.value.field == "timezone"


# --- trigger and fire times --------------------------------------------------------


def test_next_fire_times_of_a_cron_schedule_are_in_its_zone() -> None:
    schedule = Schedule("cron", cron="30 1 * * *", zone="America/New_York")

    times = schedule.next_fire_times(
        after=datetime(2025, 11, 1, 12, tzinfo=NEW_YORK), count=2
    )

    assert [moment.isoformat() for moment in times] == [
        "2025-11-02T01:30:00-04:00",
        "2025-11-03T01:30:00-05:00",
    ]


def test_next_fire_times_of_an_interval_count_from_after_by_default() -> None:
    schedule = Schedule("interval", every_seconds=600, zone="Asia/Shanghai")

    times = schedule.next_fire_times(after=SAT_1_MARCH_SHANGHAI, count=2)

    assert times == [
        SAT_1_MARCH_SHANGHAI + timedelta(minutes=10),
        SAT_1_MARCH_SHANGHAI + timedelta(minutes=20),
    ]


def test_next_fire_times_of_an_interval_count_from_start_at() -> None:
    schedule = Schedule("interval", every_seconds=600, zone="Asia/Shanghai")
    start = SAT_1_MARCH_SHANGHAI - timedelta(minutes=5)

    times = schedule.next_fire_times(
        after=SAT_1_MARCH_SHANGHAI, start_at=start, count=2
    )

    assert times == [start + timedelta(minutes=10), start + timedelta(minutes=20)]


def test_next_fire_times_of_a_date_converts_it_to_the_zone() -> None:
    schedule = Schedule(
        "date", run_date=datetime(2025, 6, 1, tzinfo=UTC), zone="Asia/Shanghai"
    )

    times = schedule.next_fire_times(after=SAT_1_MARCH_SHANGHAI)

    assert [moment.isoformat() for moment in times] == ["2025-06-01T08:00:00+08:00"]


def test_a_naive_run_date_is_wall_time_in_the_zone() -> None:
    schedule = Schedule(
        "date", run_date=datetime(2025, 6, 1, 9), zone="America/New_York"
    )

    (fire_at,) = schedule.next_fire_times(after=SAT_1_MARCH_SHANGHAI)

    assert fire_at.isoformat() == "2025-06-01T09:00:00-04:00"


def test_a_manual_schedule_has_no_trigger_and_no_fire_times() -> None:
    schedule = Schedule("manual")

    assert schedule.trigger() is None
    assert schedule.next_fire_times(after=SAT_1_MARCH_SHANGHAI) == []


def test_next_fire_times_of_a_bad_schedule_is_a_schedule_error() -> None:
    with pytest.raises(ScheduleError) as caught:
        Schedule("cron", cron="0 25 * * *").next_fire_times(after=NEW_YEAR)

    assert caught.value.field == "cron_expression"


def test_dst_transitions_are_those_of_the_zone() -> None:
    schedule = Schedule("cron", cron="@daily", zone="America/New_York")

    transitions = schedule.dst_transitions(
        start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 1, tzinfo=UTC)
    )

    assert [moment.isoformat() for moment in transitions] == [
        "2025-03-09T03:00:00-04:00",
        "2025-11-02T01:00:00-05:00",
    ]


# --- validation --------------------------------------------------------------------


def validate(
    *, now: datetime = NEW_YEAR, require_future_run_date: bool = False, **over: Any
) -> None:
    """Schedule.validate with a valid cron schedule as defaults."""
    options: dict[str, Any] = {
        "kind": "cron",
        "cron": "0 2 * * *",
        "every_seconds": None,
        "run_date": None,
        "zone": "Asia/Shanghai",
    }
    Schedule(**{**options, **over}).validate(
        now=now, require_future_run_date=require_future_run_date
    )


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"kind": "interval", "cron": "", "every_seconds": 60},
        {"kind": "date", "run_date": datetime(2025, 6, 1, tzinfo=UTC)},
        {"kind": "manual", "cron": ""},
        {"cron": "0 0 1,15 * 1", "zone": "America/New_York"},
    ],
)
def test_valid_schedule_passes(over: dict[str, Any]) -> None:
    validate(**over, require_future_run_date=True)


def test_past_run_date_is_refused_when_a_future_one_is_required() -> None:
    message = "Run date 2024-01-01 08:00 is in the past; pick a future time."

    with pytest.raises(ScheduleError, match=f"^{re.escape(message)}$") as excinfo:
        validate(
            kind="date",
            run_date=datetime(2024, 1, 1, tzinfo=UTC),
            require_future_run_date=True,
        )

    assert excinfo.value.field == "run_date"


def test_past_run_date_is_accepted_when_not_required_to_be_future() -> None:
    validate(kind="date", run_date=datetime(2024, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"cron": ""}, "cron_expression"),
        ({"cron": "0 2 * * funday"}, "cron_expression"),
        ({"kind": "date"}, "run_date"),
        ({"kind": "interval"}, "interval_seconds"),
        ({"zone": "Mars/Base"}, "timezone"),
        ({"kind": "sometimes"}, "task_type"),
    ],
)
def test_validate_names_the_field_at_fault(over: dict[str, Any], field: str) -> None:
    with pytest.raises(ScheduleError) as excinfo:
        validate(**over)

    assert excinfo.value.field == field


def test_validate_checks_the_run_date_range_whatever_the_kind() -> None:
    with pytest.raises(ScheduleError) as caught:
        validate(kind="cron", run_date=datetime(1969, 12, 31, tzinfo=UTC))

    assert caught.value.field == "run_date"


def test_validate_checks_the_jitter() -> None:
    with pytest.raises(ScheduleError) as caught:
        validate(jitter_seconds=-1)

    assert caught.value.field == "jitter_seconds"


def test_validate_compares_a_run_date_with_now_as_instants() -> None:
    now = datetime(2025, 6, 1, 9, 0, tzinfo=NEW_YORK)

    validate(
        kind="date",
        run_date=datetime(2025, 6, 1, 13, 1, tzinfo=UTC),
        now=now,
        require_future_run_date=True,
    )
    with pytest.raises(ScheduleError, match=re.escape("2025-06-01 09:00")):
        validate(
            kind="date",
            run_date=datetime(2025, 6, 1, 13, 0, tzinfo=UTC),
            zone="America/New_York",
            now=now,
            require_future_run_date=True,
        )
