"""The Prometheus metrics of `GET /metrics`: their names, the reads behind them, the collector.

The names are a contract (README, "Metrics"): ENDPOINT_METRICS lists what the web
process serves, PROCESS_METRICS what `runscheduler --metrics-port N` serves of the
scheduler process itself, and the README and docs/grafana-dashboard.json are
tested against both. A scrape reads the database in four queries whatever the
number of tasks (`metrics_snapshot`) and builds its metric families from them
on a registry of its own (`metrics_exposition`), never the global default one.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from ..choices import ExecutionStatus, InstanceKind
from ..db.recent_runs import latest_runs
from ..models import ScheduledTask, TaskExecution
from .instances import instances_alive


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its name as PromQL writes it, type, labels and meaning."""

    name: str
    #: counter, gauge, summary or histogram.
    kind: str
    labels: tuple[str, ...]
    help: str

    @property
    def series_names(self) -> tuple[str, ...]:
        """The names its samples carry (a histogram's buckets, a summary's sum ...)."""
        if self.kind == "histogram":
            return tuple(self.name + end for end in ("_bucket", "_sum", "_count"))
        if self.kind == "summary":
            return (self.name, self.name + "_sum", self.name + "_count")
        return (self.name,)


#: Statuses of `scheduler_task_runs_total`, each from the task's own counter
#: (kept as runs end, so no cleanup of the history lowers one).
RUN_STATUSES = (
    ExecutionStatus.SUCCESS,
    ExecutionStatus.FAILED,
    ExecutionStatus.SKIPPED,
    ExecutionStatus.CANCELLED,
)
UNFINISHED_STATUSES = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
#: `scheduler_task_duration_seconds` quantiles (label, value): min, median, p95, max.
DURATION_QUANTILES = (("0", 0.0), ("0.5", 0.5), ("0.95", 0.95), ("1", 1.0))
#: The quantiles are over the finished runs among each task's latest this many
#: executions.
RECENT_RUNS = 20

#: GET /metrics (the web process), read from the database at each scrape.
ENDPOINT_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "scheduler_task_runs_total",
        "counter",
        ("task", "status"),
        "Runs of the task that ended, by status (success, failed, skipped, "
        "cancelled), from the task's own counters: every run ever, whatever the "
        "cleanup deletes of the history.",
    ),
    MetricSpec(
        "scheduler_task_last_success_timestamp_seconds",
        "gauge",
        ("task",),
        "When the task's latest successful run ended (Unix time); absent before any.",
    ),
    MetricSpec(
        "scheduler_task_last_run_timestamp_seconds",
        "gauge",
        ("task",),
        "When the task's latest run started (Unix time); absent before any.",
    ),
    MetricSpec(
        "scheduler_task_next_fire_timestamp_seconds",
        "gauge",
        ("task",),
        "When the task fires next (Unix time); absent when it will not (paused, "
        "manual, a one-off that ran).",
    ),
    MetricSpec(
        "scheduler_task_duration_seconds",
        "summary",
        ("task", "quantile"),
        "Run durations: quantiles 0 (min), 0.5, 0.95 and 1 (max) over the "
        "finished runs among the task's latest %d executions; _sum and _count "
        "over every finished run." % RECENT_RUNS,
    ),
    MetricSpec(
        "scheduler_task_health",
        "gauge",
        ("task", "state"),
        "The task's health state: one sample a task, 1, labelled with its state "
        "(up, new, late, missed, failing, running_long, paused).",
    ),
    MetricSpec(
        "scheduler_executions",
        "gauge",
        ("status",),
        "Executions pending (fires staged ahead of their time included) and running.",
    ),
    MetricSpec(
        "scheduler_instances_alive",
        "gauge",
        ("kind",),
        "Instances whose heartbeat is fresh: scheduler (runscheduler), worker "
        "(Celery worker processes) and cli (manage.py run_task).",
    ),
    MetricSpec(
        "scheduler_leader",
        "gauge",
        ("instance",),
        "1 for the alive scheduler instance that holds the leader lease, 0 for "
        "the alive ones standing by.",
    ),
)

