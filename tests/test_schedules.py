"""Tests for scheduler_app.schedules: crontab semantics, DST, validation messages."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from pytest_django.fixtures import Settings

from scheduler_app.exceptions import ScheduleError
from scheduler_app.schedules import (
    build_trigger,
    describe_interval,
    dst_transitions_between,
    next_fire_times,
    parse_cron,
    resolve_timezone,
    validate_schedule,
)

UTC = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
# Saturday 2025-03-01, midnight in Shanghai (no DST there).
SAT_1_MARCH_SHANGHAI = datetime(2025, 3, 1, tzinfo=SHANGHAI)


def cron_times(
    expression: str, *, after: datetime, count: int = 5, tz: ZoneInfo = SHANGHAI
) -> list[str]:
    """Next fire times as ISO strings: they show the offset, which equality hides."""
    trigger = parse_cron(expression, tz=tz)
    return [
        moment.isoformat()
        for moment in next_fire_times(trigger, after=after, count=count)
    ]


def assert_strictly_increasing_instants(times: list[datetime]) -> None:
    # Timestamps, not datetimes: same-zone datetimes compare as wall times, so the
    # two 01:30s of a fall-back night would look equal (or out of order).
    stamps = [moment.timestamp() for moment in times]
    assert stamps == sorted(set(stamps)), times


# --- cron semantics --------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "count", "expected"),
    [
        pytest.param(
            "0 2 * * *",
            3,
            [
                "2025-03-01T02:00:00+08:00",
                "2025-03-02T02:00:00+08:00",
                "2025-03-03T02:00:00+08:00",
            ],
            id="daily-at-02:00",
        ),
        pytest.param(
            "*/30 * * * *",
            3,
            [
                "2025-03-01T00:30:00+08:00",
                "2025-03-01T01:00:00+08:00",
                "2025-03-01T01:30:00+08:00",
            ],
            id="every-30-minutes",
        ),
        pytest.param(
            "0 9 * * 1-5",
            6,
            [
                "2025-03-03T09:00:00+08:00",
                "2025-03-04T09:00:00+08:00",
                "2025-03-05T09:00:00+08:00",
                "2025-03-06T09:00:00+08:00",
                "2025-03-07T09:00:00+08:00",
                "2025-03-10T09:00:00+08:00",
            ],
            id="weekdays-at-09:00",
        ),
        pytest.param(
            "0 0 1 * *",
            3,
            [
                "2025-04-01T00:00:00+08:00",
                "2025-05-01T00:00:00+08:00",
                "2025-06-01T00:00:00+08:00",
            ],
            id="first-of-month",
        ),
        pytest.param(
            "0 12 * * mon-fri",
            3,
            [
                "2025-03-03T12:00:00+08:00",
                "2025-03-04T12:00:00+08:00",
                "2025-03-05T12:00:00+08:00",
            ],
            id="weekday-name-range",
        ),
        pytest.param(
            "0 12 * * 5-7",
            4,
            [
                "2025-03-01T12:00:00+08:00",
                "2025-03-02T12:00:00+08:00",
                "2025-03-07T12:00:00+08:00",
                "2025-03-08T12:00:00+08:00",
            ],
            id="5-7-is-friday-to-sunday",
        ),
        pytest.param(
            "0 12 * * */2",
            4,
            [
                "2025-03-01T12:00:00+08:00",
                "2025-03-02T12:00:00+08:00",
                "2025-03-04T12:00:00+08:00",
                "2025-03-06T12:00:00+08:00",
            ],
            id="weekday-step-is-sun-tue-thu-sat",
        ),
        pytest.param(
            "0 12 * * 1-5/2",
            3,
            [
                "2025-03-03T12:00:00+08:00",
                "2025-03-05T12:00:00+08:00",
                "2025-03-07T12:00:00+08:00",
            ],
            id="weekday-range-step-is-mon-wed-fri",
        ),
        pytest.param(
            "0 0 1 jan *",
            2,
            ["2026-01-01T00:00:00+08:00", "2027-01-01T00:00:00+08:00"],
            id="month-name",
        ),
        pytest.param(
            "0 0 1 JUL,jan *",
            2,
            ["2025-07-01T00:00:00+08:00", "2026-01-01T00:00:00+08:00"],
            id="month-names-list-any-case",
        ),
        pytest.param(
            "0 0 1 */3 *",
            4,
            [
                "2025-04-01T00:00:00+08:00",
                "2025-07-01T00:00:00+08:00",
                "2025-10-01T00:00:00+08:00",
                "2026-01-01T00:00:00+08:00",
            ],
            id="month-step-from-january",
        ),
        pytest.param(
            "0 0 */10 * *",
            4,
            [
                "2025-03-11T00:00:00+08:00",
                "2025-03-21T00:00:00+08:00",
                "2025-03-31T00:00:00+08:00",
                "2025-04-01T00:00:00+08:00",
            ],
            id="day-step-counts-from-the-1st",
        ),
        pytest.param(
            "15,45 8-9 * * *",
            5,
            [
                "2025-03-01T08:15:00+08:00",
                "2025-03-01T08:45:00+08:00",
                "2025-03-01T09:15:00+08:00",
                "2025-03-01T09:45:00+08:00",
                "2025-03-02T08:15:00+08:00",
            ],
            id="lists-and-ranges",
        ),
        pytest.param(
            "5/20 * * * *",
            3,
            [
                "2025-03-01T00:05:00+08:00",
                "2025-03-01T00:25:00+08:00",
                "2025-03-01T00:45:00+08:00",
            ],
            id="start-with-step-runs-to-the-end",
        ),
        pytest.param(
            "*/10 * * * * *",
            4,
            [
                "2025-03-01T00:00:10+08:00",
                "2025-03-01T00:00:20+08:00",
                "2025-03-01T00:00:30+08:00",
                "2025-03-01T00:00:40+08:00",
            ],
            id="six-fields-every-10-seconds",
        ),
        pytest.param(
            "30 0 2 * * *",
            2,
            ["2025-03-01T02:00:30+08:00", "2025-03-02T02:00:30+08:00"],
            id="six-fields-seconds-first",
        ),
    ],
)
def test_cron_fires_at_crontab_times(
    expression: str, count: int, expected: list[str]
) -> None:
    assert cron_times(expression, after=SAT_1_MARCH_SHANGHAI, count=count) == expected


@pytest.mark.parametrize("weekday", ["0", "7", "sun", "SUN", "Sun", "0,7"])
def test_sunday_is_0_7_or_its_name(weekday: str) -> None:
    assert cron_times(f"0 12 * * {weekday}", after=SAT_1_MARCH_SHANGHAI, count=2) == [
        "2025-03-02T12:00:00+08:00",
        "2025-03-09T12:00:00+08:00",
    ]


@pytest.mark.parametrize(
    ("weekday", "apscheduler_weekdays"),
    [
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon-fri"),
        ("5-7", "fri-sun"),
        ("0-2", "mon-tue,sun"),
        ("*/2", "tue,thu,sat-sun"),
        ("*", "*"),
        ("0-7", "*"),
    ],
)
def test_numeric_weekdays_become_apscheduler_names(
    weekday: str, apscheduler_weekdays: str
) -> None:
    # APScheduler 3 counts weekdays from Monday = 0, so numbers never reach it.
    trigger = parse_cron(f"0 0 * * {weekday}", tz=UTC)

    assert f"day_of_week='{apscheduler_weekdays}'" in str(trigger)


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", ["2025-03-01T01:00:00+08:00", "2025-03-01T02:00:00+08:00"]),
        ("@daily", ["2025-03-02T00:00:00+08:00", "2025-03-03T00:00:00+08:00"]),
        ("@midnight", ["2025-03-02T00:00:00+08:00", "2025-03-03T00:00:00+08:00"]),
        ("@weekly", ["2025-03-02T00:00:00+08:00", "2025-03-09T00:00:00+08:00"]),
        ("@monthly", ["2025-04-01T00:00:00+08:00", "2025-05-01T00:00:00+08:00"]),
        ("@yearly", ["2026-01-01T00:00:00+08:00", "2027-01-01T00:00:00+08:00"]),
        ("@annually", ["2026-01-01T00:00:00+08:00", "2027-01-01T00:00:00+08:00"]),
        ("@Daily", ["2025-03-02T00:00:00+08:00", "2025-03-03T00:00:00+08:00"]),
    ],
)
def test_macros_expand_to_their_crontab_lines(macro: str, expected: list[str]) -> None:
    assert cron_times(macro, after=SAT_1_MARCH_SHANGHAI, count=2) == expected


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        pytest.param(
            SHANGHAI,
            [
                "2025-03-03T00:00:00+08:00",
                "2025-03-10T00:00:00+08:00",
                "2025-03-15T00:00:00+08:00",
                "2025-03-17T00:00:00+08:00",
                "2025-03-24T00:00:00+08:00",
                "2025-03-31T00:00:00+08:00",
                "2025-04-01T00:00:00+08:00",
            ],
            id="shanghai",
        ),
        pytest.param(
            NEW_YORK,
            [
                "2025-03-03T00:00:00-05:00",
                "2025-03-10T00:00:00-04:00",
                "2025-03-15T00:00:00-04:00",
                "2025-03-17T00:00:00-04:00",
                "2025-03-24T00:00:00-04:00",
                "2025-03-31T00:00:00-04:00",
                "2025-04-01T00:00:00-04:00",
            ],
            id="new-york",
        ),
    ],
)
def test_restricted_day_and_weekday_match_either(
    tz: ZoneInfo, expected: list[str]
) -> None:
    # Vixie cron: "the 1st, the 15th and every Monday", not "Mondays that are the
    # 1st or the 15th".
    after = datetime(2025, 3, 1, tzinfo=tz)

    assert cron_times("0 0 1,15 * 1", after=after, count=7, tz=tz) == expected


def test_restricted_day_and_weekday_become_an_or_trigger() -> None:
    assert isinstance(parse_cron("0 0 1,15 * 1", tz=UTC), OrTrigger)
    assert not isinstance(parse_cron("0 0 1,15 * *", tz=UTC), OrTrigger)


def test_day_starting_with_star_combines_with_weekday_by_and() -> None:
    # crontab counts a field starting with "*" as unrestricted, so "*/2" does not
    # switch on the OR rule: odd days that are Mondays.
    assert cron_times("0 0 */2 * 1", after=SAT_1_MARCH_SHANGHAI, count=4) == [
        "2025-03-03T00:00:00+08:00",
        "2025-03-17T00:00:00+08:00",
        "2025-03-31T00:00:00+08:00",
        "2025-04-07T00:00:00+08:00",
    ]


def test_cron_in_new_york_follows_its_offset_across_the_spring_change() -> None:
    after = datetime(2025, 3, 7, tzinfo=NEW_YORK)

    assert cron_times("0 9 * * 1-5", after=after, count=3, tz=NEW_YORK) == [
        "2025-03-07T09:00:00-05:00",
        "2025-03-10T09:00:00-04:00",
        "2025-03-11T09:00:00-04:00",
    ]


def test_february_29_fires_in_leap_years_only() -> None:
    assert cron_times("0 0 29 2 *", after=SAT_1_MARCH_SHANGHAI, count=2) == [
        "2028-02-29T00:00:00+08:00",
        "2032-02-29T00:00:00+08:00",
    ]


# --- DST (America/New_York, 2025: 03-09 02:00 → 03:00, 11-02 02:00 → 01:00) -------


def test_time_skipped_by_spring_forward_still_fires_that_day_at_0330() -> None:
    # 02:30 does not exist on 2025-03-09. APScheduler 3 reads it with the offset from
    # before the change, which names the real instant 03:30 EDT; that keeps the day
    # (no lost run). Vixie cron would run it at 03:00 instead.
    after = datetime(2025, 3, 8, 12, tzinfo=NEW_YORK)

    assert cron_times("30 2 * * *", after=after, count=3, tz=NEW_YORK) == [
        "2025-03-09T03:30:00-04:00",
        "2025-03-10T02:30:00-04:00",
        "2025-03-11T02:30:00-04:00",
    ]


def test_skipped_hour_fires_once_without_repeating_an_instant() -> None:
    # 02:00-02:45 map onto 03:00-03:45, which the expression also names: each once.
    after = datetime(2025, 3, 9, tzinfo=NEW_YORK)

    assert cron_times("*/15 2-3 * * *", after=after, count=5, tz=NEW_YORK) == [
        "2025-03-09T03:00:00-04:00",
        "2025-03-09T03:15:00-04:00",
        "2025-03-09T03:30:00-04:00",
        "2025-03-09T03:45:00-04:00",
        "2025-03-10T02:00:00-04:00",
    ]


def test_repeated_time_on_fall_back_fires_once() -> None:
    after = datetime(2025, 11, 1, 12, tzinfo=NEW_YORK)

    times = next_fire_times(parse_cron("30 1 * * *", tz=NEW_YORK), after=after, count=3)

    assert [moment.isoformat() for moment in times] == [
        "2025-11-02T01:30:00-04:00",
        "2025-11-03T01:30:00-05:00",
        "2025-11-04T01:30:00-05:00",
    ]
    assert sum(moment.date().isoformat() == "2025-11-02" for moment in times) == 1


def test_repeated_time_is_not_fired_again_when_asked_during_the_repeat() -> None:
    # 01:10 EST comes after 01:30 EDT already fired; the second 01:30 is skipped.
    during_repeat = datetime(2025, 11, 2, 1, 10, fold=1, tzinfo=NEW_YORK)

    assert cron_times("30 1 * * *", after=during_repeat, count=1, tz=NEW_YORK) == [
        "2025-11-03T01:30:00-05:00"
    ]


def test_hourly_cron_fires_every_real_hour_once_across_fall_back() -> None:
    after = datetime(2025, 11, 1, 23, 30, tzinfo=NEW_YORK)

    times = next_fire_times(parse_cron("0 * * * *", tz=NEW_YORK), after=after, count=6)

    assert [moment.isoformat() for moment in times] == [
        "2025-11-02T00:00:00-04:00",
        "2025-11-02T01:00:00-04:00",
        "2025-11-02T01:00:00-05:00",
        "2025-11-02T02:00:00-05:00",
        "2025-11-02T03:00:00-05:00",
        "2025-11-02T04:00:00-05:00",
    ]
    gaps = {
        later.timestamp() - earlier.timestamp() for earlier, later in pairwise(times)
    }
    assert gaps == {3600.0}


def test_hourly_cron_fires_every_real_hour_once_across_spring_forward() -> None:
    after = datetime(2025, 3, 9, 0, 30, tzinfo=NEW_YORK)

    assert cron_times("0 * * * *", after=after, count=3, tz=NEW_YORK) == [
        "2025-03-09T01:00:00-05:00",
        "2025-03-09T03:00:00-04:00",
        "2025-03-09T04:00:00-04:00",
    ]


def test_every_second_within_a_fixed_hour_skips_the_whole_repeat_quickly() -> None:
    after = datetime(2025, 11, 2, 1, 59, 58, tzinfo=NEW_YORK)

    assert cron_times("* * 1 * * *", after=after, count=2, tz=NEW_YORK) == [
        "2025-11-02T01:59:59-04:00",
        "2025-11-03T01:00:00-05:00",
    ]


@pytest.mark.parametrize(
    "expression",
    [
        "30 2 * * *",
        "30 1 * * *",
        "0 * * * *",
        "*/20 * * * *",
        "*/15 1-3 * * *",
        "0 1,2 * * *",
        "*/30 * * * * *",
        "0 0 1,2,9 * 0",
    ],
)
@pytest.mark.parametrize(
    "after",
    [
        datetime(2025, 3, 8, 22, tzinfo=NEW_YORK),
        datetime(2025, 11, 1, 22, tzinfo=NEW_YORK),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_next_fire_times_strictly_increase_across_dst(
    expression: str, after: datetime
) -> None:
    times = next_fire_times(parse_cron(expression, tz=NEW_YORK), after=after, count=60)

    assert len(times) == 60
    assert_strictly_increasing_instants(times)
    assert all(moment.timestamp() > after.timestamp() for moment in times)


def test_shanghai_has_no_dst_on_new_yorks_change_dates() -> None:
    after = datetime(2025, 3, 8, 12, tzinfo=SHANGHAI)

    assert cron_times("30 2 * * *", after=after, count=2) == [
        "2025-03-09T02:30:00+08:00",
        "2025-03-10T02:30:00+08:00",
    ]


def test_midnight_skipped_by_spring_forward_fires_at_0100() -> None:
    # Santiago moves its clocks from 00:00 to 01:00 on 2025-09-07 (a Sunday).
    santiago = ZoneInfo("America/Santiago")
    after = datetime(2025, 9, 5, 12, tzinfo=santiago)

    assert cron_times("0 0 * * *", after=after, count=3, tz=santiago) == [
        "2025-09-06T00:00:00-04:00",
        "2025-09-07T01:00:00-03:00",
        "2025-09-08T00:00:00-03:00",
    ]


def test_time_repeated_by_a_midnight_fall_back_fires_once() -> None:
    # Santiago repeats 23:00-24:00 on 2025-04-05.
    santiago = ZoneInfo("America/Santiago")
    after = datetime(2025, 4, 5, 12, tzinfo=santiago)

    assert cron_times("30 23 * * *", after=after, count=2, tz=santiago) == [
        "2025-04-05T23:30:00-03:00",
        "2025-04-06T23:30:00-04:00",
    ]


def brute_force_times(
    matches: Callable[[datetime], bool], *, start: datetime, end: datetime, tz: ZoneInfo
) -> list[str]:
    """Every quarter hour of real time in (start, end] whose wall time matches."""
    found = []
    moment = start.astimezone(UTC) + timedelta(minutes=15)
    while moment <= end:
        local = moment.astimezone(tz)
        if matches(local):
            found.append(local.isoformat())
        moment += timedelta(minutes=15)
    return found


def weekday(moment: datetime) -> int:
    """crontab's weekday: Sunday = 0."""
    return moment.isoweekday() % 7


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ("0 0 * * *", lambda m: (m.hour, m.minute) == (0, 0)),
        ("0 0 * * 1", lambda m: (m.hour, m.minute, weekday(m)) == (0, 0, 1)),
        ("0 0 * * 0", lambda m: (m.hour, m.minute, weekday(m)) == (0, 0, 0)),
        (
            "0 0 1,15 * 1",
            lambda m: (
                (m.hour, m.minute) == (0, 0) and (m.day in (1, 15) or weekday(m) == 1)
            ),
        ),
        (
            "0 0 */2 * 1",
            lambda m: (
                (m.hour, m.minute) == (0, 0) and m.day % 2 == 1 and weekday(m) == 1
            ),
        ),
        (
            "0 9 * * 1-5",
            lambda m: (m.hour, m.minute) == (9, 0) and 1 <= weekday(m) <= 5,
        ),
        (
            "45 23 * * 6,0",
            lambda m: (m.hour, m.minute) == (23, 45) and weekday(m) in (0, 6),
        ),
        ("15 12 1 * *", lambda m: (m.day, m.hour, m.minute) == (1, 12, 15)),
        ("*/30 4-5 * * *", lambda m: m.hour in (4, 5) and m.minute in (0, 30)),
    ],
)
@pytest.mark.parametrize(
    ("tz", "start", "end"),
    [
        pytest.param(
            NEW_YORK,
            datetime(2025, 2, 20, tzinfo=NEW_YORK),
            datetime(2025, 4, 20, tzinfo=NEW_YORK),
            id="new-york-spring",
        ),
        pytest.param(
            NEW_YORK,
            datetime(2025, 10, 15, tzinfo=NEW_YORK),
            datetime(2025, 12, 15, tzinfo=NEW_YORK),
            id="new-york-autumn",
        ),
        pytest.param(
            SHANGHAI,
            datetime(2025, 2, 20, tzinfo=SHANGHAI),
            datetime(2025, 4, 20, tzinfo=SHANGHAI),
            id="shanghai",
        ),
    ],
)
def test_cron_matches_a_brute_force_scan_of_wall_times(
    expression: str,
    matches: Callable[[datetime], bool],
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
) -> None:
    # The hours avoid 01:00-03:00, so the DST rules above do not apply and every
    # matching wall time is a real, unique instant: the scan is the plain truth.
    expected = brute_force_times(matches, start=start, end=end, tz=tz)
    trigger = parse_cron(expression, tz=tz)

    times = next_fire_times(trigger, after=start, count=len(expected) + 1)

    actual = [moment.isoformat() for moment in times if moment <= end]
    assert actual == expected


