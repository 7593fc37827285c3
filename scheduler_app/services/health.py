"""Every task's health, from its schedule and its runs, and the alerts its changes call for.

The states (`HealthState`), most serious first when several hold:

- `paused`: the task is paused or disabled (it sends nothing);
- `failing`: its last N runs failed (N: its failure threshold), until M runs in a
  row succeed (M: its recovery threshold);
- `running_long`: a run is going on past the task's expected maximum run time (a
  warning: the timeout, not this, stops a run);
- `missed`: fires of it never ran (dropped past their misfire grace, or coalesced
  into one run: the scheduler notes `last_missed_at`), until M runs in a row
  succeed after them;
- `late`: a fire has not started within the task's alert grace;
- `new`: it never ran; `up`: none of these.

`health_check` is run by the leading scheduler every SCHEDULER_HEALTH_CHECK_SECONDS
(engine/watch.py): a fixed handful of queries whatever the number of tasks (the
streaks it reads are kept with the counters, db/counters.py). A change is written
with a conditional update (from the state it read), and its alert in the same
transaction: two schedulers that both believe they lead decide it once. An alert
goes out per change, never per run: a failing task that fails again sends nothing.

`leadership_taken` decides the system alerts when an instance starts leading:
no scheduler ran for a while, a standby took over, or the leader changed.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Max, Min, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from ..choices import AlertKind, FailureKind, HealthState, TaskStatus, TaskType
from ..conf import app_settings
from ..db.batch import task_rows_lock
from ..models import (
    Alert,
    ScheduledTask,
    SchedulerInstance,
    SchedulerState,
    TaskExecution,
)
from .alerts import Destination, alerts_record, default_destinations

logger = logging.getLogger(__name__)

#: The SchedulerState row that holds the SchedulerInstance id of the last leader.
LEADER_STATE = "leader_instance"

#: The states that are a problem: leaving one for `up` is a recovery.
PROBLEMS = frozenset(
    {
        HealthState.FAILING,
        HealthState.RUNNING_LONG,
        HealthState.MISSED,
        HealthState.LATE,
    }
)

#: What the health check reads of each task (one query for all of them).
_TASK_FIELDS = (
    "pk",
    "status",
    "task_type",
    "health",
    "health_since",
    "run_count",
    "fail_streak",
    "success_streak",
    "last_run_at",
    "last_missed_at",
    "next_run_at",
    "failure_threshold",
    "recovery_threshold",
    "alert_grace_seconds",
    "max_run_seconds",
)


@dataclass(frozen=True)
class Facts:
    """What a task's health is made of, as one check read it."""

    active: bool
    run_count: int
    fail_streak: int
    success_streak: int
    last_run_at: dt.datetime | None
    last_missed_at: dt.datetime | None
    failure_threshold: int
    recovery_threshold: int
    #: The start of its longest run past the expected maximum run time, if any.
    running_long_since: dt.datetime | None = None
    #: The time of its oldest fire that has not started within the alert grace.
    late_since: dt.datetime | None = None


def health_of(facts: Facts, *, current: str, since: dt.datetime | None) -> HealthState:
    """The state `facts` make of a task that is in `current` since `since`."""
    if not facts.active:
        return HealthState.PAUSED
    recovered = facts.success_streak >= facts.recovery_threshold
    if facts.fail_streak >= facts.failure_threshold or (
        current == HealthState.FAILING and not recovered
    ):
        return HealthState.FAILING
    if facts.running_long_since is not None:
        return HealthState.RUNNING_LONG
    missed_at = facts.last_missed_at
    if missed_at is not None:
        if current != HealthState.MISSED and (since is None or missed_at > since):
            return HealthState.MISSED  # a miss this state has not taken in yet
        ran_since = facts.last_run_at is not None and facts.last_run_at >= missed_at
        if current == HealthState.MISSED and not (ran_since and recovered):
            return HealthState.MISSED
    if facts.late_since is not None:
        return HealthState.LATE
    if facts.run_count == 0 and missed_at is None:
        return HealthState.NEW
    return HealthState.UP