#: `runscheduler --metrics-port N`: the scheduler process's own figures, served
#: by that process (not by GET /metrics; engine/metrics.py measures them, and
#: tests/engine/test_metrics.py checks its registry against this list); listed
#: here so that the README and the Grafana dashboard are checked against one list
#: of every exported name.
PROCESS_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "scheduler_fire_lateness_seconds",
        "histogram",
        (),
        "Scheduled fire time to the start of its handler.",
    ),
    MetricSpec(
        "scheduler_claim_to_start_seconds",
        "histogram",
        (),
        "A claimed run's claim (or its fire time, when claimed ahead of it) to "
        "the start of its handler.",
    ),
    MetricSpec(
        "scheduler_fires_total",
        "counter",
        (),
        "Scheduled fires the engine handed to its executor.",
    ),
    MetricSpec(
        "scheduler_claims_total",
        "counter",
        (),
        "Executions this process claimed (scheduled, run-now and retries).",
    ),
    MetricSpec(
        "scheduler_loop_tick_delay_seconds",
        "histogram",
        (),
        "How much later than it meant the engine's loop woke from a sleep.",
    ),
)

#: Every metric the product exports, by name.
EXPORTED_METRICS: dict[str, MetricSpec] = {
    spec.name: spec for spec in (*ENDPOINT_METRICS, *PROCESS_METRICS)
}


@dataclass(frozen=True)
class TaskFigures:
    """What a scrape says of one task."""

    name: str
    health: str
    last_run_at: dt.datetime | None
    next_run_at: dt.datetime | None
    last_success_at: dt.datetime | None
    runs: dict[str, int]
    duration_total_ms: int
    duration_count: int
    #: The durations (ms) of the finished runs among its latest RECENT_RUNS.
    recent_durations_ms: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class MetricsSnapshot:
    """Everything one scrape reports, read at one time."""

    tasks: list[TaskFigures]
    executions: dict[str, int]
    instances_alive: dict[str, int]
    #: Alive scheduler instance id -> whether it holds the leader lease.
    leaders: dict[str, bool]


def metrics_snapshot(*, now: dt.datetime | None = None) -> MetricsSnapshot:
    """Read what a scrape reports: four queries, whatever the number of tasks.

    The tasks with their counters and latest success; the executions pending
    and running (exec_status_created_idx: never the finished history); the
    durations of the tasks' recent runs; the alive instances.
    """
    executions = {str(status): 0 for status in UNFINISHED_STATUSES}
    for status, count in (
        TaskExecution.objects.filter(status__in=UNFINISHED_STATUSES)
        .order_by()
        .values("status")
        .annotate(count=Count("pk"))
        .values_list("status", "count")
    ):
        executions[status] += count
    durations: dict[int, list[int]] = {}
    for task_id, status, duration_ms in latest_runs(limit=RECENT_RUNS):
        if status in TaskExecution.TIMED_STATUSES and duration_ms is not None:
            durations.setdefault(task_id, []).append(duration_ms)
    # The end of each task's latest success: an index walk per task
    # (exec_task_created_idx), which stops at the first success.
    successes = TaskExecution.objects.filter(
        task=OuterRef("pk"), status=ExecutionStatus.SUCCESS
    ).order_by("-created_at")
    tasks = []
    for row in (
        ScheduledTask.objects.order_by()
        .annotate(last_success_at=Subquery(successes.values("finished_at")[:1]))
        .values_list(
            "pk",
            "name",
            "health",
            "last_run_at",
            "next_run_at",
            "last_success_at",
            "success_count",
            "fail_count",
            "skipped_count",
            "cancelled_count",
            "duration_total_ms",
            "duration_count",
        )
    ):
        pk, name, health, last_run_at, next_run_at, last_success_at = row[:6]
        success_count, fail_count, skipped_count, cancelled_count = row[6:10]
        duration_total_ms, duration_count = row[10:]
        tasks.append(
            TaskFigures(
                name=name,
                health=health,
                last_run_at=last_run_at,
                next_run_at=next_run_at,
                last_success_at=last_success_at,
                runs={
                    ExecutionStatus.SUCCESS: success_count,
                    ExecutionStatus.FAILED: fail_count,
                    ExecutionStatus.SKIPPED: skipped_count,
                    ExecutionStatus.CANCELLED: cancelled_count,
                },
                duration_total_ms=duration_total_ms,
                duration_count=duration_count,
                recent_durations_ms=sorted(durations.get(pk, [])),
            )
        )
    alive = {str(kind): 0 for kind in InstanceKind.values}
    leaders: dict[str, bool] = {}
    for instance_id, kind, is_leader in (
        instances_alive(now=now or timezone.now())
        .order_by("instance_id")
        .values_list("instance_id", "kind", "is_leader")
    ):
        alive[kind] = alive.get(kind, 0) + 1
        if kind == InstanceKind.SCHEDULER:
            leaders[instance_id] = is_leader
    return MetricsSnapshot(
        tasks=tasks, executions=executions, instances_alive=alive, leaders=leaders
    )