# --- interval, date, manual ------------------------------------------------------


def test_interval_fires_on_its_grid_from_the_start() -> None:
    trigger = build_trigger(
        task_type="interval",
        interval_seconds=300,
        timezone_name="Asia/Shanghai",
        start_at=SAT_1_MARCH_SHANGHAI,
    )

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
    trigger = build_trigger(
        task_type="interval",
        interval_seconds=60,
        timezone_name="Asia/Shanghai",
        start_at=start,
    )

    assert next_fire_times(trigger, after=SAT_1_MARCH_SHANGHAI, count=2) == [
        start,
        start + timedelta(minutes=1),
    ]


def test_interval_counts_real_seconds_across_fall_back() -> None:
    trigger = build_trigger(
        task_type="interval",
        interval_seconds=3600,
        timezone_name="America/New_York",
        start_at=datetime(2025, 11, 2, tzinfo=NEW_YORK),
    )

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
    trigger = build_trigger(
        task_type="date", run_date=run_date, timezone_name="Asia/Shanghai"
    )

    assert next_fire_times(trigger, after=SAT_1_MARCH_SHANGHAI, count=5) == [run_date]


def test_date_trigger_in_the_past_gives_nothing() -> None:
    trigger = build_trigger(
        task_type="date",
        run_date=datetime(2024, 6, 1, tzinfo=SHANGHAI),
        timezone_name="Asia/Shanghai",
    )

    assert next_fire_times(trigger, after=SAT_1_MARCH_SHANGHAI) == []


