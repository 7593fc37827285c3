"""Which slots of a time grid a schedule fires in: the timeline's expected and upcoming fires.

A Grid cuts time into equal slots (15 minutes, an hour, six hours). fire_slots()
answers, for the slots asked about, whether the schedule fires in each and when
first, without listing every fire: a task every 10 s has 8,640 fires a day and a
timeline slot needs only one of them.

The cost follows the slots asked about, not the fires: an interval is arithmetic,
a cron that fires every hour of every day (and, for slots under an hour, often
enough within the hour) fires in every slot without a trigger call, and any other
cron takes one trigger call per slot asked about that it fires in, jumping over
the slots it does not.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scheduler_app.choices import TaskType
from scheduler_app.exceptions import ScheduleError

from .cron import parse_crontab
from .fire_times import next_fire_times
from .schedule import Schedule
from .triggers import Trigger

_MONTHS = frozenset(range(1, 13))


@dataclass(frozen=True)
class Grid:
    """`count` slots of `step` seconds from `start` (aware)."""

    start: datetime
    step: int
    count: int

    def slot_of(self, moment: datetime) -> int:
        """The slot `moment` falls in (negative before the grid, >= count after it)."""
        return math.floor((moment - self.start).total_seconds() / self.step)

    def slot_start(self, slot: int) -> datetime:
        return self.start + timedelta(seconds=slot * self.step)

    @property
    def end(self) -> datetime:
        return self.slot_start(self.count)


def fires_in_every_slot(schedule: Schedule, grid: Grid) -> bool:
    """Whether the cron schedule fires at least once in every slot of `grid`.

    True for a cron that allows every hour of every day whose largest gap
    between allowed minutes, across the hour, is at most the slot (a slot of an
    hour or more holds every minute of the hour once), in a zone whose offset
    does not change over the grid (a fall-back night repeats an hour the
    trigger does not fire twice). Conservative: False says only that
    fire_slots() asks the trigger.
    """
    try:
        crontab = parse_crontab(schedule.cron)
        zone = schedule.tz
    except ScheduleError:
        return False
    if grid.start.astimezone(zone).utcoffset() != grid.end.astimezone(zone).utcoffset():
        return False
    step = grid.step
    values = crontab.values
    every_day = (
        crontab.every_hour
        and not crontab.day_restricted
        and not crontab.weekday_restricted
        and values["month"] == _MONTHS
    )
    if not every_day:
        return False
    if step >= 3600:
        return True
    minutes = sorted(values["minute"])
    gaps = [
        later - earlier for earlier, later in zip(minutes, minutes[1:], strict=False)
    ]
    gaps.append(minutes[0] + 60 - minutes[-1])
    return max(gaps) * 60 <= step


def fire_slots(
    schedule: Schedule,
    grid: Grid,
    slots: Iterable[int],
    *,
    anchor: datetime | None = None,
) -> dict[int, datetime | None]:
    """slot -> the first fire time in it, for the `slots` of `grid` the schedule fires in.

    None as the time where the slot surely holds a fire but working out when
    would cost a trigger call (a frequent cron). An interval counts from
    `anchor` (a fire time it had or will have: the task's next run); without
    one its phase is unknown and only an interval no longer than a slot is
    answered (every slot). Jitter is left out: it moves a fire, not whether
    there is one. A manual task, or a schedule that cannot run, fires in none.
    """
    wanted = sorted({slot for slot in slots if 0 <= slot < grid.count})
    if not wanted:
        return {}
    schedule = dataclasses.replace(schedule, jitter_seconds=0)
    if schedule.kind == TaskType.INTERVAL:
        return _interval_slots(schedule.every_seconds or 0, grid, wanted, anchor)
    if schedule.kind == TaskType.DATE:
        if schedule.run_date is None:
            return {}
        slot = grid.slot_of(schedule.run_date)
        return {slot: schedule.run_date} if slot in wanted else {}
    if schedule.kind != TaskType.CRON:
        return {}
    if fires_in_every_slot(schedule, grid):
        return dict.fromkeys(wanted)
    trigger = _trigger(schedule, grid.start)
    if trigger is None:
        return {}
    found: dict[int, datetime | None] = {}
    position = 0
    while position < len(wanted):
        after = grid.slot_start(wanted[position]) - timedelta(microseconds=1)
        times = next_fire_times(trigger, after=after, count=1)
        if not times:
            break
        fired_in = grid.slot_of(times[0])
        # Jump over the wanted slots before the one it fires in; the fire is the
        # first of its slot (asking from that slot's start could even miss it:
        # a time skipped by a spring-forward night moves to after the gap only
        # when the trigger is asked from before the gap).
        while position < len(wanted) and wanted[position] < fired_in:
            position += 1
        if position < len(wanted) and wanted[position] == fired_in:
            found[fired_in] = times[0]
            position += 1
    return found


@functools.lru_cache(maxsize=256)
def _trigger(schedule: Schedule, start: datetime) -> Trigger | None:
    """The schedule's trigger (None if it cannot run): a page asks for each cron
    line's many times, and building one parses the line."""
    try:
        return schedule.trigger(start_at=start)
    except ScheduleError:
        return None


def first_fire(schedule: Schedule, grid: Grid, slot: int) -> datetime | None:
    """The schedule's first fire in `slot` (None if none): one trigger call."""
    trigger = _trigger(dataclasses.replace(schedule, jitter_seconds=0), grid.start)
    if trigger is None:
        return None
    after = grid.slot_start(slot) - timedelta(microseconds=1)
    times = next_fire_times(trigger, after=after, count=1)
    return times[0] if times and grid.slot_of(times[0]) == slot else None


def _interval_slots(
    seconds: int, grid: Grid, wanted: list[int], anchor: datetime | None
) -> dict[int, datetime | None]:
    if seconds <= 0:
        return {}
    if anchor is None:
        return dict.fromkeys(wanted) if seconds <= grid.step else {}
    found: dict[int, datetime | None] = {}
    anchor_ts = anchor.timestamp()
    for slot in wanted:
        start_ts = grid.slot_start(slot).timestamp()
        # The first fire at or after the slot's start: anchor + k * seconds.
        k = math.ceil((start_ts - anchor_ts) / seconds)
        fire_ts = anchor_ts + k * seconds
        if fire_ts < start_ts + grid.step:
            found[slot] = datetime.fromtimestamp(fire_ts, UTC)
    return found
