"""Schedules in words, in the active language: cron, interval, one-off and manual.

Cron expressions go through cron-descriptor (with day and month names from
Django's catalog); intervals and the rest through this app's own messages.
"""

from __future__ import annotations

import calendar
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import cron_descriptor
from django.utils import timezone
from django.utils.dates import MONTHS, WEEKDAYS
from django.utils.formats import date_format
from django.utils.translation import get_language, gettext, ngettext_lazy, to_locale
from django.utils.translation import gettext_lazy as _

from ..choices import TaskType
from .cron import MACROS

if TYPE_CHECKING:
    from .schedule import Schedule

logger = logging.getLogger(__name__)

#: A run date in words: absolute, in the current time zone, as the admin shows times.
RUN_DATE_FORMAT = "Y-m-d H:i"

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


# Cron expressions

_CRON_LOCALES = frozenset(
    path.stem
    for path in (Path(cron_descriptor.__file__).parent / "locale").glob("*.mo")
)
# Django language codes whose cron-descriptor locale is not simply lang_LANG.
_CRON_LOCALE_ALIASES = {"zh-hans": "zh_CN", "zh-hant": "zh_TW", "en": "en_US"}
_CRON_ERRORS = (
    cron_descriptor.FormatException,
    cron_descriptor.MissingFieldException,
    cron_descriptor.WrongArgumentException,
    ValueError,
    IndexError,
    KeyError,
)


def _cron_locale(language: str) -> str:
    language = (language or "en").lower()
    if language in _CRON_LOCALE_ALIASES:
        return _CRON_LOCALE_ALIASES[language]
    code = to_locale(language)
    if code in _CRON_LOCALES:
        return code
    base = code.split("_")[0]
    return next(
        (name for name in sorted(_CRON_LOCALES) if name.split("_")[0] == base), "en_US"
    )


def _translate_names(text: str) -> str:
    """cron-descriptor names days and months in the process locale (English here)."""
    # calendar.day_name starts on Monday, as Django's WEEKDAYS does.
    for index, english in enumerate(calendar.day_name):
        text = re.sub(r"\b%s\b" % english, str(WEEKDAYS[index]), text)
    for index, english in enumerate(calendar.month_name[1:], start=1):
        text = re.sub(r"\b%s\b" % english, str(MONTHS[index]), text)
    return text


@lru_cache(maxsize=2048)
def _describe_cron(expression: str, language: str) -> str:
    text = MACROS.get(expression.strip().lower(), expression.strip())
    locale_code = _cron_locale(language)
    options = cron_descriptor.Options(
        locale_code=locale_code,
        use_24hour_time_format=not locale_code.startswith("en"),
    )
    try:
        description = cron_descriptor.ExpressionDescriptor(
            text, options
        ).get_description()
    except _CRON_ERRORS:
        logger.debug("No description for cron expression %r", expression, exc_info=True)
        return expression
    if not language.lower().startswith("en"):
        description = _translate_names(description)
    return description


def describe_cron(expression: str) -> str:
    """A cron expression in words, in the active language ('At 02:00 AM', '在 02:00')."""
    if not expression.strip():
        return ""
    return _describe_cron(expression, get_language() or "en")


def describe(schedule: Schedule) -> str:
    """A schedule in words ("every 5 minutes", "At 02:00"); "" when it says nothing.

    A one-off date is shown in the current time zone.
    """
    if schedule.kind == TaskType.CRON:
        return describe_cron(schedule.cron)
    if schedule.kind == TaskType.INTERVAL and schedule.every_seconds:
        return str(describe_interval(schedule.every_seconds))
    if schedule.kind == TaskType.DATE and schedule.run_date:
        when = date_format(timezone.localtime(schedule.run_date), RUN_DATE_FORMAT)
        return gettext("once, at %(when)s") % {"when": when}
    if schedule.kind == TaskType.MANUAL:
        return gettext("only when run by hand")
    return ""
