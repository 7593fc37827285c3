"""Crontab semantics: fields, weekdays, macros, day-or-weekday, leap days."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.combining import OrTrigger

from scheduler_app.schedules import Schedule, cron_trigger, parse_crontab

from .helpers import NEW_YORK, SAT_1_MARCH_SHANGHAI, SHANGHAI, UTC, cron_times


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
    ("weekday", "same_as"),
    [
        ("mon-sun", "1-7"),
        ("Mon-Sun", "1-7"),
        ("wed-0", "3-7"),
        ("fri-sun", "5-7"),
        ("1-0", "1-7"),
        ("sat-sun/2", "6"),
        ("mon-sun/3", "1,4,7"),
    ],
)
def test_a_weekday_range_may_end_on_sunday_as_cronie_reads_it(
    weekday: str, same_as: str
) -> None:
    # Sunday is 0 and 7: a range that ends on it ends on 7.
    assert (
        parse_crontab(f"0 9 * * {weekday}").values["day_of_week"]
        == (parse_crontab(f"0 9 * * {same_as}").values["day_of_week"])
    )


def test_a_weekday_step_from_a_start_counts_to_7_so_sunday_may_be_in_it() -> None:
    # "1/2" reads as 1-7/2, as in cronie: Monday, Wednesday, Friday and Sunday.
    assert cron_times("0 12 * * 1/2", after=SAT_1_MARCH_SHANGHAI, count=4) == [
        "2025-03-02T12:00:00+08:00",
        "2025-03-03T12:00:00+08:00",
        "2025-03-05T12:00:00+08:00",
        "2025-03-07T12:00:00+08:00",
    ]


def test_a_repeated_hour_on_a_fall_back_night_fires_once() -> None:
    # New York falls back on 2026-11-01 at 02:00 EDT: 01:00-01:59 comes twice;
    # "*/15 1 * * *" fires in its first pass only (EDT), four times, not eight.
    schedule = Schedule(kind="cron", cron="*/15 1 * * *", zone="America/New_York")
    fires = schedule.next_fire_times(
        after=dt.datetime(2026, 11, 1, 4, 0, tzinfo=dt.UTC), count=5
    )

    assert [fire.isoformat() for fire in fires] == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:15:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:45:00-04:00",
        "2026-11-02T01:00:00-05:00",
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
    trigger = cron_trigger(f"0 0 * * {weekday}", tz=UTC)

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
    assert isinstance(cron_trigger("0 0 1,15 * 1", tz=UTC), OrTrigger)
    assert not isinstance(cron_trigger("0 0 1,15 * *", tz=UTC), OrTrigger)


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


def test_parse_crontab_gives_values_in_crontabs_own_numbering() -> None:
    crontab = parse_crontab("*/20 9-11 * * sun,7")

    assert crontab.values["second"] == {0}
    assert crontab.values["minute"] == {0, 20, 40}
    assert crontab.values["hour"] == {9, 10, 11}
    assert crontab.values["day_of_week"] == {0, 7}
    assert not crontab.day_restricted
    assert crontab.weekday_restricted
    assert not crontab.every_hour


def test_parse_crontab_knows_when_either_day_may_match() -> None:
    assert parse_crontab("0 0 13 * 5").either_day_matches
    assert not parse_crontab("0 0 */2 * 5").either_day_matches
    assert not parse_crontab("0 0 30 2 1").day_can_match


def test_a_time_a_spring_forward_night_skips_fires_an_hour_on() -> None:
    # New York springs forward on 2026-03-08 at 02:00: 02:30 does not exist.
    schedule = Schedule(kind="cron", cron="30 2 * * *", zone="America/New_York")
    fires = schedule.next_fire_times(
        after=dt.datetime(2026, 3, 7, 12, 0, tzinfo=dt.UTC), count=3
    )

    assert [fire.isoformat() for fire in fires] == [
        "2026-03-08T03:30:00-04:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]


def test_every_hour_fires_in_both_passes_of_a_repeated_hour() -> None:
    schedule = Schedule(kind="cron", cron="0 * * * *", zone="America/New_York")
    fires = schedule.next_fire_times(
        after=dt.datetime(2026, 11, 1, 4, 30, tzinfo=dt.UTC), count=3
    )

    assert [fire.isoformat() for fire in fires] == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]
