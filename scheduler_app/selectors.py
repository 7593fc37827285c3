"""Reads shared by admin and API: task stats, log tails, locks, scheduler health."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import (
    Case,
    Count,
    F,
    FloatField,
    JSONField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import Cast, JSONObject, Now, NullIf
from django.utils import timezone
from django.utils.translation import gettext

from . import livelog
from .choices import AuditAction, HealthState
from .db.recent_runs import latest_runs
from .locks import LockInfo, get_lock_backend, task_id_of_lock_key, task_lock_key
from .models import (
    Alert,
    AlertChannel,
    AlertDelivery,
    AuditEntry,
    ScheduledTask,
    SchedulerInstance,
    TaskExecution,
)
from .services.instances import instances_alive_ids
from .tasklog import StoredLog

#: Logical keys of task locks start with this ("task:5").
#: The status page lists at most this many instances, most recent heartbeat first.
INSTANCES_SHOWN = 100
#: A search that names at most this many tasks filters on their ids (an index
#: lookup each); one that names more, on a subquery (their runs are dense, so the
#: newest-first scan fills a page at once).
TASK_IDS_INLINED = 100
#: Columns a list of executions never shows; on a big history they are most bytes.
EXECUTION_HEAVY_FIELDS = ("log_output", "error_traceback", "result")
#: The task page's run chart shows this many of the latest runs.
RECENT_RUNS_FOR_CHART = 30


def tasks_with_stats() -> QuerySet[ScheduledTask]:
    """Tasks annotated with their latest execution's id and status (no query per row).

    A fire the scheduler staged ahead of its time is not the latest run: it has
    not happened. The subqueries are served by the `exec_task_created_idx` index.
    """
    latest = (
        TaskExecution.objects.filter(task=OuterRef("pk"))
        .not_staged(now=Now())
        .order_by("-created_at", "-id")
    )
    return ScheduledTask.objects.annotate(
        last_execution_id=Subquery(latest.values("pk")[:1]),
        last_execution_status=Subquery(latest.values("status")[:1]),
    )


def tasks_for_api() -> QuerySet[ScheduledTask]:
    """tasks_with_stats() with each task's alert channels (one query for a page)."""
    return tasks_with_stats().prefetch_related(
        Prefetch("alert_channels", queryset=AlertChannel.objects.only("pk"))
    )


def alerts_overview() -> QuerySet[Alert]:
    """Alerts, newest first, with their deliveries and channels (two queries a page)."""
    deliveries = AlertDelivery.objects.select_related("channel").order_by("pk")
    return Alert.objects.prefetch_related(
        Prefetch("deliveries", queryset=deliveries)
    ).order_by("-created_at", "-id")


def tasks_with_run_stats() -> QuerySet[ScheduledTask]:
    """tasks_with_stats() plus `avg_duration_ms` and `success_ratio` (admin task list).

    Both come from the task's own columns, which the engine keeps with each batch
    of runs (db/counters.py), so sorting 10,000 tasks by either reads no
    execution: `avg_duration_ms` is the mean duration of the finished runs
    (duration totals), `success_ratio` the share of successes (counters); each
    is None before any finished run.
    """
    return tasks_with_stats().annotate(
        avg_duration_ms=Cast("duration_total_ms", FloatField())
        / NullIf("duration_count", 0, output_field=FloatField()),
        success_ratio=Cast("success_count", FloatField())
        / NullIf(F("success_count") + F("fail_count"), 0, output_field=FloatField()),
    )


def task_recent_runs(
    task: ScheduledTask, *, limit: int = RECENT_RUNS_FOR_CHART
) -> list[TaskExecution]:
    """The task's latest `limit` runs, oldest first, without the heavy columns (one query)."""
    runs = list(
        TaskExecution.objects.filter(task=task)
        .order_by("-created_at", "-id")
        .only("pk", "task_id", "status", "failure_kind", "created_at", "duration_ms")[
            :limit
        ]
    )
    runs.reverse()
    return runs


def tasks_due_within(
    seconds: float, *, now: dt.datetime | None = None, limit: int = 100
) -> list[ScheduledTask]:
    """Active tasks that fire within `seconds` from now, soonest first (at most `limit`)."""
    now = now or timezone.now()
    return list(
        ScheduledTask.objects.due(now=now + dt.timedelta(seconds=seconds)).order_by(
            "next_run_at", "pk"
        )[:limit]
    )


