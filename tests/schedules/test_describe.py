"""Schedules in words: intervals, cron expressions, every kind."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.utils import timezone, translation

from scheduler_app.schedules import Schedule, describe_cron, describe_interval

from .helpers import SHANGHAI, UTC


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


@pytest.mark.parametrize(
    ("language", "expression", "text"),
    [
        ("en", "0 2 * * *", "At 02:00 AM"),
        ("en", "@daily", "At 12:00 AM"),
        ("en", "0 9 * * mon", "At 09:00 AM, only on Monday"),
        ("zh-hans", "0 2 * * *", "在 02:00"),
        ("zh-hans", "0 9 * * mon", "在 09:00, 仅在 星期一"),
        ("zh-hans", "0 0 1 jan *", "在 00:00, 每月的 1 号, 仅在 一月"),
        ("fr", "0 9 * * mon", "À 09:00, uniquement le lundi"),
    ],
)
def test_describe_cron_in_the_active_language(
    language: str, expression: str, text: str
) -> None:
    with translation.override(language):
        assert describe_cron(expression) == text


def test_describe_cron_of_a_blank_expression_is_empty() -> None:
    assert describe_cron("  ") == ""


def test_describe_cron_falls_back_to_the_expression_it_cannot_read() -> None:
    assert describe_cron("not a cron") == "not a cron"


def test_describe_interval_in_chinese() -> None:
    with translation.override("zh-hans"):
        assert describe_interval(5400) == "每 1 小时 30 分钟"


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        pytest.param(Schedule("cron", cron="0 2 * * *"), "At 02:00 AM", id="cron"),
        pytest.param(
            Schedule("interval", every_seconds=300), "every 5 minutes", id="interval"
        ),
        pytest.param(
            Schedule("date", run_date=datetime(2030, 1, 31, 2, tzinfo=UTC)),
            "once, at 2030-01-31 10:00",
            id="date-in-the-current-zone",
        ),
        pytest.param(Schedule("manual"), "only when run by hand", id="manual"),
        pytest.param(Schedule("interval"), "", id="interval-without-seconds"),
        pytest.param(Schedule("date"), "", id="date-without-run-date"),
        pytest.param(Schedule("weekly"), "", id="unknown-kind"),
    ],
)
def test_a_schedule_describes_itself(schedule: Schedule, text: str) -> None:
    with translation.override("en"), timezone.override(SHANGHAI):
        assert schedule.describe() == text


def test_a_schedule_describes_itself_in_chinese() -> None:
    with translation.override("zh-hans"), timezone.override(SHANGHAI):
        assert Schedule("manual").describe() == "仅手动运行"
        assert (
            Schedule("date", run_date=datetime(2030, 1, 31, 2, tzinfo=UTC)).describe()
            == "仅一次，于 2030-01-31 10:00"
        )
