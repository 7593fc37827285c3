"""Schedules as APScheduler 3 triggers: the one module that knows APScheduler.

CrontabTrigger overrides CronTrigger's private steps to give crontab's DST rules;
if an APScheduler upgrade moves them, this is the only file to change.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import BaseCombiningTrigger, OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .cron import FIELDS, WEEKDAY, CronField, parse_crontab
from .dst import is_repeated_wall_time, last_repeated_instant

#: What callers hold: any APScheduler trigger (cron, or of two, interval, date).
Trigger = BaseTrigger

# APScheduler 3 numbers weekdays from Monday = 0; crontab from Sunday = 0 (and 7).
_APSCHEDULER_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Generous: a skip moves past a whole DST overlap, so two or three are the most seen.
_MAX_DST_SKIPS = 16
# Fields up to here (year, month, day) change the date; week and weekday step the day.
_LAST_DATE_FIELD = CronTrigger.FIELD_NAMES.index("day")


class CrontabTrigger(CronTrigger):
    """A CronTrigger that handles DST changes the way Vixie cron does.

    APScheduler 3 reads a wall time that a spring-forward skips (02:30 on
    2025-03-09 in New York) with the offset from before the change, so it names the
    real instant 03:30; this class returns that instant with its true offset. When
    clocks fall back, a schedule with specific hours would match the repeated wall
    time twice; cron runs such jobs once, so the second occurrence is skipped. A
    schedule that runs every hour keeps both, since they are different real hours.
    It also keeps day steps on local midnight, which APScheduler 3.11 does not.
    """

    __slots__ = ("skips_repeated_time",)

    def __init__(self, *, skips_repeated_time: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.skips_repeated_time = skips_repeated_time

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        probe_previous, probe_now = previous_fire_time, now
        for _attempt in range(_MAX_DST_SKIPS):
            candidate = super().get_next_fire_time(probe_previous, probe_now)
            if candidate is None:
                return None
            fire_at = candidate.astimezone(UTC).astimezone(self.timezone)
            # Around a spring-forward gap APScheduler can name one instant twice
            # (02:00 read as 03:00, then the real 03:00).
            if previous_fire_time is not None and (
                fire_at.timestamp() <= previous_fire_time.timestamp()
            ):
                probe_previous = probe_now = fire_at
            elif self.skips_repeated_time and is_repeated_wall_time(fire_at):
                probe_previous = probe_now = last_repeated_instant(fire_at)
            else:
                return BaseTrigger._apply_jitter(self, fire_at, self.jitter, now)
        return None

    def _increment_field_value(
        self, dateval: datetime, fieldnum: int
    ) -> tuple[datetime, int]:
        incremented, new_fieldnum = super()._increment_field_value(dateval, fieldnum)
        if 0 <= new_fieldnum <= _LAST_DATE_FIELD:
            # Moving to a later day resets the time to midnight. APScheduler adds the
            # wall-clock difference in UTC, which lands an hour off once a DST change
            # lies between, and a weekly job then skips a week (agronholm/apscheduler
            # #529). Stepping the naive wall time keeps midnight.
            naive, new_fieldnum = super()._increment_field_value(
                dateval.replace(tzinfo=None), fieldnum
            )
            incremented = naive.replace(tzinfo=self.timezone)
        return incremented, new_fieldnum

    def _apply_jitter(
        self, next_fire_time: datetime | None, jitter: int | None, now: datetime
    ) -> datetime | None:
        # Jitter is added once the DST corrections above are done, not before.
        return next_fire_time

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state["skips_repeated_time"] = self.skips_repeated_time
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.skips_repeated_time = state.get("skips_repeated_time", True)


def _compact(values: AbstractSet[int], render: Callable[[int], str]) -> str:
    """Write sorted values as APScheduler ranges and singles: {1,2,3,7} → "1-3,7"."""
    runs: list[list[int]] = []
    for value in sorted(values):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ",".join(
        render(first) if first == last else f"{render(first)}-{render(last)}"
        for first, last in runs
    )


def _apscheduler_value(values: AbstractSet[int], field: CronField) -> str:
    """Write crontab values for APScheduler, weekdays as names in its own numbering."""
    if field is WEEKDAY:
        weekdays = {(value - 1) % 7 for value in values}
        if len(weekdays) == 7:
            return "*"
        return _compact(weekdays, _APSCHEDULER_WEEKDAYS.__getitem__)
    if values == set(range(field.low, field.high + 1)):
        return "*"
    ordered = sorted(values)
    if len(ordered) > 2:
        # Keep "*/15" readable in the trigger's repr instead of listing 0,15,30,45.
        first, step = ordered[0], ordered[1] - ordered[0]
        if step > 1 and ordered == list(range(first, ordered[-1] + 1, step)):
            if first == field.low and ordered[-1] + step > field.high:
                return f"*/{step}"
            return f"{first}-{ordered[-1]}/{step}"
    return _compact(values, str)


def cron_trigger(
    expression: str, *, tz: ZoneInfo, jitter_seconds: int = 0
) -> CronTrigger | OrTrigger:
    """Parse a crontab expression into a trigger with standard crontab semantics.

    Takes 5 fields, 6 with seconds first, or a macro such as @daily. Weekdays
    count from Sunday (0 or 7). When day of month and weekday are both restricted,
    a day matches if either does, as in Vixie cron; that schedule is an OrTrigger
    of two CrontabTriggers. Raises ScheduleError(field="cron_expression").
    """
    crontab = parse_crontab(expression)
    options: dict[str, Any] = {
        field.keyword: _apscheduler_value(crontab.values[field.keyword], field)
        for field in FIELDS
    }
    # Cron's overlap rule applies to fixed-hour jobs only; hourly jobs run each hour.
    common: dict[str, Any] = {
        "timezone": tz,
        "skips_repeated_time": not crontab.every_hour,
    }
    jitter = jitter_seconds or None
    if not crontab.either_day_matches:
        return CrontabTrigger(**options, **common, jitter=jitter)
    weekday_options = {**options, "day": "*"}
    if not crontab.day_can_match:
        # "30 2 1": February has no 30th, so only the Mondays of February remain.
        return CrontabTrigger(**weekday_options, **common, jitter=jitter)
    by_day = CrontabTrigger(**{**options, "day_of_week": "*"}, **common)
    by_weekday = CrontabTrigger(**weekday_options, **common)
    # OrTrigger's min() compares same-zone datetimes as wall times, ignoring fold. It
    # is safe here: both parts share every time-of-day field, so on a day both allow
    # they return the same instant, and otherwise their answers fall on other days.
    return OrTrigger([by_day, by_weekday], jitter=jitter)


def interval_trigger(
    *, seconds: int, start: datetime, tz: ZoneInfo, jitter_seconds: int = 0
) -> IntervalTrigger:
    """Fire at start + k * seconds. Raises OverflowError beyond timedelta's range."""
    return IntervalTrigger(
        seconds=seconds, start_date=start, timezone=tz, jitter=jitter_seconds or None
    )


def date_trigger(*, run_date: datetime, tz: ZoneInfo) -> DateTrigger:
    """Fire once, at `run_date` (aware). Raises OverflowError near datetime's limits."""
    return DateTrigger(run_date=run_date, timezone=tz)


def trigger_zone(trigger: BaseTrigger) -> tzinfo | None:
    """The zone a trigger reports its fire times in (None if it has none)."""
    if isinstance(trigger, BaseCombiningTrigger):
        return trigger_zone(trigger.triggers[0]) if trigger.triggers else None
    if isinstance(trigger, DateTrigger):
        zone: tzinfo | None = trigger.run_date.tzinfo
        return zone
    return getattr(trigger, "timezone", None)
