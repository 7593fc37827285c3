"""Crontab parsing: the field table, the messages for bad expressions, parse_crontab.

Pure crontab semantics, in crontab's own numbering (weekdays from Sunday = 0 or 7);
writing the result for APScheduler is the business of triggers.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from scheduler_app.exceptions import ScheduleError

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

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# February counts 29 days: a cron for Feb 29 is valid, it fires in leap years.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ELEMENT_RE = re.compile(
    r"(?P<start>\*|[0-9a-z]+)(?:-(?P<end>[0-9a-z]+))?(?:/(?P<step>[0-9]+))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CronField:
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


SECOND = CronField("second", _("second"), 0, 59)
MINUTE = CronField("minute", _("minute"), 0, 59)
HOUR = CronField("hour", _("hour"), 0, 23)
DAY = CronField("day", _("day"), 1, 31)
MONTH = CronField(
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
WEEKDAY = CronField(
    "day_of_week",
    _("weekday"),
    0,
    7,
    names=("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
    wrap_high=6,
)
# Five-field expressions get a leading "0" second, so one table serves both forms.
FIELDS = (SECOND, MINUTE, HOUR, DAY, MONTH, WEEKDAY)


def _cron_error(
    message: str | Promise, expression: str, **params: Any
) -> ScheduleError:
    return ScheduleError(
        message % {"expression": expression, **params}, field="cron_expression"
    )


def _parse_field(text: str, field: CronField, expression: str) -> set[int]:
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
        if (
            first > last == field.low
            and field.wrap_high is not None
            and match["end"] is not None
        ):
            # "mon-sun", "wed-0": Sunday ends the range as 7, as cronie reads it.
            last = field.high
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


def _split_backwards_range(start: str, end: str, field: CronField) -> str:
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


@dataclass(frozen=True)
class Crontab:
    """A parsed crontab line: the values each field allows, in crontab's numbering.

    `values` is keyed by the fields' APScheduler keywords (second ... day_of_week);
    a five-field line has second {0}.
    """

    expression: str
    values: dict[str, frozenset[int]]
    day_restricted: bool
    weekday_restricted: bool

    @property
    def either_day_matches(self) -> bool:
        """Day of month and weekday both restricted: a day matches if either does."""
        return self.day_restricted and self.weekday_restricted

    @property
    def day_can_match(self) -> bool:
        """Whether some allowed month has some allowed day (Feb 30 has none)."""
        return any(
            day <= _MONTH_DAYS[month - 1]
            for month in self.values["month"]
            for day in self.values["day"]
        )

    @property
    def every_hour(self) -> bool:
        return self.values["hour"] == frozenset(range(24))


def parse_crontab(expression: str) -> Crontab:
    """Parse a crontab expression: 5 fields, 6 with seconds first, or a macro.

    Weekdays count from Sunday (0 or 7). Raises ScheduleError(field="cron_expression")
    with a message that says how to fix the expression, also when it never fires.
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
    crontab = Crontab(
        expression=shown,
        values={
            field.keyword: frozenset(_parse_field(part, field, shown))
            for field, part in zip(FIELDS, parts, strict=True)
        },
        # crontab calls a day field restricted unless it starts with "*", so "*/2"
        # is not restricted and combines with the weekday by AND (man 5 crontab).
        day_restricted=not parts[3].startswith("*"),
        weekday_restricted=not parts[5].startswith("*"),
    )
    # A date like Feb 30 sends APScheduler searching up to year 9999 on every call.
    if not crontab.day_can_match and not crontab.either_day_matches:
        raise _cron_error(CRON_NEVER_FIRES, shown, day=min(crontab.values["day"]))
    return crontab