def alert_kind_for(previous: str, new: str, *, failure_kind: str = "") -> str | None:
    """The alert a change of state calls for, if any.

    Becoming failing is told as its last run's kind of failure (timed out,
    abandoned) when it is one; leaving a problem for `up` (or `new`: a task that
    never ran is late no more) is a recovery; pausing, resuming and a new task's
    first runs tell nothing (a task resumed while failing says so when it recovers).
    """
    if new == previous or previous == HealthState.PAUSED:
        return None  # resuming tells nothing, whatever the task was
    if new == HealthState.FAILING:
        told_as: dict[str, AlertKind] = {
            FailureKind.TIMEOUT: AlertKind.TIMED_OUT,
            FailureKind.ABANDONED: AlertKind.ABANDONED,
        }
        return told_as.get(failure_kind, AlertKind.FAILING)
    if new in PROBLEMS:
        return AlertKind(str(new))
    if new in (HealthState.UP, HealthState.NEW) and previous in PROBLEMS:
        return AlertKind.RECOVERED
    return None


@dataclass(frozen=True)
class Change:
    """A task whose health changed in a check, and the alert decided for it."""

    task_id: int
    previous: str
    new: str
    alert: Alert | None


def health_check(*, now: dt.datetime | None = None) -> list[Change]:
    """Work out every task's health; write the changes and decide their alerts.

    Four queries whatever the number of tasks, and only the tasks whose state may
    change are read (`_may_change`): on 10,000 tasks that are all well, reading
    every row each pass cost ~0.3 s of the scheduler's CPU, mostly in parsing
    their times. Returns the changes this call wrote (a change another scheduler
    wrote first is not among them).
    """
    now = now or timezone.now()
    defaults = _Defaults()
    bounds = ScheduledTask.objects.aggregate(
        grace=Min("alert_grace_seconds"),
        max_run=Min("max_run_seconds", filter=Q(max_run_seconds__gt=0)),
    )
    shortest_grace = min(defaults.grace, bounds["grace"] or defaults.grace)
    shortest_run = min(
        (limit for limit in (defaults.max_run, bounds["max_run"]) if limit), default=0
    )
    running_long = _running_long(shortest_run, defaults, now)
    late = _late(shortest_grace, defaults, now)
    rows = ScheduledTask.objects.filter(
        _may_change(
            defaults, not_staged_before=now - dt.timedelta(seconds=shortest_grace)
        )
        | Q(pk__in=set(running_long) | set(late))
    ).values_list(*_TASK_FIELDS)
    planned: list[tuple[int, str, str]] = []
    for row in rows:
        (pk, status, task_type, health, since, run_count, fails, successes) = row[:8]
        (last_run_at, last_missed_at, next_run_at) = row[8:11]
        late_since = late.get(pk)
        grace = row[13] if row[13] is not None else defaults.grace
        if (
            late_since is None
            and task_type != TaskType.MANUAL
            and next_run_at is not None
            and (now - next_run_at).total_seconds() > grace
        ):
            late_since = next_run_at  # not even staged: nobody fires it
        facts = Facts(
            active=status == TaskStatus.ACTIVE,
            run_count=run_count,
            fail_streak=fails,
            success_streak=successes,
            last_run_at=last_run_at,
            last_missed_at=last_missed_at,
            failure_threshold=row[11] or defaults.failures,
            recovery_threshold=row[12] or defaults.recoveries,
            running_long_since=running_long.get(pk, (None, None))[0],
            late_since=late_since,
        )
        new = health_of(facts, current=health, since=since)
        if new != health:
            planned.append((pk, health, new))
    if not planned:
        return []
    return _write_changes(planned, running_long=running_long, late=late, now=now)


def _may_change(defaults: _Defaults, *, not_staged_before: dt.datetime) -> Q:
    """The tasks whose state `health_of` may change, but for runs long and fires late.

    A superset, in SQL: each case of `health_of` that leaves the current state
    needs one of these (the thresholds as the tasks' own or the defaults).
    """
    active = Q(status=TaskStatus.ACTIVE)
    failures = Coalesce(F("failure_threshold"), Value(defaults.failures))
    return (
        (~active & ~Q(health=HealthState.PAUSED))
        | (active & Q(health=HealthState.PAUSED))
        | Q(health__in=PROBLEMS)
        | Q(health=HealthState.NEW, run_count__gt=0)
        | Q(fail_streak__gte=failures)
        | (
            Q(last_missed_at__isnull=False)
            & (Q(health_since__isnull=True) | Q(last_missed_at__gt=F("health_since")))
        )
        | (Q(next_run_at__lt=not_staged_before) & ~Q(task_type=TaskType.MANUAL))
    )


