"""DST: skipped and repeated wall times, brute-force checks, offset changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from scheduler_app.schedules import (
    cron_trigger,
    dst_transitions_between,
    next_fire_times,
)

from .helpers import (
    NEW_YORK,
    SHANGHAI,
    UTC,
    assert_strictly_increasing_instants,
    cron_times,
)

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

    times = next_fire_times(
        cron_trigger("30 1 * * *", tz=NEW_YORK), after=after, count=3
    )

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

    times = next_fire_times(
        cron_trigger("0 * * * *", tz=NEW_YORK), after=after, count=6
    )

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
    times = next_fire_times(
        cron_trigger(expression, tz=NEW_YORK), after=after, count=60
    )

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
    trigger = cron_trigger(expression, tz=tz)

    times = next_fire_times(trigger, after=start, count=len(expected) + 1)

    actual = [moment.isoformat() for moment in times if moment <= end]
    assert actual == expected


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
