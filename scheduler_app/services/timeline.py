"""The timeline: every task a row, time in slots, each slot coloured by what happened in it.

A slot's colour is its most telling outcome: failed, then running (or due and
waiting), then missed, success, skipped, cancelled. Two more kinds have no run
behind them:

- `missed`: the schedule expected a fire in the slot and no run of any status
  was recorded for it (a recorded `missed` row, written when a scheduler comes
  back after fires went by, counts as a run of status missed). Expected means:
  by the task's schedule as it is now, after the task was created and after its
  schedule last changed (the audit trail's updates), while it was active (its
  pauses, resumes, enables and disables in the audit trail, walked back from
  its status now), and longer ago than its alert grace (plus its jitter);
- `upcoming`: a fire ahead, for the next 24 hours.

Neighbouring slots of one kind are one cell, so a task that succeeds every
minute is a single bar, not 1,440 elements; a cell knows its runs by status,
and its run when it holds one.

The cost is bounded whatever the number of runs or fires: one statement counts
the runs by task, slot and status (db/timeline.py), one reads the audit entries
that matter, and schedules/buckets.py answers which slots a schedule fires in
without listing every fire.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from ..choices import AuditAction, ExecutionStatus, TaskStatus, TaskType
from ..conf import app_settings
from ..db.timeline import SLOT_STATUSES, runs_by_slot
from ..models import AuditEntry, ScheduledTask
from ..schedules.buckets import Grid, fire_slots, first_fire
from ..schedules.schedule import Schedule

#: How far ahead the upcoming fires go.
AHEAD = dt.timedelta(hours=24)
#: The fields of a task whose change changes when it fires.
SCHEDULE_FIELDS = (
    "task_type",
    "cron_expression",
    "interval_seconds",
    "run_date",
    "timezone",
)


@dataclass(frozen=True)
class Span:
    """A range the timeline shows: its query-string key, its label, how long, the slot."""

    key: str
    label: str | Promise
    length: dt.timedelta
    step: int


SPANS = (
    Span("24h", _("Last 24 hours"), dt.timedelta(hours=24), 15 * 60),
    Span("7d", _("Last 7 days"), dt.timedelta(days=7), 3600),
    Span("30d", _("Last 30 days"), dt.timedelta(days=30), 6 * 3600),
)
SPANS_BY_KEY = {span.key: span for span in SPANS}
DEFAULT_SPAN = SPANS[0]


class CellKind(StrEnum):
    FAILED = "failed"
    RUNNING = "running"
    MISSED = "missed"
    SUCCESS = "success"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    UPCOMING = "upcoming"


#: A slot's kind from the statuses of its runs: the first one present wins.
_PRECEDENCE = (
    (CellKind.FAILED, (ExecutionStatus.FAILED,)),
    (CellKind.RUNNING, (ExecutionStatus.RUNNING, ExecutionStatus.PENDING)),
    (CellKind.MISSED, (ExecutionStatus.MISSED,)),
    (CellKind.SUCCESS, (ExecutionStatus.SUCCESS,)),
    (CellKind.SKIPPED, (ExecutionStatus.SKIPPED,)),
    (CellKind.CANCELLED, (ExecutionStatus.CANCELLED,)),
)


@dataclass
class Cell:
    """Neighbouring slots [first, first + width) of one kind, in one task's row."""

    first: int
    width: int
    kind: CellKind
    grid: Grid
    #: Runs of each of SLOT_STATUSES, over the cell.
    tally: list[int] = field(default_factory=lambda: [0] * len(SLOT_STATUSES))
    #: The latest of its runs.
    latest_id: int | None = None
    #: The first fire expected (missed) or ahead (upcoming); None if only known
    #: to lie in the cell.
    fire_at: dt.datetime | None = None

    @property
    def start(self) -> dt.datetime:
        return self.grid.slot_start(self.first)

    @property
    def end(self) -> dt.datetime:
        return self.grid.slot_start(self.first + self.width)

    @property
    def counts(self) -> dict[str, int]:
        """Status -> runs, for the statuses the cell has runs of."""
        return {
            status: runs
            for status, runs in zip(SLOT_STATUSES, self.tally, strict=True)
            if runs
        }

    @property
    def runs(self) -> int:
        return sum(self.tally)

    @property
    def run_id(self) -> int | None:
        """The cell's run when it holds exactly one."""
        return self.latest_id if self.runs == 1 else None


