"""Schedules as APScheduler 3 triggers: crontab parsing, validation, next fire times."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import BaseCombiningTrigger, OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.conf import settings
from django.utils import timezone as django_timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from scheduler_app.exceptions import ScheduleError

# ScheduledTask.TaskType's values; models stay unimported so every layer can use this.
TASK_TYPES = ("cron", "interval", "date", "manual")
#: Run dates are kept where every time zone has whole-minute offsets (before 1970
#: some zones used local mean time, e.g. +08:05:43) and far from datetime's limit
#: (year 9999), so converting one to any zone and adding a delay never overflows.
RUN_DATE_MIN = datetime(1970, 1, 2, tzinfo=UTC)
RUN_DATE_MAX = datetime(9000, 1, 1, tzinfo=UTC)

CRON_MISSING = _("Enter a cron expression, e.g. “0 2 * * *” for every day at 02:00.")
CRON_FIELD_COUNT = _(
    "Cron expression “%(expression)s”: expected 5 fields (minute hour day month "
    "weekday) or 6 with seconds first, got %(count)s."
)
CRON_REBOOT = _(
    "Cron expression “%(expression)s”: @reboot means “when the machine starts”, "
    "which is not a schedule; use a manual task instead."
)
CRON_UNKNOWN_MACRO = _(
    "Cron expression “%(expression)s”: unknown macro; use one of %(macros)s."
)
CRON_OUT_OF_RANGE = _(
    "Cron expression “%(expression)s”: %(field)s field “%(value)s” is out of range "
    "(%(low)s–%(high)s)."
)
CRON_INVALID_VALUE = _(
    "Cron expression “%(expression)s”: %(field)s field “%(value)s” is not valid "
    "(use %(allowed)s)."
)
CRON_ZERO_STEP = _(
    "Cron expression “%(expression)s”: %(field)s field “%(value)s” has a step of 0; "
    "use 1 or more."
)
CRON_STEP_TOO_LARGE = _(
    "Cron expression “%(expression)s”: %(field)s field “%(value)s” steps past the "
    "whole %(low)s–%(high)s range; for longer periods use an interval task."
)
CRON_BACKWARDS_RANGE = _(
    "Cron expression “%(expression)s”: %(field)s field “%(value)s” runs backwards; "
    "write ranges from low to high, e.g. “%(suggestion)s”."
)
CRON_NEVER_FIRES = _(
    "Cron expression “%(expression)s” never fires: none of its months has a day "
    "%(day)s."
)
CRON_ALLOWED_WITH_NAMES = _("%(low)s–%(high)s or %(first)s–%(last)s")
TIMEZONE_UNKNOWN = _(
    "Unknown time zone “%(name)s”: use an IANA name such as Asia/Shanghai or UTC."
)
TASK_TYPE_UNKNOWN = _(
    "Unknown task type “%(value)s”: use cron, interval, date or manual."
)
INTERVAL_MISSING = _("Enter an interval in seconds, e.g. 300 for every 5 minutes.")
INTERVAL_NOT_POSITIVE = _(
    "Interval must be a positive number of seconds, got %(value)s."
)
RUN_DATE_MISSING = _("Enter a run date: a one-off task runs once, at that time.")
RUN_DATE_IN_PAST = _("Run date %(run_date)s is in the past; pick a future time.")
RUN_DATE_RANGE = _("Enter a run date between 1970 and 9000, e.g. 2030-01-31T02:00:00Z.")
INTERVAL_TOO_LONG = _(
    "Interval of %(value)s seconds is too long to schedule; enter a shorter one."
)
JITTER_NEGATIVE = _(
    "Jitter must be zero or a positive number of seconds, got %(value)s."
)

EVERY_DURATION = _("every %(duration)s")
_EVERY_SINGLE_UNIT = {
    "day": _("every day"),
    "hour": _("every hour"),
    "minute": _("every minute"),
    "second": _("every second"),
}
_EVERY_UNITS = {
    "day": ngettext_lazy("every %(count)d day", "every %(count)d days", "count"),
    "hour": ngettext_lazy("every %(count)d hour", "every %(count)d hours", "count"),
    "minute": ngettext_lazy(
        "every %(count)d minute", "every %(count)d minutes", "count"
    ),
    "second": ngettext_lazy(
        "every %(count)d second", "every %(count)d seconds", "count"
    ),
}
_UNIT_COUNTS = {
    "day": ngettext_lazy("%(count)d day", "%(count)d days", "count"),
    "hour": ngettext_lazy("%(count)d hour", "%(count)d hours", "count"),
    "minute": ngettext_lazy("%(count)d minute", "%(count)d minutes", "count"),
    "second": ngettext_lazy("%(count)d second", "%(count)d seconds", "count"),
}
_UNIT_SECONDS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# APScheduler 3 numbers weekdays from Monday = 0; crontab from Sunday = 0 (and 7).
_APSCHEDULER_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# February counts 29 days: a cron for Feb 29 is valid, it fires in leap years.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ELEMENT_RE = re.compile(
    r"(?P<start>\*|[0-9a-z]+)(?:-(?P<end>[0-9a-z]+))?(?:/(?P<step>[0-9]+))?",
    re.IGNORECASE,
)
# Generous: a skip moves past a whole DST overlap, so two or three are the most seen.
_MAX_DST_SKIPS = 16
# Fields up to here (year, month, day) change the date; week and weekday step the day.
_LAST_DATE_FIELD = CronTrigger.FIELD_NAMES.index("day")
# next_fire_times gives up after this many answers in a row that do not move forward.
_MAX_STALLS = 3


@dataclass(frozen=True)
class _CronField:
    """One crontab field: its APScheduler keyword, label, bounds and value names."""

    keyword: str
    label: str | Promise
    low: int
    high: int
    names: tuple[str, ...] = ()
    first_named: int = 0
    # Highest value a backwards range should be split at (weekday 7 repeats Sunday).
    wrap_high: int | None = None

    def value_of(self, token: str) -> int | None:
        """Return the number a token stands for, or None if it is neither."""
        if token.isdigit():
            return int(token)
        lowered = token.lower()
        if lowered in self.names:
            return self.names.index(lowered) + self.first_named
        return None

    def allowed(self) -> str:
        if not self.names:
            return f"{self.low}–{self.high}"
        return CRON_ALLOWED_WITH_NAMES % {
            "low": self.low,
            "high": self.high,
            "first": self.names[0],
            "last": self.names[-1],
        }


_SECOND = _CronField("second", _("second"), 0, 59)
_MINUTE = _CronField("minute", _("minute"), 0, 59)
_HOUR = _CronField("hour", _("hour"), 0, 23)
_DAY = _CronField("day", _("day"), 1, 31)
_MONTH = _CronField(
    "month",
    _("month"),
    1,
    12,
    names=(
        "jan",
        "feb",
        "mar",
        "apr",
        "may",
        "jun",
        "jul",
        "aug",
        "sep",
        "oct",
        "nov",
        "dec",
    ),
    first_named=1,
)
_WEEKDAY = _CronField(
    "day_of_week",
    _("weekday"),
    0,
    7,
    names=("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
    wrap_high=6,
)
# Five-field expressions get a leading "0" second, so one table serves both forms.
_FIELDS = (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, _WEEKDAY)


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
            elif self.skips_repeated_time and _is_repeated_wall_time(fire_at):
                probe_previous = probe_now = _last_repeated_instant(fire_at)
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


def _is_repeated_wall_time(moment: datetime) -> bool:
    """Tell whether `moment` is the second occurrence of a wall time (fall back)."""
    return moment.fold == 1 and (
        moment.replace(fold=0).utcoffset() != moment.utcoffset()
    )


def _offset(moment: datetime) -> timedelta:
    return moment.utcoffset() or timedelta(0)


def _last_repeated_instant(moment: datetime) -> datetime:
    """Return an instant in the last second of the repeated span holding `moment`."""
    zone = moment.tzinfo
    low = moment.astimezone(UTC)
    high = low + (_offset(moment.replace(fold=0)) - _offset(moment))
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if _is_repeated_wall_time(middle.astimezone(zone)):
            low = middle
        else:
            high = middle
    return low.astimezone(zone)


def _cron_error(
    message: str | Promise, expression: str, **params: Any
) -> ScheduleError:
    return ScheduleError(
        message % {"expression": expression, **params}, field="cron_expression"
    )


def _parse_field(text: str, field: _CronField, expression: str) -> set[int]:
    """Return the values a crontab field allows, in crontab's own numbering."""
    values: set[int] = set()
    for element in text.split(","):
        match = _ELEMENT_RE.fullmatch(element)
        if match is None or (match["start"] == "*" and match["end"] is not None):
            raise _cron_error(
                CRON_INVALID_VALUE,
                expression,
                field=field.label,
                value=element or text,
                allowed=field.allowed(),
            )
        bounds = []
        for token in (match["start"], match["end"]):
            if token is None or token == "*":
                continue
            value = field.value_of(token)
            if value is None:
                raise _cron_error(
                    CRON_INVALID_VALUE,
                    expression,
                    field=field.label,
                    value=element,
                    allowed=field.allowed(),
                )
            if not field.low <= value <= field.high:
                raise _cron_error(
                    CRON_OUT_OF_RANGE,
                    expression,
                    field=field.label,
                    value=token,
                    low=field.low,
                    high=field.high,
                )
            bounds.append(value)
        if match["start"] == "*":
            first, last = field.low, field.high
        elif match["end"] is not None:
            first, last = bounds
        elif match["step"] is not None:
            # "5/15" is not in Vixie cron; cronie and APScheduler read it as 5-max/15.
            first, last = bounds[0], field.high
        else:
            first = last = bounds[0]
        if first > last:
            raise _cron_error(
                CRON_BACKWARDS_RANGE,
                expression,
                field=field.label,
                value=element,
                suggestion=_split_backwards_range(match["start"], match["end"], field),
            )
        step = 1 if match["step"] is None else int(match["step"])
        if step == 0:
            raise _cron_error(
                CRON_ZERO_STEP, expression, field=field.label, value=element
            )
        if step > field.high - field.low:
            raise _cron_error(
                CRON_STEP_TOO_LARGE,
                expression,
                field=field.label,
                value=element,
                low=field.low,
                high=field.high,
            )
        values.update(range(first, last + 1, step))
    return values


