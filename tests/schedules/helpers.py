"""Zones, a reference moment and helpers shared by the schedule tests."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from scheduler_app.schedules import cron_trigger, next_fire_times

UTC = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
# Saturday 2025-03-01, midnight in Shanghai (no DST there).
SAT_1_MARCH_SHANGHAI = datetime(2025, 3, 1, tzinfo=SHANGHAI)


def cron_times(
    expression: str, *, after: datetime, count: int = 5, tz: ZoneInfo = SHANGHAI
) -> list[str]:
    """Next fire times as ISO strings: they show the offset, which equality hides."""
    trigger = cron_trigger(expression, tz=tz)
    return [
        moment.isoformat()
        for moment in next_fire_times(trigger, after=after, count=count)
    ]


def assert_strictly_increasing_instants(times: list[datetime]) -> None:
    # Timestamps, not datetimes: same-zone datetimes compare as wall times, so the
    # two 01:30s of a fall-back night would look equal (or out of order).
    stamps = [moment.timestamp() for moment in times]
    assert stamps == sorted(set(stamps)), times