def test_date_trigger_reports_its_time_in_the_tasks_zone() -> None:
    trigger = build_trigger(
        task_type="date",
        run_date=datetime(2025, 6, 1, tzinfo=UTC),
        timezone_name="Asia/Shanghai",
    )

    times = next_fire_times(trigger, after=SAT_1_MARCH_SHANGHAI)

    assert [moment.isoformat() for moment in times] == ["2025-06-01T08:00:00+08:00"]


def test_manual_task_has_no_trigger_and_no_fire_times() -> None:
    trigger = build_trigger(task_type="manual")

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
            parse_cron("@daily", tz=UTC), after=SAT_1_MARCH_SHANGHAI, count=0
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
    trigger = build_trigger(
        task_type="cron",
        cron_expression="0 * * * *",
        timezone_name="UTC",
        jitter_seconds=30,
    )
    after = datetime(2025, 3, 1, 0, 30, tzinfo=UTC)

    times = next_fire_times(trigger, after=after, count=5)

    assert len(times) == 5
    for hour, moment in enumerate(times, start=1):
        on_time = datetime(2025, 3, 1, hour, tzinfo=UTC)
        assert on_time <= moment <= on_time + timedelta(seconds=30)


def test_trigger_survives_pickling_with_its_dst_rule() -> None:
    trigger = pickle.loads(pickle.dumps(parse_cron("30 1 * * *", tz=NEW_YORK)))
    after = datetime(2025, 11, 1, 12, tzinfo=NEW_YORK)

    assert [
        moment.isoformat() for moment in next_fire_times(trigger, after=after, count=2)
    ] == [
        "2025-11-02T01:30:00-04:00",
        "2025-11-03T01:30:00-05:00",
    ]