def _split_backwards_range(start: str, end: str, field: _CronField) -> str:
    """Suggest the wrapped equivalent of a backwards range ("22-2" → "22-23,0-2")."""
    high = field.high if field.wrap_high is None else field.wrap_high
    if start.isdigit() or not field.names:
        high_text, low_text = str(high), str(field.low)
    else:
        high_text = field.names[high - field.first_named]
        low_text = field.names[field.low - field.first_named]
    parts = []
    start_value = field.value_of(start)
    if start_value is not None and start_value <= high:
        parts.append(start if start_value == high else f"{start}-{high_text}")
    parts.append(end if field.value_of(end) == field.low else f"{low_text}-{end}")
    return ",".join(parts)


def _compact(values: set[int], render: Callable[[int], str]) -> str:
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


def _apscheduler_value(values: set[int], field: _CronField) -> str:
    """Write crontab values for APScheduler, weekdays as names in its own numbering."""
    if field is _WEEKDAY:
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


def parse_cron(
    expression: str, *, tz: ZoneInfo, jitter_seconds: int = 0
) -> CronTrigger | OrTrigger:
    """Parse a crontab expression into a trigger with standard crontab semantics.

    Takes 5 fields, 6 with seconds first, or a macro such as @daily. Weekdays
    count from Sunday (0 or 7). When day of month and weekday are both restricted,
    a day matches if either does, as in Vixie cron; that schedule is an OrTrigger
    of two CrontabTriggers. Raises ScheduleError(field="cron_expression").
    """
    shown = expression.strip()
    if not shown:
        raise ScheduleError(str(CRON_MISSING), field="cron_expression")
    text = shown
    if shown.startswith("@"):
        macro = shown.lower()
        if macro == "@reboot":
            raise _cron_error(CRON_REBOOT, shown)
        if macro not in MACROS:
            known = ", ".join([*MACROS, "@reboot"])
            raise _cron_error(CRON_UNKNOWN_MACRO, shown, macros=known)
        text = MACROS[macro]

    parts = text.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    elif len(parts) != 6:
        raise _cron_error(CRON_FIELD_COUNT, shown, count=len(parts))
    values = {
        field.keyword: _parse_field(part, field, shown)
        for field, part in zip(_FIELDS, parts, strict=True)
    }

    # crontab calls a day field restricted unless it starts with "*", so "*/2" is not
    # restricted and combines with the weekday by AND (man 5 crontab, Vixie cron).
    day_restricted = not parts[3].startswith("*")
    weekday_restricted = not parts[5].startswith("*")
    either_day_matches = day_restricted and weekday_restricted
    # A date like Feb 30 sends APScheduler searching up to year 9999 on every call.
    day_can_match = any(
        day <= _MONTH_DAYS[month - 1]
        for month in values["month"]
        for day in values["day"]
    )
    if not day_can_match and not either_day_matches:
        raise _cron_error(CRON_NEVER_FIRES, shown, day=min(values["day"]))

    options: dict[str, Any] = {
        field.keyword: _apscheduler_value(values[field.keyword], field)
        for field in _FIELDS
    }
    # Cron's overlap rule applies to fixed-hour jobs only; hourly jobs run each hour.
    common: dict[str, Any] = {
        "timezone": tz,
        "skips_repeated_time": values["hour"] != set(range(24)),
    }
    jitter = jitter_seconds or None
    if not either_day_matches:
        return CrontabTrigger(**options, **common, jitter=jitter)
    weekday_options = {**options, "day": "*"}
    if not day_can_match:
        # "30 2 1": February has no 30th, so only the Mondays of February remain.
        return CrontabTrigger(**weekday_options, **common, jitter=jitter)
    by_day = CrontabTrigger(**{**options, "day_of_week": "*"}, **common)
    by_weekday = CrontabTrigger(**weekday_options, **common)
    # OrTrigger's min() compares same-zone datetimes as wall times, ignoring fold. It
    # is safe here: both parts share every time-of-day field, so on a day both allow
    # they return the same instant, and otherwise their answers fall on other days.
    return OrTrigger([by_day, by_weekday], jitter=jitter)


