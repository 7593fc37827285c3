"""Daylight-saving facts about a zone: repeated wall times and where offsets change."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def is_repeated_wall_time(moment: datetime) -> bool:
    """Tell whether `moment` is the second occurrence of a wall time (fall back)."""
    return moment.fold == 1 and (
        moment.replace(fold=0).utcoffset() != moment.utcoffset()
    )


def _offset(moment: datetime) -> timedelta:
    return moment.utcoffset() or timedelta(0)


def last_repeated_instant(moment: datetime) -> datetime:
    """Return an instant in the last second of the repeated span holding `moment`."""
    zone = moment.tzinfo
    low = moment.astimezone(UTC)
    high = low + (_offset(moment.replace(fold=0)) - _offset(moment))
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if is_repeated_wall_time(middle.astimezone(zone)):
            low = middle
        else:
            high = middle
    return low.astimezone(zone)


#: The instants dst_transitions_between probes: a day inside datetime's range, so
#: that a probe converted to any zone (offsets stay within a day) is a datetime.
_FIRST_SCANNABLE = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LAST_SCANNABLE = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


def dst_transitions_between(
    start: datetime, end: datetime, tz: ZoneInfo
) -> list[datetime]:
    """Return the instants in [start, end] at which `tz` changes its UTC offset.

    Each is the first wall time under the new offset (03:00 EDT, or 01:00 EST with
    fold=1). The scan is hourly, so two changes within one hour would go unseen;
    no zone has any. It costs one probe per hour of the span: callers bound it
    (schedule_preview looks DST_SCAN_HORIZON ahead at most). Instants within a
    day of datetime's limits are not scanned, so no probe overflows.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("`start` and `end` must be aware datetimes.")
    first = max(start.timestamp(), _FIRST_SCANNABLE)
    last = min(end.timestamp(), _LAST_SCANNABLE)
    if last < first:
        return []

    def offset_at(timestamp: int) -> timedelta | None:
        return datetime.fromtimestamp(timestamp, tz).utcoffset()

    # One second early, so that a change exactly at `start` is seen too.
    checked = math.floor(first) - 1
    checked_offset = offset_at(checked)
    transitions = []
    while checked < last:
        probe = min(checked + 3600, math.ceil(last))
        probe_offset = offset_at(probe)
        if probe_offset != checked_offset:
            low, high = checked, probe
            while high - low > 1:
                middle = (low + high) // 2
                if offset_at(middle) == checked_offset:
                    low = middle
                else:
                    high = middle
            # Compared as instants: same-zone datetimes compare as wall times.
            if first <= high <= last:
                transitions.append(datetime.fromtimestamp(high, tz))
        checked, checked_offset = probe, probe_offset
    return transitions
