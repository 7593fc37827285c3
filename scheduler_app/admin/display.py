"""Admin presentation helpers: badges, handler text, times, schedules, a run chart."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..choices import AlertKind, DeliveryStatus, HealthState
from ..controls import CONTROL_CHARACTERS, control_name
from ..models import ScheduledTask, TaskExecution
from ..schedules import Schedule
from ..storable import storable_json

EMPTY = "—"
#: Absolute times in lists and previews: unambiguous in every language.
DATETIME_FORMAT = "Y-m-d H:i"
DATETIME_SECONDS_FORMAT = "Y-m-d H:i:s"

#: Failures shown as a status of their own (a badge colour, a filter choice).
FAILURE_KINDS_SHOWN = (
    TaskExecution.FailureKind.TIMEOUT.value,
    TaskExecution.FailureKind.ABANDONED.value,
)
#: The status words that have a badge colour in scheduler_app/admin.css.
BADGE_STATUSES = frozenset(
    [
        *ScheduledTask.Status.values,
        *TaskExecution.Status.values,
        *FAILURE_KINDS_SHOWN,
        *AlertKind.values,
        *DeliveryStatus.values,
    ]
)


def status_badge(value: str, label: Any) -> str:
    """A coloured pill for a task or execution status."""
    css = value if value in BADGE_STATUSES else "unknown"
    return format_html(
        '<span class="scheduler-badge scheduler-badge--{}" data-status="{}">{}</span>',
        css,
        value,
        label,
    )


def execution_badge(execution: TaskExecution) -> str:
    """An execution's status badge; a timed-out or abandoned failure says so."""
    if execution.status == TaskExecution.Status.FAILED and execution.failure_kind in (
        TaskExecution.FailureKind.TIMEOUT,
        TaskExecution.FailureKind.ABANDONED,
    ):
        return status_badge(
            execution.failure_kind, execution.get_failure_kind_display()
        )
    return status_badge(execution.status, execution.get_status_display())


def visible_text(text: str) -> SafeString:
    """A handler's text for a page: HTML-escaped, control characters shown.

    Each control character but newline and tab (`controls.CONTROL_CHARACTERS`)
    becomes a muted span reading as Python writes it (``\\x1b``, ``\\r``), with
    its code point in the tooltip: an ANSI colour code is seen for what it is,
    and told apart from a handler's own backslashes.
    """
    pieces = []
    shown = 0
    for match in CONTROL_CHARACTERS.finditer(text):
        char = match.group()
        pieces.append(escape(text[shown : match.start()]))
        pieces.append(
            format_html(
                '<span class="scheduler-control" title="U+{}">{}</span>',
                "%04X" % ord(char),
                control_name(char),
            )
        )
        shown = match.end()
    pieces.append(escape(text[shown:]))
    return mark_safe("".join(pieces))  # noqa: S308 - every piece is escaped above


def preformatted(text: str) -> str:
    """A handler's text in a <pre>, as `visible_text` shows it; a dash when empty."""
    if not text:
        return EMPTY
    return format_html('<pre class="scheduler-pre">{}</pre>', visible_text(text))


def pretty_json(value: Any) -> str:
    """JSON indented for reading, escaped, in a <pre>.

    Made storable first: a lone surrogate stored before that was done on the
    way in (SQLite's JSON text keeps it as an escape) cannot be sent as UTF-8.
    JSON escapes most control characters itself; DEL and C1 ones are shown by
    `visible_text`.
    """
    if value in (None, "", {}, []):
        return EMPTY
    return preformatted(
        json.dumps(
            storable_json(value),
            indent=2,
            ensure_ascii=False,
            sort_keys=True,
            default=str,
        )
    )


#: How much of an error message a table cell shows (the run's page has it all).
SUMMARY_CHARS = 200


def shown_message(text: str) -> str:
    """A stored message in the reader's language when it is one of the product's
    own fixed messages ("Cancelled on request."), written in the language of
    the process that ended the run; any other text as it is."""
    return gettext(text) if text else text


def error_summary(text: str) -> str:
    """The start of an error message for a table cell, as `visible_text` shows it."""
    if not text:
        return EMPTY
    return visible_text(Truncator(shown_message(text)).chars(SUMMARY_CHARS))


# Times


def relative_time(value: dt.datetime, *, now: dt.datetime | None = None) -> str:
    """'in 3 hours' or '5 minutes ago', in the active language."""
    now = now or timezone.now()
    seconds = (value - now).total_seconds()
    if abs(seconds) < 60:
        return gettext("in less than a minute") if seconds >= 0 else gettext("just now")
    if seconds > 0:
        return gettext("in %(time)s") % {"time": timeuntil(value, now, depth=1)}
    return gettext("%(time)s ago") % {"time": timesince(value, now, depth=1)}


def absolute_time(value: dt.datetime, *, seconds: bool = False) -> str:
    """A moment in the current time zone, e.g. 2025-01-06 02:00."""
    return date_format(
        timezone.localtime(value),
        DATETIME_SECONDS_FORMAT if seconds else DATETIME_FORMAT,
    )


def seconds_or_empty(value: dt.datetime | None) -> str:
    """A moment to the second (a run's times, wherever they are shown), or —."""
    return absolute_time(value, seconds=True) if value is not None else EMPTY


