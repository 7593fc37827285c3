"""System checks that validate the SCHEDULER_* settings at startup."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.checks import Error, Warning, register

from .conf import app_settings


@register()
def check_scheduler_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    if app_settings.SCHEDULER_EXECUTOR not in ("inline", "celery"):
        problems.append(
            Error(
                "SCHEDULER_EXECUTOR must be 'inline' or 'celery', not %r."
                % app_settings.SCHEDULER_EXECUTOR,
                id="scheduler_app.E001",
            )
        )
    for name in (
        "SCHEDULER_HISTORY_DAYS",
        "SCHEDULER_THREAD_POOL_SIZE",
        "SCHEDULER_LEADER_LOCK_TTL",
        "SCHEDULER_TASK_LOCK_TTL",
        "SCHEDULER_LOG_BUFFER_MAX_LINES",
    ):
        if int(getattr(app_settings, name)) <= 0:
            problems.append(
                Error("%s must be a positive number." % name, id="scheduler_app.E002")
            )
    ttl = app_settings.SCHEDULER_LEADER_LOCK_TTL
    refresh = app_settings.SCHEDULER_LEADER_LOCK_REFRESH_INTERVAL
    if refresh <= 0 or refresh * 2 > ttl:
        problems.append(
            Error(
                "SCHEDULER_LEADER_LOCK_REFRESH_INTERVAL (%s) must be positive and at most "
                "half of SCHEDULER_LEADER_LOCK_TTL (%s), or the lease can expire between "
                "two refreshes." % (refresh, ttl),
                id="scheduler_app.E003",
            )
        )
    if app_settings.SCHEDULER_LOG_PUBLISH_INTERVAL <= 0:
        problems.append(
            Error(
                "SCHEDULER_LOG_PUBLISH_INTERVAL must be a positive number of seconds.",
                id="scheduler_app.E004",
            )
        )
    try:
        ZoneInfo(settings.TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            Error("TIME_ZONE %r is not a known time zone." % settings.TIME_ZONE,
                  id="scheduler_app.E005")
        )
    from pathlib import Path

    if not Path(app_settings.SCHEDULER_SCRIPTS_PATH).is_dir():
        problems.append(
            Warning(
                "SCHEDULER_SCRIPTS_PATH %s is not a folder: no scripts:<file> handlers "
                "will be found." % app_settings.SCHEDULER_SCRIPTS_PATH,
                id="scheduler_app.W001",
            )
        )
    return problems