@dataclass
class Row:
    task: ScheduledTask
    cells: list[Cell]


@dataclass
class Timeline:
    span: Span
    grid: Grid
    now: dt.datetime
    #: The slot that holds `now`: the slots after it are ahead.
    now_slot: int
    rows: list[Row]


def timeline_grid(span: Span, *, now: dt.datetime) -> tuple[Grid, int]:
    """The grid of `span` ending AHEAD after the slot of `now`, and that slot.

    Slots are counted from local midnight (the current time zone), so six-hour
    slots start at 00:00, 06:00, 12:00 and 18:00 where the reader lives.
    """
    local = timezone.localtime(now)
    # In UTC from here: arithmetic on times of one zone is wall-clock
    # arithmetic, an hour off across a DST change.
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(
        dt.UTC
    )
    into_day = math.floor((now - midnight).total_seconds() / span.step)
    current = midnight + dt.timedelta(seconds=into_day * span.step)
    past = int(span.length.total_seconds() // span.step)
    ahead = int(AHEAD.total_seconds() // span.step)
    start = current - dt.timedelta(seconds=(past - 1) * span.step)
    return Grid(start=start, step=span.step, count=past + ahead), past - 1


def timeline_tasks(
    *, health: str = "", status: str = "", handler: str = ""
) -> QuerySet[ScheduledTask]:
    """The tasks the timeline lists, by name, with the filters applied (a queryset)."""
    tasks = ScheduledTask.objects.order_by("name", "pk")
    if health:
        tasks = tasks.filter(health=health)
    if status:
        tasks = tasks.filter(status=status)
    if handler:
        tasks = tasks.filter(handler_path=handler)
    return tasks


def timeline(
    tasks: Sequence[ScheduledTask], *, span: Span, now: dt.datetime | None = None
) -> Timeline:
    """The timeline of `tasks` over `span` and the day ahead: two queries."""
    now = now or timezone.now()
    grid, now_slot = timeline_grid(span, now=now)
    task_ids = [task.pk for task in tasks]
    slots: dict[int, dict[int, _Ran]] = defaultdict(dict)
    for task_id, slot, latest, fired, counts in runs_by_slot(
        task_ids=task_ids, start=grid.start, end=now, step=grid.step
    ):
        slots[task_id][slot] = (counts, latest, fired)
    history = _history(task_ids, since=grid.start)
    fires = _FireSlots(tasks, grid)
    rows = []
    for task in tasks:
        ran = slots.get(task.pk, {})
        changes = history.get(task.pk, [])
        missed = _missed(task, grid, now, now_slot, ran, changes, fires)
        upcoming = _upcoming(task, grid, now, now_slot, fires)
        rows.append(Row(task=task, cells=_cells(grid, ran, missed, upcoming)))
    return Timeline(span=span, grid=grid, now=now, now_slot=now_slot, rows=rows)


# -- what happened to each task: its audit entries ------------------------------------


@dataclass(frozen=True)
class _Change:
    at: dt.datetime
    action: str
    changes: dict[str, list[object]]


_STATUS_ACTIONS = (
    AuditAction.PAUSE,
    AuditAction.RESUME,
    AuditAction.ENABLE,
    AuditAction.DISABLE,
)


def _history(task_ids: list[int], *, since: dt.datetime) -> dict[int, list[_Change]]:
    """task id -> its changes of status or schedule since `since`, newest first."""
    if not task_ids:
        return {}
    entries = (
        AuditEntry.objects.filter(task_id__in=task_ids, at__gte=since)
        .filter(
            Q(action__in=_STATUS_ACTIONS)
            | Q(
                action=AuditAction.UPDATE,
                changes__has_any_keys=["status", *SCHEDULE_FIELDS],
            )
        )
        .order_by("-at", "-id")
        .values_list("task_id", "at", "action", "changes")
    )
    history: dict[int, list[_Change]] = defaultdict(list)
    for task_id, at, action, changes in entries:
        history[task_id].append(_Change(at, action, changes or {}))
    return history


def _status_before(change: _Change, after: str) -> str:
    """The task's status before `change`, given its status after it: as the
    entry recorded it ([before, after]), else as its action implies."""
    status = change.changes.get("status")
    if isinstance(status, list) and len(status) == 2 and isinstance(status[0], str):
        return status[0]
    if change.action == AuditAction.PAUSE:
        return TaskStatus.ACTIVE
    if change.action == AuditAction.RESUME:
        return TaskStatus.PAUSED
    if change.action == AuditAction.ENABLE:
        return TaskStatus.DISABLED
    if change.action == AuditAction.DISABLE:
        return TaskStatus.ACTIVE  # or paused: an entry without its changes
    return after


def _inactive(
    task: ScheduledTask, changes: list[_Change], now: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The stretches in which the task was not active, from its status now back."""
    stretches = []
    status, until = task.status, now
    for change in changes:
        if status != TaskStatus.ACTIVE:
            stretches.append((change.at, until))
        status, until = _status_before(change, status), change.at
    if status != TaskStatus.ACTIVE:
        stretches.append((dt.datetime.min.replace(tzinfo=dt.UTC), until))
    return stretches


def _expected_since(
    task: ScheduledTask, changes: list[_Change], now: dt.datetime
) -> dt.datetime:
    """Since when the task's fires can be told from the records: it fires by its
    schedule as it is now, and neither its runs nor its audit entries were
    cleaned up (SCHEDULER_HISTORY_DAYS, SCHEDULER_AUDIT_DAYS)."""
    kept = min(app_settings.SCHEDULER_HISTORY_DAYS, app_settings.SCHEDULER_AUDIT_DAYS)
    since = max(task.created_at, now - dt.timedelta(days=kept))
    if task.task_type == TaskType.INTERVAL:
        # Every save counts an interval afresh from then (a description edit, a
        # resume): its fires before the last one are told by no record.
        since = max(since, task.updated_at)
    for change in changes:
        if change.action == AuditAction.UPDATE and any(
            name in change.changes for name in SCHEDULE_FIELDS
        ):
            return max(change.at, since)
    return since


# -- the slots ------------------------------------------------------------------------

#: A slot's runs: how many of each of SLOT_STATUSES, the latest one's id, and
#: how many of them ran a fire (not a run now).
_Ran = tuple[tuple[int, ...], int, int]


def _cron_key(task: ScheduledTask) -> tuple[str, str] | None:
    if task.task_type != TaskType.CRON:
        return None
    return (task.cron_expression, task.timezone)


class _FireSlots:
    """fire_slots() for the page's tasks: a cron line several tasks share is worked
    out once over the whole grid, the others for the slots each asks about."""

    def __init__(self, tasks: Sequence[ScheduledTask], grid: Grid) -> None:
        self.grid = grid
        counts = Counter(_cron_key(task) for task in tasks)
        self.shared = {key for key, count in counts.items() if key and count > 1}
        self.whole: dict[tuple[str, str], dict[int, dt.datetime | None]] = {}

    def __call__(
        self,
        task: ScheduledTask,
        schedule: Schedule,
        slots: Iterable[int],
        anchor: dt.datetime | None,
    ) -> dict[int, dt.datetime | None]:
        key = _cron_key(task)
        if key is None or key not in self.shared:
            return fire_slots(schedule, self.grid, slots, anchor=anchor)
        every = self.whole.get(key)
        if every is None:
            every = self.whole[key] = fire_slots(
                schedule, self.grid, range(self.grid.count)
            )
        return {slot: every[slot] for slot in slots if slot in every}


def _missed(
    task: ScheduledTask,
    grid: Grid,
    now: dt.datetime,
    now_slot: int,
    ran: dict[int, _Ran],
    changes: list[_Change],
    fires: _FireSlots,
) -> dict[int, dt.datetime | None]:
    """The slots the schedule expected a fire in that hold no run."""
    if task.task_type == TaskType.MANUAL or (
        task.task_type == TaskType.INTERVAL and task.jitter_seconds
    ):
        # A jittered interval counts each fire from the last jittered one: its
        # fires drift, and none can be told from its next run.
        return {}
    since = _expected_since(task, changes, now)
    grace = dt.timedelta(
        seconds=task.alert_grace_seconds
        if task.alert_grace_seconds is not None
        else app_settings.SCHEDULER_ALERT_GRACE_SECONDS
    )
    jitter = dt.timedelta(seconds=task.jitter_seconds or 0)
    # A fire jittered into a later slot (up to `reach` slots on) is not missed.
    reach = min(math.ceil(jitter.total_seconds() / grid.step), grid.count)
    first = max(0, grid.slot_of(since))
    if first > now_slot or since + grace + jitter > now:
        return {}
    # A run now in a slot is no run of its fire.
    ran_slots = sorted(slot for slot, (_counts, _latest, fired) in ran.items() if fired)

    def holds_run(slot: int) -> bool:
        at = bisect.bisect_left(ran_slots, slot)
        return at < len(ran_slots) and ran_slots[at] <= slot + reach

    empty = [slot for slot in range(first, now_slot + 1) if not holds_run(slot)]
    if not empty:
        return {}
    inactive = _inactive(task, changes, now)

    def expected(moment: dt.datetime, until: dt.datetime) -> bool:
        return (
            moment >= since
            and until + grace + jitter <= now
            and not any(start <= until and moment < end for start, end in inactive)
        )

    schedule = Schedule.of(task)
    found = fires(task, schedule, empty, task.next_run_at)
    missed: dict[int, dt.datetime | None] = {}
    for slot, known in found.items():
        fire_at = known
        if fire_at is None:
            # A frequent cron: its fire lies somewhere in the slot. A slot wholly
            # expected needs no more; one at an edge (the task's creation, a pause,
            # the grace before now) is told by its first fire.
            if expected(grid.slot_start(slot), grid.slot_start(slot + 1)):
                missed[slot] = None
                continue
            fire_at = first_fire(schedule, grid, slot)
        if fire_at is not None and expected(fire_at, fire_at):
            missed[slot] = fire_at
    return missed


def _upcoming(
    task: ScheduledTask,
    grid: Grid,
    now: dt.datetime,
    now_slot: int,
    fires: _FireSlots,
) -> dict[int, dt.datetime | None]:
    """The slots ahead that hold a fire, from the task's next run on."""
    next_run = task.next_run_at
    if task.status != TaskStatus.ACTIVE or next_run is None or next_run >= grid.end:
        return {}
    first = max(now_slot, grid.slot_of(next_run))
    found = fires(task, Schedule.of(task), range(first, grid.count), next_run)
    upcoming = {
        slot: fire_at
        for slot, fire_at in found.items()
        if fire_at is None or fire_at > now
    }
    if next_run > now:
        upcoming[grid.slot_of(next_run)] = next_run
    return upcoming


#: _PRECEDENCE by the positions of the statuses in a slot's counts.
_PRECEDENCE_AT = [
    (kind, [SLOT_STATUSES.index(status) for status in behind])
    for kind, behind in _PRECEDENCE
]


def _slot_kind(counts: tuple[int, ...]) -> CellKind:
    """A slot's kind from its runs by status: the first of _PRECEDENCE present."""
    for kind, positions in _PRECEDENCE_AT:
        for position in positions:
            if counts[position]:
                return kind
    return CellKind.SKIPPED


def _cells(
    grid: Grid,
    ran: dict[int, _Ran],
    missed: dict[int, dt.datetime | None],
    upcoming: dict[int, dt.datetime | None],
) -> list[Cell]:
    """The row's cells, left to right: runs first, then missed, then upcoming."""
    Mark = tuple[CellKind, tuple[int, ...], dt.datetime | None, int | None]
    marked: dict[int, Mark] = {}
    for slot, fire_at in upcoming.items():
        if 0 <= slot < grid.count:
            marked[slot] = (CellKind.UPCOMING, (), fire_at, None)
    for slot, fire_at in missed.items():
        marked[slot] = (CellKind.MISSED, (), fire_at, None)
    for slot, (counts, last_run, _fired) in ran.items():
        kind = _slot_kind(counts)
        if slot in missed and kind not in (CellKind.FAILED, CellKind.RUNNING):
            # Only runs now in a slot whose fire went missing: missed first.
            kind = CellKind.MISSED
        marked[slot] = (kind, counts, missed.get(slot), last_run)
    cells: list[Cell] = []
    cell: Cell | None = None
    for slot in sorted(marked):
        kind, counts, fire_at, latest = marked[slot]
        if cell is not None and cell.kind == kind and cell.first + cell.width == slot:
            cell.width += 1
        else:
            cell = Cell(first=slot, width=1, kind=kind, grid=grid, fire_at=fire_at)
            cells.append(cell)
        if counts:
            tally = cell.tally
            for position, runs in enumerate(counts):
                tally[position] += runs
            if latest is not None and (
                cell.latest_id is None or latest > cell.latest_id
            ):
                cell.latest_id = latest
    return cells