def executions_overview() -> QuerySet[TaskExecution]:
    """Executions, newest first, with their task's name and without heavy columns."""
    return (
        TaskExecution.objects.annotate(task_name=F("task__name"))
        .defer(*EXECUTION_HEAVY_FIELDS)
        .order_by("-created_at", "-id")
    )


def executions_of_tasks_named(
    queryset: QuerySet[TaskExecution], text: str, *, or_id: int | None = None
) -> QuerySet[TaskExecution]:
    """The executions of the tasks whose name contains `text` (and execution `or_id`).

    No JOIN of the history on the tasks: the tasks are looked up first.
    """
    tasks = ScheduledTask.objects.filter(name__icontains=text).order_by().values("pk")
    few = list(tasks.values_list("pk", flat=True)[: TASK_IDS_INLINED + 1])
    condition = Q(task__in=few if len(few) <= TASK_IDS_INLINED else tasks)
    if or_id is not None:
        condition |= Q(pk=or_id)
    return queryset.filter(condition)


def executions_with_task_name() -> QuerySet[TaskExecution]:
    """Executions with every column and their task's name (the detail page)."""
    return TaskExecution.objects.annotate(task_name=F("task__name"))


@dataclass(frozen=True)
class LogTail:
    """The log lines after a client's offset, and where to continue from."""

    offset: int
    lines: list[str]
    finished: bool
    status: str
    progress_done: int | None
    progress_total: int | None

    @property
    def progress_percent(self) -> float | None:
        if not self.progress_total:
            return None
        return min(100.0, 100.0 * (self.progress_done or 0) / self.progress_total)


def execution_log_since(execution: TaskExecution, offset: int) -> LogTail:
    """The lines of `execution`'s log from line number `offset` on (0 = the start).

    Offsets count every line the run wrote. When the capped buffer dropped lines
    from the middle of a long log, a client whose offset falls among them gets
    the "lines dropped" marker and then the kept lines, so tailing never stalls.

    While the run goes on and Redis carries its live log (livelog), the lines come
    from there, whatever machine runs it; lines older than the Redis list come
    from the row, which the run updates less often.
    """
    offset = max(0, offset)
    if execution.status == TaskExecution.Status.RUNNING:
        window = livelog.read(execution.pk, offset)
        if window is not None:
            return _live_log_since(execution, offset, window)
    stored = StoredLog.parse(execution.log_output)
    return LogTail(
        # An offset past the end (a client's mistake) resyncs to the end.
        offset=stored.end,
        lines=stored.lines(offset),
        finished=execution.is_finished,
        status=execution.status,
        progress_done=execution.progress_done,
        progress_total=execution.progress_total,
    )


def execution_with_live_log(execution: TaskExecution) -> TaskExecution:
    """`execution` with the log and progress it has now (from Redis while it runs).

    Changes the instance in memory only, for pages that show the whole log.
    """
    if execution.status == TaskExecution.Status.RUNNING:
        tail = execution_log_since(execution, 0)
        execution.log_output = "\n".join(tail.lines)
        execution.progress_done = tail.progress_done
        execution.progress_total = tail.progress_total
    return execution


def _live_log_since(
    execution: TaskExecution, offset: int, window: livelog.LiveWindow
) -> LogTail:
    lines, end = window.lines, window.end
    if offset < window.first:
        stored = StoredLog.parse(execution.log_output)
        if stored.end >= window.first:
            lines = stored.lines(offset, window.first) + lines
        else:
            # The row has not caught up with where the Redis list starts (Redis
            # lost the list meanwhile): give what the row has, the rest next poll.
            lines, end = stored.lines(offset), stored.end
    return LogTail(
        # Never back: an offset past the Redis end may come from a fresher row.
        offset=max(offset, end),
        lines=lines,
        finished=False,
        status=execution.status,
        progress_done=window.progress_done,
        progress_total=window.progress_total,
    )


@dataclass(frozen=True)
class LockOverview:
    """A live lock, with the task it belongs to when it is a task lock."""

    key: str
    owner: str
    acquired_at: dt.datetime
    expires_at: dt.datetime
    ttl_seconds: float
    task_id: int | None = None
    task_name: str | None = None


def _overview(info: LockInfo, names: dict[int, str]) -> LockOverview:
    task_id = task_id_of_lock_key(info.key)
    return LockOverview(
        key=info.key,
        owner=info.owner,
        acquired_at=info.acquired_at,
        expires_at=info.expires_at,
        ttl_seconds=round(info.ttl_seconds, 3),
        task_id=task_id,
        task_name=names.get(task_id) if task_id is not None else None,
    )


