"""The Schedule value: when a task fires, checked, as a trigger, as fire times, in words.

A task's six schedule fields travel together as one Schedule (Schedule.of(task));
the messages here say how to fix the fields other than the cron expression (those
are in cron.py). Pure scheduling: no models, so every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils import timezone as django_timezone
from django.utils.translation import gettext_lazy as _

from scheduler_app.choices import TaskType
from scheduler_app.exceptions import ScheduleError

from .describe import describe
from .dst import dst_transitions_between
from .fire_times import next_fire_times
from .triggers import Trigger, cron_trigger, date_trigger, interval_trigger

#: ScheduledTask.TaskType's values (from choices: models stay unimported, so every
#: layer can use this module).
TASK_TYPES = tuple(TaskType.values)
#: Run dates are kept where every time zone has whole-minute offsets (before 1970
#: some zones used local mean time, e.g. +08:05:43) and far from datetime's limit
#: (year 9999), so converting one to any zone and adding a delay never overflows.
RUN_DATE_MIN = datetime(1970, 1, 2, tzinfo=UTC)
RUN_DATE_MAX = datetime(9000, 1, 1, tzinfo=UTC)

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


def _check_run_date_range(run_date: datetime, tz: ZoneInfo) -> None:
    try:
        in_range = RUN_DATE_MIN <= _in_zone(run_date, tz) < RUN_DATE_MAX
    except OverflowError:  # year 1 or 9999 in a zone that moves it out of range
        in_range = False
    if not in_range:
        raise ScheduleError(str(RUN_DATE_RANGE), field="run_date")


class ScheduledLike(Protocol):
    """What Schedule.of reads: a ScheduledTask, or anything with its schedule fields."""

    @property
    def task_type(self) -> str: ...
    @property
    def cron_expression(self) -> str: ...
    @property
    def interval_seconds(self) -> int | None: ...
    @property
    def run_date(self) -> datetime | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def jitter_seconds(self) -> int: ...


@dataclass(frozen=True)
class Schedule:
    """When a task fires: its kind and the fields that kind reads.

    A plain value, built from a task (Schedule.of) or from a form's fields; it
    checks nothing until validate() or trigger() is called. A blank zone means
    settings.TIME_ZONE; a naive run date is wall time in the zone.
    """

    #: A ScheduledTask.TaskType value: cron, interval, date or manual.
    kind: str
    cron: str = ""
    every_seconds: int | None = None
    run_date: datetime | None = None
    zone: str = ""
    jitter_seconds: int = 0

    @classmethod
    def of(cls, task: ScheduledLike) -> Schedule:
        """The schedule of a task (its task_type, cron_expression, ... fields)."""
        return cls(
            kind=task.task_type,
            cron=task.cron_expression,
            every_seconds=task.interval_seconds,
            run_date=task.run_date,
            zone=task.timezone,
            jitter_seconds=task.jitter_seconds,
        )

    @property
    def tz(self) -> ZoneInfo:
        """The zone the schedule reads wall times in; ScheduleError if unknown."""
        return resolve_timezone(self.zone)

    def validate(
        self, *, now: datetime | None = None, require_future_run_date: bool = False
    ) -> None:
        """Raise ScheduleError, with the field at fault, if the schedule cannot run.

        A run date must lie between RUN_DATE_MIN and RUN_DATE_MAX whatever the kind
        (a stored one is converted to the zone), and ahead of `now` for a one-off
        task when `require_future_run_date`.
        """
        now = now or django_timezone.now()
        if self.run_date is not None:
            _check_run_date_range(self.run_date, self.tz)
        self.trigger(start_at=now)
        if (
            self.kind == TaskType.DATE
            and require_future_run_date
            and self.run_date is not None
        ):
            local_run_date = _in_zone(self.run_date, self.tz)
            if local_run_date.timestamp() <= now.timestamp():
                raise ScheduleError(
                    RUN_DATE_IN_PAST
                    % {"run_date": local_run_date.strftime("%Y-%m-%d %H:%M")},
                    field="run_date",
                )

    def trigger(self, *, start_at: datetime | None = None) -> Trigger | None:
        """Return the APScheduler trigger, or None for a manual task.

        An interval counts from `start_at` (default: now). Jitter applies to cron
        and interval triggers; a one-off date runs at its exact time. Raises
        ScheduleError, with the field at fault, if the schedule cannot run.
        """
        if self.kind not in TASK_TYPES:
            raise ScheduleError(
                TASK_TYPE_UNKNOWN % {"value": self.kind}, field="task_type"
            )
        tz = self.tz
        jitter = self.jitter_seconds
        if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
            raise ScheduleError(
                JITTER_NEGATIVE % {"value": jitter}, field="jitter_seconds"
            )

        if self.kind == TaskType.CRON:
            return cron_trigger(self.cron or "", tz=tz, jitter_seconds=jitter)
        if self.kind == TaskType.INTERVAL:
            seconds = _check_interval(self.every_seconds)
            start = _in_zone(start_at or django_timezone.now(), tz)
            try:
                return interval_trigger(
                    seconds=seconds, start=start, tz=tz, jitter_seconds=jitter
                )
            except OverflowError:
                # Beyond timedelta's range (about 2.7 million years): a row written
                # behind task_validate's back, whose bounds refuse far less.
                raise ScheduleError(
                    INTERVAL_TOO_LONG % {"value": seconds}, field="interval_seconds"
                ) from None
        if self.kind == TaskType.DATE:
            if self.run_date is None:
                raise ScheduleError(str(RUN_DATE_MISSING), field="run_date")
            try:
                return date_trigger(run_date=_in_zone(self.run_date, tz), tz=tz)
            except OverflowError:
                raise ScheduleError(str(RUN_DATE_RANGE), field="run_date") from None
        return None

    def next_fire_times(
        self, *, after: datetime, count: int = 5, start_at: datetime | None = None
    ) -> list[datetime]:
        """Up to `count` fire times strictly after `after` (aware), in the zone.

        An interval counts from `start_at` (default: `after`). Raises ScheduleError
        as trigger() does; see next_fire_times for when fewer come back.
        """
        trigger = self.trigger(start_at=start_at or after)
        zone = self.tz
        return [
            moment.astimezone(zone)
            for moment in next_fire_times(trigger, after=after, count=count)
        ]

    def dst_transitions(self, *, start: datetime, end: datetime) -> list[datetime]:
        """The instants in [start, end] at which the zone changes its UTC offset."""
        return dst_transitions_between(start, end, self.tz)

    def describe(self) -> str:
        """The schedule in words, in the active language ("" if it says nothing)."""
        return describe(self)