# --- error messages --------------------------------------------------------------


DOCUMENTED_MESSAGES = [
    (
        "61 * * * *",
        "Cron expression “61 * * * *”: minute field “61” is out of range (0–59).",
    ),
    (
        "* * *",
        "Cron expression “* * *”: expected 5 fields (minute hour day month "
        "weekday) or 6 with seconds first, got 3.",
    ),
    (
        "0 2 * * funday",
        "Cron expression “0 2 * * funday”: weekday field “funday” is not valid "
        "(use 0–7 or sun–sat).",
    ),
]


@pytest.mark.parametrize(("expression", "message"), DOCUMENTED_MESSAGES)
def test_bad_cron_expression_message_reads_exactly(
    expression: str, message: str
) -> None:
    with pytest.raises(ScheduleError, match=f"^{re.escape(message)}$") as excinfo:
        parse_cron(expression, tz=UTC)

    assert excinfo.value.field == "cron_expression"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        (
            "0 0 1 1 * * 2025",
            ": expected 5 fields (minute hour day month weekday) or 6 with seconds "
            "first, got 7.",
        ),
        ("0 24 * * *", ": hour field “24” is out of range (0–23)."),
        ("0 0 0 * *", ": day field “0” is out of range (1–31)."),
        ("0 0 * 13 *", ": month field “13” is out of range (1–12)."),
        ("0 0 * * 8", ": weekday field “8” is out of range (0–7)."),
        ("60 * * * * *", ": second field “60” is out of range (0–59)."),
        ("1,61 * * * *", ": minute field “61” is out of range (0–59)."),
        ("0 0 * foo *", ": month field “foo” is not valid (use 1–12 or jan–dec)."),
        (
            "0 0 * * monday",
            ": weekday field “monday” is not valid (use 0–7 or sun–sat).",
        ),
        ("0 0 L * *", ": day field “L” is not valid (use 1–31)."),
        ("0 0 ? * *", ": day field “?” is not valid (use 1–31)."),
        ("1,,2 * * * *", ": minute field “1,,2” is not valid (use 0–59)."),
        ("*-5 * * * *", ": minute field “*-5” is not valid (use 0–59)."),
        ("jan * * * *", ": minute field “jan” is not valid (use 0–59)."),
        ("*/0 * * * *", ": minute field “*/0” has a step of 0; use 1 or more."),
        (
            "*/90 * * * *",
            ": minute field “*/90” steps past the whole 0–59 range; for longer "
            "periods use an interval task.",
        ),
        (
            "0 22-2 * * *",
            ": hour field “22-2” runs backwards; write ranges from low to high, "
            "e.g. “22-23,0-2”.",
        ),
        (
            "0 0 * * fri-mon",
            ": weekday field “fri-mon” runs backwards; write ranges from low to "
            "high, e.g. “fri-sat,sun-mon”.",
        ),
        ("0 0 30 2 *", " never fires: none of its months has a day 30."),
        (
            "@reboot",
            ": @reboot means “when the machine starts”, which is not a schedule; "
            "use a manual task instead.",
        ),
        (
            "@often",
            ": unknown macro; use one of @yearly, @annually, @monthly, @weekly, "
            "@daily, @midnight, @hourly, @reboot.",
        ),
    ],
)
def test_bad_cron_expression_is_refused_naming_the_part(
    expression: str, problem: str
) -> None:
    message = f"Cron expression “{expression}”{problem}"

    with pytest.raises(ScheduleError, match=f"^{re.escape(message)}$") as excinfo:
        parse_cron(expression, tz=UTC)

    assert excinfo.value.field == "cron_expression"


