"""Next fire times of a trigger: strictly increasing instants, safe across DST and year 9999."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .triggers import Trigger, trigger_zone

# next_fire_times gives up after this many answers in a row that do not move forward.
_MAX_STALLS = 3


def next_fire_times(
    trigger: Trigger | None, *, after: datetime, count: int = 5
) -> list[datetime]:
    """Return up to `count` fire times strictly after `after`, in the trigger's zone.

    Fewer come back when the trigger ends (a date trigger gives one at most), none
    for a manual task (trigger None), and when the next one would lie beyond
    datetime's range (year 9999). The times strictly increase even if the
    trigger repeats itself.
    """
    if trigger is None or count <= 0:
        return []
    if after.tzinfo is None:
        raise ValueError("`after` must be an aware datetime.")
    zone = trigger_zone(trigger)
    fire_times: list[datetime] = []
    previous: datetime | None = None
    now = after
    stalls = 0
    while len(fire_times) < count:
        try:
            fire_at = trigger.get_next_fire_time(previous, now)
            if fire_at is None:
                break
            floor = fire_times[-1] if fire_times else after
            # Compare instants: aware datetimes sharing a tzinfo compare as wall
            # times, which makes the two 01:30s of a fall-back night equal.
            if fire_at.timestamp() <= floor.timestamp():
                stalls += 1
                if stalls > _MAX_STALLS:
                    break
                previous = fire_at
                now = datetime.fromtimestamp(
                    max(fire_at.timestamp(), floor.timestamp()), UTC
                ) + timedelta(microseconds=1)
                continue
            local = fire_at.astimezone(zone) if zone else fire_at
        except (OverflowError, ValueError, OSError):
            # The next fire time lies past year 9999 (a long interval, jitter, a
            # cron date late in the calendar): datetime, fromtimestamp() or the
            # platform's time_t cannot hold it, so the schedule ends here.
            break
        stalls = 0
        fire_times.append(local)
        previous = now = fire_at
    return fire_times