def resolve_timezone(name: str) -> ZoneInfo:
    """Return the zone named `name`; blank means settings.TIME_ZONE."""
    key = name or settings.TIME_ZONE
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: keys that are not a relative path, such as "/etc/passwd", or
        # hold a NUL; OSError: a key too long to be a file name.
        raise ScheduleError(
            TIMEZONE_UNKNOWN % {"name": key}, field="timezone"
        ) from None


def _in_zone(moment: datetime, tz: ZoneInfo) -> datetime:
    """Return `moment` in `tz`, reading a naive value as wall time in `tz`."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def _check_interval(interval_seconds: int | None) -> int:
    if interval_seconds is None:
        raise ScheduleError(str(INTERVAL_MISSING), field="interval_seconds")
    if (
        isinstance(interval_seconds, bool)
        or not isinstance(interval_seconds, int)
        or interval_seconds <= 0
    ):
        raise ScheduleError(
            INTERVAL_NOT_POSITIVE % {"value": interval_seconds},
            field="interval_seconds",
        )
    return interval_seconds


def build_trigger(
    *,
    task_type: str,
    cron_expression: str = "",
    interval_seconds: int | None = None,
    run_date: datetime | None = None,
    timezone_name: str = "",
    start_at: datetime | None = None,
    jitter_seconds: int = 0,
) -> BaseTrigger | None:
    """Return the APScheduler trigger for a schedule, or None for a manual task.

    An interval counts from `start_at` (default: now). Jitter applies to cron and
    interval triggers; a one-off date runs at its exact time. A naive run date or
    start is read as wall time in the task's zone.
    """
    if task_type not in TASK_TYPES:
        raise ScheduleError(TASK_TYPE_UNKNOWN % {"value": task_type}, field="task_type")
    tz = resolve_timezone(timezone_name)
    if (
        isinstance(jitter_seconds, bool)
        or not isinstance(jitter_seconds, int)
        or jitter_seconds < 0
    ):
        raise ScheduleError(
            JITTER_NEGATIVE % {"value": jitter_seconds}, field="jitter_seconds"
        )

    if task_type == "cron":
        return parse_cron(cron_expression or "", tz=tz, jitter_seconds=jitter_seconds)
    if task_type == "interval":
        seconds = _check_interval(interval_seconds)
        start = _in_zone(start_at or django_timezone.now(), tz)
        try:
            return IntervalTrigger(
                seconds=seconds,
                start_date=start,
                timezone=tz,
                jitter=jitter_seconds or None,
            )
        except OverflowError:
            # Beyond timedelta's range (about 2.7 million years): a row written
            # behind task_validate's back, whose bounds refuse far less.
            raise ScheduleError(
                INTERVAL_TOO_LONG % {"value": seconds}, field="interval_seconds"
            ) from None
    if task_type == "date":
        if run_date is None:
            raise ScheduleError(str(RUN_DATE_MISSING), field="run_date")
        try:
            return DateTrigger(run_date=_in_zone(run_date, tz), timezone=tz)
        except OverflowError:
            raise ScheduleError(str(RUN_DATE_RANGE), field="run_date") from None
    return None


def validate_schedule(
    *,
    task_type: str,
    cron_expression: str,
    interval_seconds: int | None,
    run_date: datetime | None,
    timezone_name: str,
    now: datetime | None = None,
    require_future_run_date: bool = False,
    jitter_seconds: int = 0,
) -> None:
    """Raise ScheduleError, with the field at fault, if the schedule cannot run.

    A run date must lie between RUN_DATE_MIN and RUN_DATE_MAX whatever the type
    (a stored one is converted to the task's zone), and ahead of `now` for a
    one-off task when `require_future_run_date`.
    """
    now = now or django_timezone.now()
    if run_date is not None:
        _check_run_date_range(run_date, resolve_timezone(timezone_name))
    build_trigger(
        task_type=task_type,
        cron_expression=cron_expression,
        interval_seconds=interval_seconds,
        run_date=run_date,
        timezone_name=timezone_name,
        start_at=now,
        jitter_seconds=jitter_seconds,
    )
    if task_type == "date" and require_future_run_date and run_date is not None:
        local_run_date = _in_zone(run_date, resolve_timezone(timezone_name))
        if local_run_date.timestamp() <= now.timestamp():
            raise ScheduleError(
                RUN_DATE_IN_PAST
                % {"run_date": local_run_date.strftime("%Y-%m-%d %H:%M")},
                field="run_date",
            )


def _check_run_date_range(run_date: datetime, tz: ZoneInfo) -> None:
    try:
        in_range = RUN_DATE_MIN <= _in_zone(run_date, tz) < RUN_DATE_MAX
    except OverflowError:  # year 1 or 9999 in a zone that moves it out of range
        in_range = False
    if not in_range:
        raise ScheduleError(str(RUN_DATE_RANGE), field="run_date")


def _zone_of(trigger: BaseTrigger) -> tzinfo | None:
    if isinstance(trigger, BaseCombiningTrigger):
        return _zone_of(trigger.triggers[0]) if trigger.triggers else None
    if isinstance(trigger, DateTrigger):
        zone: tzinfo | None = trigger.run_date.tzinfo
        return zone
    return getattr(trigger, "timezone", None)


def next_fire_times(
    trigger: BaseTrigger | None, *, after: datetime, count: int = 5
) -> list[datetime]:
    """Return up to `count` fire times strictly after `after`, in the trigger's zone.

    Fewer come back when the trigger ends (a date trigger gives one at most), none
    for a manual task (trigger None), and when the next one would lie beyond
    datetime's range (year 9999). The times strictly increase even if the
    trigger repeats itself.
    """
    if trigger is None or count <= 0:
        return []
    if after.tzinfo is None:
        raise ValueError("`after` must be an aware datetime.")
    zone = _zone_of(trigger)
    fire_times: list[datetime] = []
    previous: datetime | None = None
    now = after
    stalls = 0
    while len(fire_times) < count:
        try:
            fire_at = trigger.get_next_fire_time(previous, now)
            if fire_at is None:
                break
            floor = fire_times[-1] if fire_times else after
            # Compare instants: aware datetimes sharing a tzinfo compare as wall
            # times, which makes the two 01:30s of a fall-back night equal.
            if fire_at.timestamp() <= floor.timestamp():
                stalls += 1
                if stalls > _MAX_STALLS:
                    break
                previous = fire_at
                now = datetime.fromtimestamp(
                    max(fire_at.timestamp(), floor.timestamp()), UTC
                ) + timedelta(microseconds=1)
                continue
            local = fire_at.astimezone(zone) if zone else fire_at
        except (OverflowError, ValueError, OSError):
            # The next fire time lies past year 9999 (a long interval, jitter, a
            # cron date late in the calendar): datetime, fromtimestamp() or the
            # platform's time_t cannot hold it, so the schedule ends here.
            break
        stalls = 0
        fire_times.append(local)
        previous = now = fire_at
    return fire_times


def describe_interval(seconds: int) -> str:
    """Describe an interval for people: "every 5 minutes", "every 1 hour 30 minutes"."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        raise ValueError(
            f"An interval is a positive number of seconds, got {seconds!r}."
        )
    counts = []
    remaining = seconds
    for unit, unit_seconds in _UNIT_SECONDS:
        count, remaining = divmod(remaining, unit_seconds)
        if count:
            counts.append((unit, count))
    if len(counts) == 1:
        unit, count = counts[0]
        if count == 1:
            return str(_EVERY_SINGLE_UNIT[unit])
        return _EVERY_UNITS[unit] % {"count": count}
    duration = " ".join(_UNIT_COUNTS[unit] % {"count": count} for unit, count in counts)
    return EVERY_DURATION % {"duration": duration}


