"""Read-only previews of a schedule being edited: its next fire times and DST changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from ..schedules import (
    build_trigger,
    dst_transitions_between,
    next_fire_times,
    resolve_timezone,
    validate_schedule,
)


@dataclass(frozen=True)
class SchedulePreview:
    """The next fire times of a schedule (in its zone) and the DST changes among them."""

    timezone_name: str
    fire_times: list[dt.datetime]
    dst_transitions: list[dt.datetime]


def schedule_preview(
    *,
    task_type: str,
    cron_expression: str = "",
    interval_seconds: int | None = None,
    run_date: dt.datetime | None = None,
    timezone_name: str = "",
    now: dt.datetime | None = None,
    count: int = 5,
) -> SchedulePreview:
    """Preview the next `count` fire times after `now`; raise ScheduleError if invalid.

    Writes nothing. The DST changes are those between now and the last fire time
    shown, so a form can warn that the listed times straddle one.
    """
    now = now or timezone.now()
    validate_schedule(
        task_type=task_type,
        cron_expression=cron_expression,
        interval_seconds=interval_seconds,
        run_date=run_date,
        timezone_name=timezone_name,
        now=now,
    )
    zone = resolve_timezone(timezone_name)
    trigger = build_trigger(
        task_type=task_type,
        cron_expression=cron_expression,
        interval_seconds=interval_seconds,
        run_date=run_date,
        timezone_name=timezone_name,
        start_at=now,
    )
    times = [
        moment.astimezone(zone)
        for moment in next_fire_times(trigger, after=now, count=count)
    ]
    transitions = dst_transitions_between(now, times[-1], zone) if times else []
    return SchedulePreview(
        timezone_name=zone.key, fire_times=times, dst_transitions=transitions
    )