@pytest.mark.parametrize("expression", ["", "   "])
def test_blank_cron_expression_asks_for_one(expression: str) -> None:
    message = "Enter a cron expression, e.g. “0 2 * * *” for every day at 02:00."

    with pytest.raises(ScheduleError, match=f"^{re.escape(message)}$") as excinfo:
        parse_cron(expression, tz=UTC)

    assert excinfo.value.field == "cron_expression"


def test_day_30_is_fine_when_the_weekday_can_match_instead() -> None:
    # With both fields restricted either may match, so Mondays in February fire.
    assert cron_times("0 0 30 2 1", after=SAT_1_MARCH_SHANGHAI, count=2) == [
        "2026-02-02T00:00:00+08:00",
        "2026-02-09T00:00:00+08:00",
    ]


def test_blank_time_zone_means_the_project_time_zone(settings: Settings) -> None:
    settings.TIME_ZONE = "Europe/Paris"

    assert resolve_timezone("") == ZoneInfo("Europe/Paris")


@pytest.mark.parametrize("name", ["Mars/Base", "../../etc/passwd", "Asia/Shanghai "])
def test_unknown_time_zone_is_refused(name: str) -> None:
    message = (
        f"Unknown time zone “{name}”: use an IANA name such as Asia/Shanghai or UTC."
    )

    with pytest.raises(ScheduleError, match=f"^{re.escape(message)}$") as excinfo:
        resolve_timezone(name)

    assert excinfo.value.field == "timezone"


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        pytest.param(
            {"task_type": "interval", "interval_seconds": 0},
            "interval_seconds",
            "Interval must be a positive number of seconds, got 0.",
            id="zero-interval",
        ),
        pytest.param(
            {"task_type": "interval", "interval_seconds": -5},
            "interval_seconds",
            "Interval must be a positive number of seconds, got -5.",
            id="negative-interval",
        ),
        pytest.param(
            {"task_type": "interval", "interval_seconds": 1.5},
            "interval_seconds",
            "Interval must be a positive number of seconds, got 1.5.",
            id="fractional-interval",
        ),
        pytest.param(
            {"task_type": "interval"},
            "interval_seconds",
            "Enter an interval in seconds, e.g. 300 for every 5 minutes.",
            id="missing-interval",
        ),
        pytest.param(
            {"task_type": "cron"},
            "cron_expression",
            "Enter a cron expression, e.g. “0 2 * * *” for every day at 02:00.",
            id="missing-cron-expression",
        ),
        pytest.param(
            {"task_type": "date"},
            "run_date",
            "Enter a run date: a one-off task runs once, at that time.",
            id="missing-run-date",
        ),
        pytest.param(
            {"task_type": "manual", "timezone_name": "Mars/Base"},
            "timezone",
            "Unknown time zone “Mars/Base”: use an IANA name such as Asia/Shanghai "
            "or UTC.",
            id="unknown-zone",
        ),
        pytest.param(
            {"task_type": "weekly"},
            "task_type",
            "Unknown task type “weekly”: use cron, interval, date or manual.",
            id="unknown-task-type",
        ),
        pytest.param(
            {"task_type": "cron", "cron_expression": "@daily", "jitter_seconds": -1},
            "jitter_seconds",
            "Jitter must be zero or a positive number of seconds, got -1.",
            id="negative-jitter",
        ),
    ],
)
def test_build_trigger_refuses_a_bad_schedule(
    options: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ScheduleError, match=f"^{re.escape(message)}$") as excinfo:
        build_trigger(start_at=SAT_1_MARCH_SHANGHAI, **options)

    assert excinfo.value.field == field