def locks_overview() -> list[LockOverview]:
    """Every live lock (task locks and the leader lease), sorted by key.

    Task names come from one query for all the locks together.
    """
    infos = get_lock_backend().list()
    task_ids = {
        task_id
        for info in infos
        if (task_id := task_id_of_lock_key(info.key)) is not None
    }
    names = dict(
        ScheduledTask.objects.filter(pk__in=task_ids).values_list("pk", "name")
    )
    return [_overview(info, names) for info in infos]


def task_lock_overview(task: ScheduledTask) -> LockOverview | None:
    """The live lock on a task, or None when no run holds it."""
    info = get_lock_backend().get(task_lock_key(task.pk))
    return None if info is None else _overview(info, {task.pk: task.name})


@dataclass(frozen=True)
class InstanceStatus:
    """One scheduler instance as the status page shows it."""

    instance_id: str
    hostname: str
    pid: int | None
    version: str
    is_leader: bool
    alive: bool
    started_at: dt.datetime
    last_heartbeat_at: dt.datetime
    heartbeat_age_seconds: float
    stopped_at: dt.datetime | None
    kind: str = SchedulerInstance.Kind.SCHEDULER
    #: What keeps it from doing its work, as its last heartbeat said ("" if nothing).
    degraded_reason: str = ""


@dataclass(frozen=True)
class SchedulerStatus:
    """Whether a scheduler runs, who leads, the instances and what is waiting."""

    running: bool
    leader: str | None
    instances: list[InstanceStatus]
    task_count: int
    task_counts: dict[str, int]
    execution_counts: dict[str, int] = field(default_factory=dict)
    checked_at: dt.datetime | None = None
    #: Celery worker processes (SCHEDULER_EXECUTOR=celery), and how many are alive.
    workers: list[InstanceStatus] = field(default_factory=list)
    worker_count: int = 0
    #: Whether a scheduler runs but cannot do its work, and why (one line each).
    degraded: bool = False
    degraded_reasons: list[str] = field(default_factory=list)
    #: How many tasks are in each health state (every state, 0 included).
    health_counts: dict[str, int] = field(default_factory=dict)
    #: Pending runs whose time has come (not fires staged ahead, nor retries
    #: still in their delay): what waits for a scheduler to start it.
    pending_backlog: int = 0


def _zero_health_counts() -> dict[str, int]:
    return {str(value): 0 for value in HealthState.values}


def task_health_counts() -> dict[str, int]:
    """How many tasks are in each health state: every state, 0 included (one query)."""
    counts = _zero_health_counts()
    for row in (
        ScheduledTask.objects.order_by().values("health").annotate(count=Count("pk"))
    ):
        counts[row["health"]] = row["count"]
    return counts


def scheduler_status(*, now: dt.datetime | None = None) -> SchedulerStatus:
    """Scheduler health: alive instances (fresh heartbeat), the leader, task counts.

    Five queries whatever the number of tasks (the counts by status and by health
    are one GROUP BY, the executions' counts and backlog another); at most
    INSTANCES_SHOWN scheduler instances and as many Celery worker processes.
    """
    now = now or timezone.now()
    alive = instances_alive_ids(now=now)
    instances = _instances_status(SchedulerInstance.Kind.SCHEDULER, alive, now)
    workers = _instances_status(SchedulerInstance.Kind.WORKER, alive, now)
    leader = next((item.instance_id for item in instances if item.is_leader), None)
    task_counts = {str(value): 0 for value in ScheduledTask.Status.values}
    health_counts = _zero_health_counts()
    for row in (
        ScheduledTask.objects.order_by()
        .values("status", "health")
        .annotate(count=Count("pk"))
    ):
        status, health = row["status"], row["health"]
        task_counts[status] = task_counts.get(status, 0) + row["count"]
        health_counts[health] = health_counts.get(health, 0) + row["count"]
    unfinished = (TaskExecution.Status.PENDING, TaskExecution.Status.RUNNING)
    execution_counts = {str(value): 0 for value in unfinished}
    backlog = 0
    come = (Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now)) & (
        Q(run_after__isnull=True) | Q(run_after__lte=now)
    )
    for row in (
        TaskExecution.objects.filter(status__in=unfinished)
        .order_by()
        .values("status")
        .annotate(count=Count("pk"), due=Count("pk", filter=come))
    ):
        execution_counts[row["status"]] = row["count"]
        if row["status"] == TaskExecution.Status.PENDING:
            backlog = row["due"]
    running = any(item.alive for item in instances)
    reasons = [
        "%s: %s" % (item.instance_id, item.degraded_reason)
        for item in instances
        if item.alive and item.degraded_reason
    ]
    if running and leader is None:
        reasons.append(
            gettext(
                "No scheduler instance holds the leader lease: nothing fires until "
                "one does (a standby takes it within a few seconds)."
            )
        )
    return SchedulerStatus(
        running=running,
        leader=leader,
        instances=instances,
        task_count=sum(task_counts.values()),
        task_counts=task_counts,
        execution_counts=execution_counts,
        checked_at=now,
        workers=workers,
        worker_count=sum(item.alive for item in workers),
        degraded=bool(reasons),
        degraded_reasons=reasons,
        health_counts=health_counts,
        pending_backlog=backlog,
    )