#: The instants dst_transitions_between probes: a day inside datetime's range, so
#: that a probe converted to any zone (offsets stay within a day) is a datetime.
_FIRST_SCANNABLE = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LAST_SCANNABLE = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


def dst_transitions_between(
    start: datetime, end: datetime, tz: ZoneInfo
) -> list[datetime]:
    """Return the instants in [start, end] at which `tz` changes its UTC offset.

    Each is the first wall time under the new offset (03:00 EDT, or 01:00 EST with
    fold=1). The scan is hourly, so two changes within one hour would go unseen;
    no zone has any. It costs one probe per hour of the span: callers bound it
    (schedule_preview looks DST_SCAN_HORIZON ahead at most). Instants within a
    day of datetime's limits are not scanned, so no probe overflows.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("`start` and `end` must be aware datetimes.")
    first = max(start.timestamp(), _FIRST_SCANNABLE)
    last = min(end.timestamp(), _LAST_SCANNABLE)
    if last < first:
        return []

    def offset_at(timestamp: int) -> timedelta | None:
        return datetime.fromtimestamp(timestamp, tz).utcoffset()

    # One second early, so that a change exactly at `start` is seen too.
    checked = math.floor(first) - 1
    checked_offset = offset_at(checked)
    transitions = []
    while checked < last:
        probe = min(checked + 3600, math.ceil(last))
        probe_offset = offset_at(probe)
        if probe_offset != checked_offset:
            low, high = checked, probe
            while high - low > 1:
                middle = (low + high) // 2
                if offset_at(middle) == checked_offset:
                    low = middle
                else:
                    high = middle
            # Compared as instants: same-zone datetimes compare as wall times.
            if first <= high <= last:
                transitions.append(datetime.fromtimestamp(high, tz))
        checked, checked_offset = probe, probe_offset
    return transitions