def validate(**over: Any) -> None:
    """validate_schedule with a valid cron schedule as defaults."""
    options: dict[str, Any] = {
        "task_type": "cron",
        "cron_expression": "0 2 * * *",
        "interval_seconds": None,
        "run_date": None,
        "timezone_name": "Asia/Shanghai",
        "now": datetime(2025, 1, 1, tzinfo=UTC),
    }
    validate_schedule(**{**options, **over})


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"task_type": "interval", "cron_expression": "", "interval_seconds": 60},
        {"task_type": "date", "run_date": datetime(2025, 6, 1, tzinfo=UTC)},
        {"task_type": "manual", "cron_expression": ""},
        {"cron_expression": "0 0 1,15 * 1", "timezone_name": "America/New_York"},
    ],
)
def test_valid_schedule_passes(over: dict[str, Any]) -> None:
    validate(**over, require_future_run_date=True)


def test_past_run_date_is_refused_when_a_future_one_is_required() -> None:
    message = "Run date 2024-01-01 08:00 is in the past; pick a future time."

    with pytest.raises(ScheduleError, match=f"^{re.escape(message)}$") as excinfo:
        validate(
            task_type="date",
            run_date=datetime(2024, 1, 1, tzinfo=UTC),
            require_future_run_date=True,
        )

    assert excinfo.value.field == "run_date"


