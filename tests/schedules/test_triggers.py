"""Interval, date and manual triggers; next_fire_times; jitter; pickling; year 9999."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta

import pytest
from apscheduler.triggers.base import BaseTrigger

from scheduler_app.exceptions import ScheduleError
from scheduler_app.schedules import (
    Schedule,
    cron_trigger,
    dst_transitions_between,
    next_fire_times,
)

from .helpers import NEW_YORK, SAT_1_MARCH_SHANGHAI, SHANGHAI, UTC, cron_times

# --- interval, date, manual ------------------------------------------------------


def test_interval_fires_on_its_grid_from_the_start() -> None:
    trigger = Schedule(
        kind="interval", every_seconds=300, zone="Asia/Shanghai"
    ).trigger(start_at=SAT_1_MARCH_SHANGHAI)

    times = next_fire_times(
        trigger, after=SAT_1_MARCH_SHANGHAI + timedelta(minutes=7), count=3
    )

    assert [moment.isoformat() for moment in times] == [
        "2025-03-01T00:10:00+08:00",
        "2025-03-01T00:15:00+08:00",
        "2025-03-01T00:20:00+08:00",
    ]


def test_interval_first_fires_at_a_future_start() -> None:
    start = datetime(2025, 3, 1, 9, tzinfo=SHANGHAI)
    trigger = Schedule(kind="interval", every_seconds=60, zone="Asia/Shanghai").trigger(
        start_at=start
    )

    assert next_fire_times(trigger, after=SAT_1_MARCH_SHANGHAI, count=2) == [
        start,
        start + timedelta(minutes=1),
    ]


def test_interval_counts_real_seconds_across_fall_back() -> None:
    trigger = Schedule(
        kind="interval", every_seconds=3600, zone="America/New_York"
    ).trigger(start_at=datetime(2025, 11, 2, tzinfo=NEW_YORK))

    times = next_fire_times(
        trigger, after=datetime(2025, 11, 1, 23, tzinfo=NEW_YORK), count=4
    )

    assert [moment.isoformat() for moment in times] == [
        "2025-11-02T00:00:00-04:00",
        "2025-11-02T01:00:00-04:00",
        "2025-11-02T01:00:00-05:00",
        "2025-11-02T02:00:00-05:00",
    ]


def test_date_trigger_gives_its_one_time_then_nothing() -> None:
    run_date = datetime(2025, 6, 1, 8, 30, tzinfo=SHANGHAI)
    trigger = Schedule(kind="date", run_date=run_date, zone="Asia/Shanghai").trigger()

    assert next_fire_times(trigger, after=SAT_1_MARCH_SHANGHAI, count=5) == [run_date]


def test_date_trigger_in_the_past_gives_nothing() -> None:
    trigger = Schedule(
        kind="date",
        run_date=datetime(2024, 6, 1, tzinfo=SHANGHAI),
        zone="Asia/Shanghai",
    ).trigger()

    assert next_fire_times(trigger, after=SAT_1_MARCH_SHANGHAI) == []


def test_date_trigger_reports_its_time_in_the_tasks_zone() -> None:
    trigger = Schedule(
        kind="date", run_date=datetime(2025, 6, 1, tzinfo=UTC), zone="Asia/Shanghai"
    ).trigger()

    times = next_fire_times(trigger, after=SAT_1_MARCH_SHANGHAI)

    assert [moment.isoformat() for moment in times] == ["2025-06-01T08:00:00+08:00"]


def test_manual_task_has_no_trigger_and_no_fire_times() -> None:
    trigger = Schedule(kind="manual").trigger()

    assert trigger is None
    assert next_fire_times(trigger, after=SAT_1_MARCH_SHANGHAI) == []


def test_next_fire_times_are_strictly_after_after() -> None:
    at_two = datetime(2025, 3, 1, 2, tzinfo=SHANGHAI)

    assert cron_times("0 2 * * *", after=at_two, count=1) == [
        "2025-03-02T02:00:00+08:00"
    ]


def test_next_fire_times_with_count_zero_is_empty() -> None:
    assert (
        next_fire_times(
            cron_trigger("@daily", tz=UTC), after=SAT_1_MARCH_SHANGHAI, count=0
        )
        == []
    )


class StuckTrigger(BaseTrigger):
    """A trigger that always answers the same instant."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime:
        return self.moment


def test_next_fire_times_stops_when_a_trigger_repeats_itself() -> None:
    moment = datetime(2025, 3, 2, tzinfo=SHANGHAI)

    assert next_fire_times(StuckTrigger(moment), after=SAT_1_MARCH_SHANGHAI) == [moment]


def test_jitter_delays_cron_fires_by_at_most_its_seconds() -> None:
    trigger = Schedule(
        kind="cron", cron="0 * * * *", zone="UTC", jitter_seconds=30
    ).trigger()
    after = datetime(2025, 3, 1, 0, 30, tzinfo=UTC)

    times = next_fire_times(trigger, after=after, count=5)

    assert len(times) == 5
    for hour, moment in enumerate(times, start=1):
        on_time = datetime(2025, 3, 1, hour, tzinfo=UTC)
        assert on_time <= moment <= on_time + timedelta(seconds=30)


def test_trigger_survives_pickling_with_its_dst_rule() -> None:
    trigger = pickle.loads(pickle.dumps(cron_trigger("30 1 * * *", tz=NEW_YORK)))
    after = datetime(2025, 11, 1, 12, tzinfo=NEW_YORK)

    assert [
        moment.isoformat() for moment in next_fire_times(trigger, after=after, count=2)
    ] == [
        "2025-11-02T01:30:00-04:00",
        "2025-11-03T01:30:00-05:00",
    ]


# --- values beyond datetime's range ------------------------------------------------


@pytest.mark.parametrize("seconds", [10**14, 10**30])
def test_an_interval_beyond_timedelta_is_a_schedule_error_not_an_overflow(
    seconds: int,
) -> None:
    # The engine skips a task whose trigger cannot be built (ScheduleError) and
    # keeps scheduling the others; an OverflowError used to end every pass.
    with pytest.raises(ScheduleError, match="too long to schedule") as caught:
        Schedule(kind="interval", every_seconds=seconds).trigger()

    assert caught.value.field == "interval_seconds"


def test_next_fire_times_end_where_datetime_does() -> None:
    trigger = cron_trigger("0 0 29 2 *", tz=NEW_YORK)  # leap days only

    times = next_fire_times(trigger, after=datetime(9990, 1, 1, tzinfo=UTC), count=5)

    assert [moment.year for moment in times] == [9992, 9996]


def test_dst_transitions_stop_short_of_datetimes_limit() -> None:
    end = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)

    transitions = dst_transitions_between(
        datetime(9999, 1, 1, tzinfo=UTC), end, NEW_YORK
    )

    assert [moment.month for moment in transitions] == [3, 11]