def _instances_status(
    kind: str, alive: set[str], now: dt.datetime
) -> list[InstanceStatus]:
    """The instances of one kind, most recent heartbeat first (one query)."""
    return [
        InstanceStatus(
            instance_id=row.instance_id,
            hostname=row.hostname,
            pid=row.pid,
            version=row.version,
            is_leader=row.is_leader and row.instance_id in alive,
            alive=row.instance_id in alive,
            started_at=row.started_at,
            last_heartbeat_at=row.last_heartbeat_at,
            heartbeat_age_seconds=round(
                max(0.0, (now - row.last_heartbeat_at).total_seconds()), 3
            ),
            stopped_at=row.stopped_at,
            kind=row.kind,
            degraded_reason=row.degraded_reason,
        )
        for row in SchedulerInstance.objects.filter(kind=kind).order_by(
            "-last_heartbeat_at"
        )[:INSTANCES_SHOWN]
    ]


# The audit trail (written by services/audit.py)

#: The actions that set a task's status; an update sets it when its changes name it.
STATUS_ACTIONS = (
    AuditAction.PAUSE,
    AuditAction.RESUME,
    AuditAction.ENABLE,
    AuditAction.DISABLE,
)
#: The status each of STATUS_ACTIONS leaves a task in.
STATUS_AFTER = {
    AuditAction.PAUSE.value: ScheduledTask.Status.PAUSED.value,
    AuditAction.RESUME.value: ScheduledTask.Status.ACTIVE.value,
    AuditAction.ENABLE.value: ScheduledTask.Status.ACTIVE.value,
    AuditAction.DISABLE.value: ScheduledTask.Status.DISABLED.value,
}
#: The entries a task page shows (the audit list has them all).
TASK_TRAIL_SHOWN = 20


@dataclass(frozen=True)
class StatusChange:
    """Who set a task's status as it is, and why (its latest such audit entry)."""

    status: str
    actor: str
    source: str
    reason: str


def tasks_with_status_change(
    queryset: QuerySet[ScheduledTask],
) -> QuerySet[ScheduledTask]:
    """`queryset` with `status_change_entry`: the latest audit entry that set the
    task's status, as a dict (action, actor, source, reason, status: what an
    update's changes set it to), or None; read it with `status_change`.

    One correlated subquery per task, on the (task, -at) index: a page of the
    task list costs no query per row.
    """
    latest = (
        AuditEntry.objects.filter(task=OuterRef("pk"))
        .filter(Q(action__in=STATUS_ACTIONS) | Q(changes__has_key="status"))
        .order_by("-at", "-id")
        .values(
            entry=JSONObject(
                action="action",
                actor="actor_name",
                source="source",
                reason="reason",
                status="changes__status",
            )
        )[:1]
    )
    # Only paused and disabled tasks say who did it: an active task's history
    # (run-now entries by the hundred thousand) is never walked.
    return queryset.annotate(
        status_change_entry=Case(
            When(
                status__in=(ScheduledTask.Status.PAUSED, ScheduledTask.Status.DISABLED),
                then=Subquery(latest, output_field=JSONField()),
            ),
            default=None,
            output_field=JSONField(),
        )
    )


def status_change(task: ScheduledTask) -> StatusChange | None:
    """Who put `task` (from tasks_with_status_change) in its current status, or
    None when its latest status entry set another one (or there is none)."""
    entry = getattr(task, "status_change_entry", None)
    if not isinstance(entry, dict):
        return None
    status = STATUS_AFTER.get(entry.get("action") or "")
    changed = entry.get("status")
    if status is None and isinstance(changed, list) and len(changed) == 2:
        status = changed[1]
    if status != task.status:
        return None
    return StatusChange(
        status=str(status),
        actor=str(entry.get("actor") or ""),
        source=str(entry.get("source") or ""),
        reason=str(entry.get("reason") or ""),
    )