def test_past_run_date_is_accepted_when_not_required_to_be_future() -> None:
    validate(task_type="date", run_date=datetime(2024, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"cron_expression": ""}, "cron_expression"),
        ({"cron_expression": "0 2 * * funday"}, "cron_expression"),
        ({"task_type": "date"}, "run_date"),
        ({"task_type": "interval"}, "interval_seconds"),
        ({"timezone_name": "Mars/Base"}, "timezone"),
        ({"task_type": "sometimes"}, "task_type"),
    ],
)
def test_validate_schedule_names_the_field_at_fault(
    over: dict[str, Any], field: str
) -> None:
    with pytest.raises(ScheduleError) as excinfo:
        validate(**over)

    assert excinfo.value.field == field


# --- descriptions and DST notes --------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "every second"),
        (30, "every 30 seconds"),
        (60, "every minute"),
        (90, "every 1 minute 30 seconds"),
        (300, "every 5 minutes"),
        (3600, "every hour"),
        (5400, "every 1 hour 30 minutes"),
        (21600, "every 6 hours"),
        (86400, "every day"),
        (172800, "every 2 days"),
        (90061, "every 1 day 1 hour 1 minute 1 second"),
    ],
)
def test_describe_interval(seconds: int, text: str) -> None:
    assert describe_interval(seconds) == text