class _Defaults:
    """The project-wide defaults of the per-task health settings, read once a check."""

    def __init__(self) -> None:
        self.failures = app_settings.SCHEDULER_ALERT_FAILURE_THRESHOLD
        self.recoveries = app_settings.SCHEDULER_ALERT_RECOVERY_THRESHOLD
        self.grace = app_settings.SCHEDULER_ALERT_GRACE_SECONDS
        self.max_run = app_settings.SCHEDULER_ALERT_MAX_RUN_SECONDS


def _running_long(
    shortest: int, defaults: _Defaults, now: dt.datetime
) -> dict[int, tuple[dt.datetime, int]]:
    """task id -> (start, execution id) of its oldest run past its expected maximum."""
    if not shortest:
        return {}
    found: dict[int, tuple[dt.datetime, int]] = {}
    for task_id, started_at, pk, own in (
        TaskExecution.objects.running()
        .filter(started_at__lt=now - dt.timedelta(seconds=shortest))
        .order_by("started_at")
        .values_list("task_id", "started_at", "pk", "task__max_run_seconds")
    ):
        limit = own if own is not None else defaults.max_run
        if started_at and limit and (now - started_at).total_seconds() > limit:
            found.setdefault(task_id, (started_at, pk))
    return found


def _late(
    shortest: int, defaults: _Defaults, now: dt.datetime
) -> dict[int, dt.datetime]:
    """task id -> its oldest staged fire still pending past its alert grace."""
    oldest = (
        TaskExecution.objects.pending()
        .filter(
            trigger_type=TaskExecution.TriggerType.SCHEDULED,
            scheduled_for__lt=now - dt.timedelta(seconds=shortest),
        )
        .order_by()
        .values("task_id", "task__alert_grace_seconds")
        .annotate(first=Min("scheduled_for"))
        .values_list("task_id", "task__alert_grace_seconds", "first")
    )
    found: dict[int, dt.datetime] = {}
    for task_id, own, first in oldest:
        grace = own if own is not None else defaults.grace
        if (now - first).total_seconds() > grace:
            found[task_id] = first
    return found


#: Silent changes are written this many tasks a statement.
SILENT_BATCH = 500


def _write_changes(
    planned: list[tuple[int, str, str]],
    *,
    running_long: dict[int, tuple[dt.datetime, int]],
    late: dict[int, dt.datetime],
    now: dt.datetime,
) -> list[Change]:
    """Write the changes: the silent ones by the batch, each told one with its alert.

    A change that tells nothing (a new task's first run, pausing) is written a
    statement per SILENT_BATCH tasks of one (from, to) pair: the first check after
    an upgrade changes every task at once.
    """
    silent: dict[tuple[str, str], list[int]] = {}
    told: list[tuple[int, str, str]] = []
    for pk, previous, new in planned:
        if alert_kind_for(previous, new) is None:
            silent.setdefault((previous, new), []).append(pk)
        else:
            told.append((pk, previous, new))
    changes: list[Change] = []
    for (previous, new), ids in silent.items():
        for first in range(0, len(ids), SILENT_BATCH):
            # With this process's other bulk writers of task rows, never beside them.
            with task_rows_lock, transaction.atomic():
                ScheduledTask.objects.filter(
                    pk__in=ids[first : first + SILENT_BATCH], health=previous
                ).update(health=new, health_since=now)
        changes.extend(Change(pk, previous, new, None) for pk in ids)
    tasks = (
        ScheduledTask.objects.prefetch_related("alert_channels").in_bulk(
            [pk for pk, _previous, _new in told]
        )
        if told
        else {}
    )
    defaults: list[Destination] | None = None
    for pk, previous, new in told:
        task = tasks.get(pk)
        if task is None:  # deleted meanwhile
            continue
        last_failed = _last_failed(task) if new == HealthState.FAILING else None
        kind = alert_kind_for(
            previous,
            new,
            failure_kind=last_failed.failure_kind if last_failed is not None else "",
        )
        if defaults is None and not task.alert_channels.all():
            defaults = default_destinations()  # read once, only when needed
        with transaction.atomic():
            won = ScheduledTask.objects.filter(pk=pk, health=previous).update(
                health=new, health_since=now
            )
            if not won:
                continue  # changed by another check meanwhile
            alert = _decide(
                task,
                str(kind),
                previous=previous,
                new=new,
                last_failed=last_failed,
                running_long=running_long.get(pk),
                late_since=late.get(pk) or task.next_run_at,
                defaults=defaults,
                now=now,
            )
        changes.append(Change(pk, previous, new, alert))
    _log(changes, tasks)
    return changes


