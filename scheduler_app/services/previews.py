"""Read-only previews of a schedule being edited: its next fire times and DST changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from ..schedules import Schedule
from .validation import task_fields_validate

#: How far ahead the preview looks for DST changes among the fire times: the scan
#: is hourly, and a schedule may span centuries (5 fires 68 years apart).
DST_SCAN_HORIZON = dt.timedelta(days=5 * 366)


@dataclass(frozen=True)
class SchedulePreview:
    """The next fire times of a schedule (in its zone) and the DST changes among them."""

    timezone_name: str
    fire_times: list[dt.datetime]
    dst_transitions: list[dt.datetime]


def schedule_preview(
    *, schedule: Schedule, now: dt.datetime | None = None, count: int = 5
) -> SchedulePreview:
    """Preview the next `count` fire times after `now`; raise SchedulerError if invalid.

    Writes nothing. The fields are checked as task_validate checks them (the
    interval's bounds included), and a one-off date must lie ahead. The DST
    changes are those between now and the last fire time shown (within
    DST_SCAN_HORIZON), so a form can warn that the listed times straddle one.
    """
    now = now or timezone.now()
    errors = task_fields_validate(
        {
            "interval_seconds": schedule.every_seconds,
            "cron_expression": schedule.cron,
            "timezone": schedule.zone,
        }
    )
    if errors:
        raise errors[0]
    # A one-off date already past would never fire: said, not previewed as "no
    # fire" (the form refuses to save such a date as a change, too).
    schedule.validate(now=now, require_future_run_date=True)
    zone = schedule.tz
    times = schedule.next_fire_times(after=now, count=count)
    transitions = (
        schedule.dst_transitions(start=now, end=min(times[-1], now + DST_SCAN_HORIZON))
        if times
        else []
    )
    return SchedulePreview(
        timezone_name=zone.key, fire_times=times, dst_transitions=transitions
    )