def task_audit_trail(
    task: ScheduledTask, *, limit: int = TASK_TRAIL_SHOWN
) -> list[AuditEntry]:
    """The task's latest `limit` audit entries, newest first (one query)."""
    return list(AuditEntry.objects.filter(task=task).order_by("-at", "-id")[:limit])


def audit_entries() -> QuerySet[AuditEntry]:
    """Every audit entry, newest first (the API's list)."""
    return AuditEntry.objects.order_by("-at", "-id")


#: How many runs and tasks each list of the admin index's dashboard shows.
DASHBOARD_ROWS = 5
#: The dashboard's window of failures.
DASHBOARD_FAILURES_WINDOW = dt.timedelta(hours=24)
#: How far ahead the dashboard lists the next runs due.
DASHBOARD_DUE_WINDOW_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Dashboard:
    """What the admin index says at a glance; each part links to its list."""

    status: SchedulerStatus
    #: Failed runs created within DASHBOARD_FAILURES_WINDOW, and the latest of them.
    failures: int
    latest_failures: list[TaskExecution]
    #: The runs going on longest, oldest start first.
    longest_running: list[TaskExecution]
    next_due: list[ScheduledTask]
    failures_since: dt.datetime


def dashboard(*, now: dt.datetime | None = None) -> Dashboard:
    """The admin index's dashboard: a bounded number of queries (scheduler_status's
    five, four more), whatever the number of tasks and runs; the status index
    serves the run lists."""
    now = now or timezone.now()
    since = now - DASHBOARD_FAILURES_WINDOW
    light = ("pk", "task_id", "task__name", "status", "failure_kind", "created_at")
    failed = TaskExecution.objects.filter(
        status=TaskExecution.Status.FAILED, created_at__gte=since
    )
    return Dashboard(
        status=scheduler_status(now=now),
        failures=failed.count(),
        latest_failures=list(
            failed.select_related("task")
            .only(*light, "error_message")
            .order_by("-created_at", "-id")[:DASHBOARD_ROWS]
        ),
        longest_running=list(
            TaskExecution.objects.filter(status=TaskExecution.Status.RUNNING)
            .select_related("task")
            .only(*light, "started_at", "instance_id")
            .order_by("started_at", "id")[:DASHBOARD_ROWS]
        ),
        next_due=tasks_due_within(
            DASHBOARD_DUE_WINDOW_SECONDS, now=now, limit=DASHBOARD_ROWS
        ),
        failures_since=since,
    )


#: How many of each task's latest runs its duration statistics read.
STATS_RECENT_RUNS = 20


@dataclass(frozen=True)
class DurationStats:
    """A task's durations over its latest finished runs (seed 003's statistics)."""

    task_id: int
    name: str
    #: Runs measured: those of its latest STATS_RECENT_RUNS that ran to an end
    #: (succeeded or failed) with a duration.
    count: int
    total_ms: int
    min_ms: int | None
    max_ms: int | None
    avg_ms: float | None


def duration_stats(
    *, recent: int = STATS_RECENT_RUNS, slow_over_seconds: float | None = None
) -> list[DurationStats]:
    """Every task's duration statistics over its latest `recent` runs, by name; with
    `slow_over_seconds`, only the tasks whose average is over it, slowest first.

    Two statements whatever the number of tasks (db/recent_runs.py reads each
    task's latest runs in one; on SQLite a run tied with the `recent`-th at its
    creation time is read too).
    """
    measured: dict[int, list[int]] = {}
    for task_id, status, duration_ms in latest_runs(limit=recent):
        if duration_ms is not None and status in (
            TaskExecution.Status.SUCCESS,
            TaskExecution.Status.FAILED,
        ):
            measured.setdefault(task_id, []).append(duration_ms)
    stats = []
    for task_id, name in ScheduledTask.objects.order_by("name").values_list(
        "pk", "name"
    ):
        durations = measured.get(task_id, [])
        total = sum(durations)
        stats.append(
            DurationStats(
                task_id=task_id,
                name=name,
                count=len(durations),
                total_ms=total,
                min_ms=min(durations) if durations else None,
                max_ms=max(durations) if durations else None,
                avg_ms=total / len(durations) if durations else None,
            )
        )
    if slow_over_seconds is None:
        return stats
    slow = [
        item
        for item in stats
        if item.avg_ms is not None and item.avg_ms > slow_over_seconds * 1000
    ]
    return sorted(slow, key=lambda item: (-(item.avg_ms or 0), item.name))