def time_with_relative(
    value: dt.datetime | None, *, now: dt.datetime | None = None
) -> str:
    """Absolute time with the relative one beneath it (both in the cell)."""
    if value is None:
        return EMPTY
    return format_html(
        '<span class="scheduler-when" title="{}">{}<br><small>{}</small></span>',
        value.isoformat(),
        absolute_time(value),
        relative_time(value, now=now),
    )


#: The colour of each health state (scheduler_app/admin.css): good, quiet,
#: warning, bad.
HEALTH_TONES = {
    HealthState.UP: "good",
    HealthState.NEW: "quiet",
    HealthState.PAUSED: "quiet",
    HealthState.LATE: "warning",
    HealthState.RUNNING_LONG: "warning",
    HealthState.FAILING: "bad",
    HealthState.MISSED: "bad",
}


def health_since_text(since: dt.datetime | None) -> str:
    """'Since 2025-01-06 02:00 (5 minutes ago)', or that it was never checked."""
    if since is None:
        return gettext("Not checked by a scheduler yet")
    return gettext("Since %(time)s (%(relative)s)") % {
        "time": absolute_time(since),
        "relative": relative_time(since),
    }


def health_badge(value: str, since: dt.datetime | None = None) -> str:
    """A coloured pill for a task's health state, since when in its title."""
    label: Any = value
    tone = "quiet"
    if value in HealthState.values:
        state = HealthState(value)
        label, tone = state.label, HEALTH_TONES[state]
    return format_html(
        '<span class="scheduler-health scheduler-health--{}" data-health="{}" '
        'title="{}">{}</span>',
        tone,
        value,
        health_since_text(since),
        label,
    )


def format_duration(milliseconds: float | None) -> str:
    """850 ms, 2.4 s, 3 min 5 s, 1 h 2 min."""
    if milliseconds is None:
        return EMPTY
    milliseconds = float(milliseconds)
    if milliseconds < 1000:
        return gettext("%(count)d ms") % {"count": round(milliseconds)}
    seconds = milliseconds / 1000
    if seconds < 60:
        return gettext("%(count).1f s") % {"count": seconds}
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return gettext("%(minutes)d min %(seconds)d s") % {
            "minutes": minutes,
            "seconds": seconds,
        }
    hours, minutes = divmod(minutes, 60)
    return gettext("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}


# Schedules


def describe_schedule(task: ScheduledTask) -> str:
    """The task's schedule in words; the cron expression itself in the tooltip."""
    schedule = Schedule.of(task)
    if schedule.kind == ScheduledTask.TaskType.CRON:
        return format_html(
            '<span title="{}">{}</span><br><code class="scheduler-code">{}</code>',
            schedule.cron,
            schedule.describe(),
            schedule.cron,
        )
    return schedule.describe() or EMPTY


# The run history chart

CHART_HEIGHT = 60
CHART_BAR_WIDTH = 10
CHART_GAP = 3
CHART_TITLE = _("Duration of the latest runs, oldest first (colour: outcome)")


def runs_chart(runs: Sequence[TaskExecution]) -> str:
    """An inline SVG bar chart: one bar per run, height = duration, colour = outcome.

    Each bar links to its execution and names it in a tooltip.
    """
    if not runs:
        return EMPTY
    longest = max((run.duration_ms or 0 for run in runs), default=0) or 1
    bars = []
    for index, run in enumerate(runs):
        height = max(2, round((run.duration_ms or 0) / longest * (CHART_HEIGHT - 2)))
        status = (
            run.failure_kind
            if run.status == TaskExecution.Status.FAILED
            and run.failure_kind in FAILURE_KINDS_SHOWN
            else run.status
        )
        bars.append(
            (
                reverse("admin:scheduler_app_taskexecution_change", args=[run.pk]),
                index * (CHART_BAR_WIDTH + CHART_GAP),
                CHART_HEIGHT - height,
                CHART_BAR_WIDTH,
                height,
                status,
                "#%s %s · %s · %s"
                % (
                    run.pk,
                    run.get_status_display(),
                    format_duration(run.duration_ms),
                    absolute_time(run.created_at),
                ),
            )
        )
    width = len(runs) * (CHART_BAR_WIDTH + CHART_GAP)
    return format_html(
        '<svg class="scheduler-chart" width="{}" height="{}" viewBox="0 0 {} {}" '
        'role="img" aria-label="{}"><title>{}</title>{}</svg>',
        width,
        CHART_HEIGHT,
        width,
        CHART_HEIGHT,
        CHART_TITLE,
        CHART_TITLE,
        format_html_join(
            "",
            '<a href="{}"><rect x="{}" y="{}" width="{}" height="{}" '
            'class="scheduler-bar scheduler-bar--{}"><title>{}</title></rect></a>',
            bars,
        ),
    )


def duration_summary(runs: Sequence[TaskExecution]) -> str:
    """min / avg / max duration of the finished runs among `runs`."""
    durations = [run.duration_ms for run in runs if run.duration_ms is not None]
    if not durations:
        return gettext("No finished run yet.")
    return gettext(
        "min %(min)s · avg %(avg)s · max %(max)s (latest %(count)d runs)"
    ) % {
        "min": format_duration(min(durations)),
        "avg": format_duration(sum(durations) / len(durations)),
        "max": format_duration(max(durations)),
        "count": len(durations),
    }