@pytest.mark.parametrize("seconds", [0, -60])
def test_describe_interval_refuses_a_non_positive_interval(seconds: int) -> None:
    with pytest.raises(ValueError):
        describe_interval(seconds)


def test_dst_transitions_between_finds_new_yorks_two_changes() -> None:
    transitions = dst_transitions_between(
        datetime(2025, 1, 1, tzinfo=NEW_YORK),
        datetime(2026, 1, 1, tzinfo=NEW_YORK),
        NEW_YORK,
    )

    assert [moment.isoformat() for moment in transitions] == [
        "2025-03-09T03:00:00-04:00",
        "2025-11-02T01:00:00-05:00",
    ]
    assert [moment.astimezone(UTC).isoformat() for moment in transitions] == [
        "2025-03-09T07:00:00+00:00",
        "2025-11-02T06:00:00+00:00",
    ]


def test_dst_transitions_between_includes_a_change_exactly_at_the_bounds() -> None:
    change = datetime(2025, 3, 9, 7, tzinfo=UTC)

    assert dst_transitions_between(change, change, NEW_YORK) == [change]


def test_dst_transitions_between_finds_none_in_shanghai() -> None:
    transitions = dst_transitions_between(
        datetime(2025, 1, 1, tzinfo=SHANGHAI),
        datetime(2026, 1, 1, tzinfo=SHANGHAI),
        SHANGHAI,
    )

    assert transitions == []


def test_dst_transitions_between_is_empty_for_a_range_without_a_change() -> None:
    start = datetime(2025, 4, 1, tzinfo=NEW_YORK)

    assert dst_transitions_between(start, start + timedelta(days=30), NEW_YORK) == []


# --- values beyond datetime's range ------------------------------------------------


@pytest.mark.parametrize("seconds", [10**14, 10**30])
def test_an_interval_beyond_timedelta_is_a_schedule_error_not_an_overflow(
    seconds: int,
) -> None:
    # The engine skips a task whose trigger cannot be built (ScheduleError) and
    # keeps scheduling the others; an OverflowError used to end every pass.
    with pytest.raises(ScheduleError, match="too long to schedule") as caught:
        build_trigger(task_type="interval", interval_seconds=seconds)

    assert caught.value.field == "interval_seconds"


def test_next_fire_times_end_where_datetime_does() -> None:
    trigger = parse_cron("0 0 29 2 *", tz=NEW_YORK)  # leap days only

    times = next_fire_times(trigger, after=datetime(9990, 1, 1, tzinfo=UTC), count=5)

    assert [moment.year for moment in times] == [9992, 9996]


def test_dst_transitions_stop_short_of_datetimes_limit() -> None:
    end = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)

    transitions = dst_transitions_between(
        datetime(9999, 1, 1, tzinfo=UTC), end, NEW_YORK
    )

    assert [moment.month for moment in transitions] == [3, 11]


@pytest.mark.parametrize("name", ["x" * 300, "a\x00b"])
def test_a_zone_name_no_file_can_have_is_unknown(name: str) -> None:
    with pytest.raises(ScheduleError, match="Unknown time zone"):
        resolve_timezone(name)