def _log(changes: list[Change], tasks: dict[int, ScheduledTask]) -> None:
    """One line for a check's changes: counts by change, and the tasks told of."""
    if not changes:
        return
    counts: dict[tuple[str, str], int] = {}
    for each in changes:
        counts[(each.previous, each.new)] = counts.get((each.previous, each.new), 0) + 1
    told = [tasks[each.task_id].name for each in changes if each.alert is not None]
    logger.info(
        "Health changed for %d task(s): %s%s",
        len(changes),
        ", ".join(
            "%d %s -> %s" % (count, previous, new)
            for (previous, new), count in sorted(counts.items())
        ),
        "; alerts for %s%s" % (", ".join(told[:20]), " ..." if len(told) > 20 else "")
        if told
        else "",
    )


def _last_failed(task: ScheduledTask) -> TaskExecution | None:
    return (
        TaskExecution.objects.filter(task=task, status=TaskExecution.Status.FAILED)
        .order_by("-finished_at", "-id")
        .only("pk", "failure_kind", "error_message", "status", "duration_ms")
        .first()
    )


def _decide(
    task: ScheduledTask,
    kind: str,
    *,
    previous: str,
    new: str,
    last_failed: TaskExecution | None,
    running_long: tuple[dt.datetime, int] | None,
    late_since: dt.datetime | None,
    defaults: list[Destination] | None,
    now: dt.datetime,
) -> Alert:
    values: dict[str, object] = {"name": task.name}
    execution: TaskExecution | None = None
    error = ""
    details: dict[str, object] = {}
    if kind in (AlertKind.FAILING, AlertKind.TIMED_OUT, AlertKind.ABANDONED):
        threshold = (
            task.failure_threshold or app_settings.SCHEDULER_ALERT_FAILURE_THRESHOLD
        )
        values["count"] = max(task.fail_streak, threshold)
        execution = last_failed
        error = last_failed.error_message if last_failed is not None else ""
        details["failures_in_a_row"] = task.fail_streak
        message = {
            AlertKind.TIMED_OUT: _("%(name)s is failing: its last run timed out."),
            AlertKind.ABANDONED: _(
                "%(name)s is failing: its last run was abandoned (the process "
                "running it stopped heartbeating)."
            ),
        }.get(
            AlertKind(kind),
            _("%(name)s is failing: its last %(count)d run(s) failed."),
        )
    elif kind == AlertKind.RECOVERED:
        values["was"] = HealthState(previous).label
        message = {
            HealthState.RUNNING_LONG: _(
                "%(name)s is no longer running long: the run has ended."
            ),
            HealthState.LATE: _("%(name)s is no longer late: the fire has started."),
        }.get(HealthState(previous), _("%(name)s is up again (it was %(was)s)."))
    elif kind == AlertKind.MISSED:
        execution = (
            TaskExecution.objects.filter(task=task, status=TaskExecution.Status.MISSED)
            .order_by("-created_at", "-id")
            .first()
        )
        if (
            execution is not None
            and task.last_missed_at is not None
            and (execution.created_at >= task.last_missed_at)
        ):
            values["what"] = execution.error_message
        else:  # coalesced: no row of its own
            values["what"] = _(
                "fires it missed while no scheduler ran were coalesced into one run."
            )
            execution = None
        message = _("%(name)s missed fires: %(what)s")
    elif kind == AlertKind.LATE:
        values["since"] = timezone.localtime(late_since or now).strftime("%H:%M:%S")
        values["late"] = int((now - (late_since or now)).total_seconds())
        message = _(
            "%(name)s is late: its fire of %(since)s has not started "
            "%(late)d s after its time."
        )
    else:  # running long
        started, execution_id = running_long or (now, 0)
        execution = TaskExecution.objects.filter(pk=execution_id).first()
        values["minutes"] = round((now - started).total_seconds() / 60, 1)
        values["limit"] = (
            task.max_run_seconds
            if task.max_run_seconds is not None
            else app_settings.SCHEDULER_ALERT_MAX_RUN_SECONDS
        )
        message = _(
            "%(name)s has been running for %(minutes)s min, past its expected "
            "maximum run time (%(limit)s s); the run goes on."
        )
    return alerts_record(
        kind=kind,
        message=message % values,
        task=task,
        state=new,
        previous_state=previous,
        error=error,
        execution=execution,
        details=details,
        destinations=None if task.alert_channels.all() else defaults,
        now=now,
    )


