"""The messages for a bad cron expression, time zone or schedule field, word for word."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pytest_django.fixtures import Settings

from scheduler_app.exceptions import ScheduleError
from scheduler_app.schedules import Schedule, cron_trigger, resolve_timezone

from .helpers import SAT_1_MARCH_SHANGHAI, UTC, cron_times

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
        cron_trigger(expression, tz=UTC)

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
        cron_trigger(expression, tz=UTC)

    assert excinfo.value.field == "cron_expression"


@pytest.mark.parametrize("expression", ["", "   "])
def test_blank_cron_expression_asks_for_one(expression: str) -> None:
    message = "Enter a cron expression, e.g. “0 2 * * *” for every day at 02:00."

    with pytest.raises(ScheduleError, match=f"^{re.escape(message)}$") as excinfo:
        cron_trigger(expression, tz=UTC)

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
            {"kind": "interval", "every_seconds": 0},
            "interval_seconds",
            "Interval must be a positive number of seconds, got 0.",
            id="zero-interval",
        ),
        pytest.param(
            {"kind": "interval", "every_seconds": -5},
            "interval_seconds",
            "Interval must be a positive number of seconds, got -5.",
            id="negative-interval",
        ),
        pytest.param(
            {"kind": "interval", "every_seconds": 1.5},
            "interval_seconds",
            "Interval must be a positive number of seconds, got 1.5.",
            id="fractional-interval",
        ),
        pytest.param(
            {"kind": "interval"},
            "interval_seconds",
            "Enter an interval in seconds, e.g. 300 for every 5 minutes.",
            id="missing-interval",
        ),
        pytest.param(
            {"kind": "cron"},
            "cron_expression",
            "Enter a cron expression, e.g. “0 2 * * *” for every day at 02:00.",
            id="missing-cron-expression",
        ),
        pytest.param(
            {"kind": "date"},
            "run_date",
            "Enter a run date: a one-off task runs once, at that time.",
            id="missing-run-date",
        ),
        pytest.param(
            {"kind": "manual", "zone": "Mars/Base"},
            "timezone",
            "Unknown time zone “Mars/Base”: use an IANA name such as Asia/Shanghai "
            "or UTC.",
            id="unknown-zone",
        ),
        pytest.param(
            {"kind": "weekly"},
            "task_type",
            "Unknown task type “weekly”: use cron, interval, date or manual.",
            id="unknown-task-type",
        ),
        pytest.param(
            {"kind": "cron", "cron": "@daily", "jitter_seconds": -1},
            "jitter_seconds",
            "Jitter must be zero or a positive number of seconds, got -1.",
            id="negative-jitter",
        ),
    ],
)
def test_schedule_trigger_refuses_a_bad_schedule(
    options: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ScheduleError, match=f"^{re.escape(message)}$") as excinfo:
        Schedule(**options).trigger(start_at=SAT_1_MARCH_SHANGHAI)

    assert excinfo.value.field == field


@pytest.mark.parametrize("name", ["x" * 300, "a\x00b"])
def test_a_zone_name_no_file_can_have_is_unknown(name: str) -> None:
    with pytest.raises(ScheduleError, match="Unknown time zone"):
        resolve_timezone(name)