def quantile(values: list[int], q: float) -> float:
    """The nearest-rank `q` quantile of sorted `values` (0: the least, 1: the most)."""
    return float(values[max(0, math.ceil(q * len(values)) - 1)])


def _timestamp(when: dt.datetime) -> float:
    return when.timestamp()


class SchedulerCollector:
    """A prometheus_client collector: each `collect()` reads a fresh snapshot."""

    def __init__(self, *, now: dt.datetime | None = None) -> None:
        self.now = now

    def collect(self) -> Iterator[Metric]:
        snapshot = metrics_snapshot(now=self.now)
        specs = {spec.name: spec for spec in ENDPOINT_METRICS}

        def help_of(name: str) -> str:
            return specs[name].help

        runs = CounterMetricFamily(
            "scheduler_task_runs_total",
            help_of("scheduler_task_runs_total"),
            labels=("task", "status"),
        )
        last_success = _gauge("scheduler_task_last_success_timestamp_seconds", specs)
        last_run = _gauge("scheduler_task_last_run_timestamp_seconds", specs)
        next_fire = _gauge("scheduler_task_next_fire_timestamp_seconds", specs)
        duration = SummaryMetricFamily(
            "scheduler_task_duration_seconds",
            help_of("scheduler_task_duration_seconds"),
            labels=("task",),
        )
        health = GaugeMetricFamily(
            "scheduler_task_health",
            help_of("scheduler_task_health"),
            labels=("task", "state"),
        )
        for task in snapshot.tasks:
            name = task.name
            for status in RUN_STATUSES:
                runs.add_metric((name, status), task.runs[status])
            if task.last_success_at is not None:
                last_success.add_metric((name,), _timestamp(task.last_success_at))
            if task.last_run_at is not None:
                last_run.add_metric((name,), _timestamp(task.last_run_at))
            if task.next_run_at is not None:
                next_fire.add_metric((name,), _timestamp(task.next_run_at))
            recent = task.recent_durations_ms
            if recent:
                for label, q in DURATION_QUANTILES:
                    duration.add_sample(
                        "scheduler_task_duration_seconds",
                        {"task": name, "quantile": label},
                        quantile(recent, q) / 1000,
                    )
            duration.add_metric(
                (name,), task.duration_count, task.duration_total_ms / 1000
            )
            health.add_metric((name, task.health), 1)
        executions = GaugeMetricFamily(
            "scheduler_executions",
            help_of("scheduler_executions"),
            labels=("status",),
        )
        for unfinished, count in snapshot.executions.items():
            executions.add_metric((unfinished,), count)
        alive = GaugeMetricFamily(
            "scheduler_instances_alive",
            help_of("scheduler_instances_alive"),
            labels=("kind",),
        )
        for kind, count in snapshot.instances_alive.items():
            alive.add_metric((kind,), count)
        leader = GaugeMetricFamily(
            "scheduler_leader", help_of("scheduler_leader"), labels=("instance",)
        )
        for instance_id, leads in snapshot.leaders.items():
            leader.add_metric((instance_id,), 1 if leads else 0)
        yield from (
            runs,
            last_success,
            last_run,
            next_fire,
            duration,
            health,
            executions,
            alive,
            leader,
        )


def _gauge(name: str, specs: dict[str, MetricSpec]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, specs[name].help, labels=specs[name].labels)


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the block runs (if it was on).

    A scrape allocates a few objects a sample (the rows, the samples, their
    labels), none in a cycle; the full collections they set off cost a quarter
    of a 1,000-task scrape (measured: ~50 ms of ~220).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def metrics_exposition(*, now: dt.datetime | None = None) -> bytes:
    """The metrics in Prometheus' text format, read now (a registry of their own)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SchedulerCollector(now=now))
    with _collection_paused():
        return generate_latest(registry)