# -- system alerts -------------------------------------------------------------


def leadership_taken(*, instance: str, now: dt.datetime | None = None) -> Alert | None:
    """Decide the system alert of `instance` starting to lead, if it tells of anything.

    - No scheduler heartbeated between the last beat of any other one (plus
      SCHEDULER_INSTANCE_STALE_SECONDS) and this instance's start: nothing fired
      for that long (`scheduler_down`, told now, as nobody could tell it then).
    - The previous leader still said it led (it crashed, or hung): a standby took
      over (`takeover`). It had handed over (a clean stop): `leader_changed`.
    """
    now = now or timezone.now()
    schedulers = SchedulerInstance.objects.filter(kind=SchedulerInstance.Kind.SCHEDULER)
    me = schedulers.filter(instance_id=instance).first()
    if me is None:
        return None  # not announced (a test's engine): nothing to compare with
    # The alert is decided with the record of who leads: kept or lost together.
    with transaction.atomic():
        # Who led last: this instance regaining a lease it lost tells nothing.
        state, _created = SchedulerState.objects.select_for_update().get_or_create(
            key=LEADER_STATE
        )
        previous_pk, state.value = state.value, me.pk
        state.save(update_fields=["value", "updated_at"])
        if previous_pk == me.pk:
            return None
        previous = schedulers.filter(pk=previous_pk).first()
        last_beat = schedulers.exclude(pk=me.pk).aggregate(
            last=Max("last_heartbeat_at")
        )["last"]
        if previous is None or last_beat is None:
            return None  # the first leader of this installation (or its rows are gone)
        stale = dt.timedelta(seconds=app_settings.SCHEDULER_INSTANCE_STALE_SECONDS)
        values = {
            "instance": instance,
            "previous": previous.instance_id,
            "last": timezone.localtime(previous.last_heartbeat_at).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
        }
        details: dict[str, object] = {
            "instance": instance,
            "previous_instance": previous.instance_id,
            "previous_last_heartbeat_at": previous.last_heartbeat_at.isoformat(),
        }
        if last_beat + stale < me.started_at:
            gap = (now - last_beat).total_seconds()
            values["last"] = timezone.localtime(last_beat).strftime("%Y-%m-%d %H:%M:%S")
            values["gap"] = _duration(gap)
            details["seconds_without_scheduler"] = round(gap)
            kind = AlertKind.SCHEDULER_DOWN
            message = _(
                "No scheduler ran for %(gap)s, since %(last)s (the last heartbeat of "
                "%(previous)s); %(instance)s runs now. Fires of that time were run "
                "late, coalesced or recorded missed."
            )
        elif previous.is_leader and previous.stopped_at is None:
            kind = AlertKind.TAKEOVER
            message = _(
                "The standby %(instance)s took over from the leader %(previous)s, "
                "whose last heartbeat was at %(last)s."
            )
        else:
            kind = AlertKind.LEADER_CHANGED
            message = _("%(instance)s leads now (%(previous)s handed over).")
        return alerts_record(
            kind=kind, message=message % values, details=details, now=now
        )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return _("%d s") % seconds
    if seconds < 7200:
        return _("%d min") % (seconds // 60)
    return _("%.1f h") % (seconds / 3600)
