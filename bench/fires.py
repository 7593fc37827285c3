"""Scenario 1 (+5): N interval tasks firing every second, and what the scheduler costs.

Tasks are bulk-created before the scheduler starts, with next_run_at set per phase
(the engine trusts it on its initial load): `spread` puts task i at T0 + i/N (one
after another across the second), `aligned` puts them all at T0 (.000). Each fire is
a real TaskExecution run by `runscheduler`'s thread pool through execution_run.

From the database afterwards, for fires scheduled in [T0, T0 + duration):
  lateness   started_at - scheduled_for of every execution that started
  staged     scheduled_for - created_at, the least of them: how long before its time
             the closest-run fire was recorded (staged ahead; negative = recorded late)
  missed     expected fires - fires that ran to success
  duplicates executions beyond the first for one (task, scheduled_for)
Meanwhile /proc/<pid> of the scheduler gives CPU (utime+stime) and peak VmRSS.
"""

from __future__ import annotations

import math
import time
from collections import Counter

from scheduler_app.models import TaskExecution

from .common import (
    Context,
    Outcome,
    Workers,
    create_tasks,
    next_whole_second,
    progress,
    running,
    scheduler_process,
    sleep_until,
    summary_ms,
    utc,
    wait_leader,
)

#: Between creating the tasks and T0: covers the scheduler's start and initial load.
LEAD_SECONDS = 8.0
#: After the window: late runs of the window's fires still get to finish.
DRAIN_SECONDS = 5.0
#: The idle measurement lasts this long at most.
IDLE_MAX_SECONDS = 30

PREFIX = "bench-fire"
HEADERS = [
    "tasks",
    "phase",
    "expected",
    "ran",
    "missed",
    "dups",
    "unstarted",
    "late p50 ms",
    "late p99 ms",
    "late max ms",
    "staged ahead min ms",
    "CPU %",
    "peak RSS MB",
    "DB CPU %",
    "handler procs CPU %",
    "handler procs RSS MB",
    "others CPU %",
    "log warn/err",
]


def log_problems(text: str) -> tuple[int, int]:
    lines = text.splitlines()
    return (
        sum(" WARNING " in line for line in lines),
        sum(" ERROR " in line or "Traceback" in line for line in lines),
    )


def fire_stats(*, prefix: str, start: float, end: float, offsets: list[float]) -> dict:
    """Lateness, missed and duplicates of the fires scheduled in [start, end)."""
    rows = list(
        TaskExecution.objects.filter(
            task__name__startswith=prefix + "-",
            trigger_type=TaskExecution.TriggerType.SCHEDULED,
            scheduled_for__gte=utc(start),
            scheduled_for__lt=utc(end),
        ).values_list("task_id", "scheduled_for", "created_at", "started_at", "status")
    )
    # Interval 1 s from start + offset: every whole second of the window after the phase.
    expected = sum(max(0, math.ceil(end - (start + offset))) for offset in offsets)
    per_fire = Counter((task_id, scheduled) for task_id, scheduled, *_ in rows)
    ran = {
        (task_id, scheduled)
        for task_id, scheduled, _c, _s, status in rows
        if status == TaskExecution.Status.SUCCESS
    }
    statuses = Counter(status for *_, status in rows)
    lateness = [
        (started - scheduled).total_seconds()
        for _t, scheduled, _c, started, _st in rows
        if started is not None
    ]
    staged_ahead = [
        (scheduled - created).total_seconds()
        for _t, scheduled, created, _s, _st in rows
    ]
    return {
        "expected": expected,
        "recorded": len(per_fire),
        "ran": len(ran),
        "missed": expected - len(ran),
        "duplicates": sum(count - 1 for count in per_fire.values() if count > 1),
        "unstarted": sum(1 for row in rows if row[3] is None),
        "statuses": dict(statuses),
        "lateness_ms": summary_ms(lateness),
        "staged_ahead_min_ms": round(min(staged_ahead) * 1000, 1)
        if staged_ahead
        else None,
    }


def measure(
    ctx: Context,
    count: int,
    phase: str,
    *,
    workers: Workers | None = None,
    name: str | None = None,
) -> dict:
    """One window; with `workers`, the executions run on them (scenario 7)."""
    ctx.settle()
    ctx.db.reset()
    name = name or "fires-%d-%s" % (count, phase)
    with running(workers, name) as executor_env:
        return _measure(ctx, count, phase, workers, name, executor_env)


def _measure(
    ctx: Context,
    count: int,
    phase: str,
    workers: Workers | None,
    name: str,
    executor_env: dict[str, str],
) -> dict:
    t0 = next_whole_second(time.time() + LEAD_SECONDS)
    offsets = [(i / count if phase == "spread" else 0.0) for i in range(count)]
    create_tasks(
        PREFIX,
        count,
        task_type="interval",
        interval_seconds=1,
        next_run_at=lambda i: utc(t0 + offsets[i]),
    )
    end = t0 + ctx.duration
    process = scheduler_process(
        ctx.db, ctx.workdir, name, threads=ctx.threads, extra_env=executor_env
    )
    process.start()
    sampler = ctx.sampler(process.pid)
    try:
        ready = wait_leader(process)
        sleep_until(end + DRAIN_SECONDS)
        figures = {
            **sampler.figures(t0, end),
            **(workers.figures(t0, end) if workers else {}),
        }
    finally:
        sampler.stop()
        process.stop()
    stats = fire_stats(prefix=PREFIX, start=t0, end=end, offsets=offsets)
    warnings, errors = log_problems(process.log.read_text(errors="replace"))
    return {
        "tasks": count,
        "phase": phase,
        "ready_before_t0_s": t0 - ready,
        **figures,
        "log_warnings": warnings,
        "log_errors": errors,
        **stats,
    }


def row(result: dict) -> list:
    late, staged = result["lateness_ms"], result["staged_ahead_min_ms"]
    return [
        result["tasks"],
        result["phase"],
        result["expected"],
        result["ran"],
        result["missed"],
        result["duplicates"],
        result["unstarted"],
        late["p50"],
        late["p99"],
        late["max"],
        staged,
        result["cpu_percent"],
        result["peak_rss_mb"],
        result["db_cpu_percent"],
        result.get("handlers_cpu_percent"),
        result.get("handlers_rss_mb"),
        result["others_cpu_percent"],
        "%d/%d" % (result["log_warnings"], result["log_errors"]),
    ]


def run(ctx: Context, *, counts: list[int], phases: list[str]) -> Outcome:
    outcome = Outcome(
        "fires",
        "1. N tasks every 1 s for %d s (runscheduler, %s)"
        % (ctx.duration, ctx.executes()),
        HEADERS,
    )
    for count in counts:
        for phase in phases:
            result = measure(ctx, count, phase)
            outcome.metrics["%s-%d" % (phase, count)] = result
            outcome.rows.append(row(result))
            print("   ", progress(row(result)), flush=True)
            if result["ready_before_t0_s"] < 0:
                outcome.notes.append(
                    "%d %s: the scheduler led only %.1f s after T0; its start is in the figures"
                    % (count, phase, -result["ready_before_t0_s"])
                )
            others = {
                status: n
                for status, n in result["statuses"].items()
                if status != "success"
            }
            if others:
                outcome.notes.append(
                    "%d %s: statuses other than success: %s" % (count, phase, others)
                )
    return outcome


def run_idle(ctx: Context) -> Outcome:
    """Scenario 5 at idle: the scheduler with nothing to fire."""
    ctx.settle()
    ctx.db.reset()
    window = min(ctx.duration, IDLE_MAX_SECONDS)
    process = scheduler_process(ctx.db, ctx.workdir, "idle", threads=ctx.threads)
    process.start()
    sampler = ctx.sampler(process.pid)
    try:
        ready = wait_leader(process)
        start = ready + 1.0
        sleep_until(start + window + 0.3)
        figures = sampler.figures(start, start + window)
    finally:
        sampler.stop()
        process.stop()
    outcome = Outcome(
        "idle",
        "5. Scheduler at idle (%d s window)" % window,
        ["state", "CPU %", "peak RSS MB", "DB CPU %", "others CPU %"],
        rows=[
            [
                "idle",
                figures["cpu_percent"],
                figures["peak_rss_mb"],
                figures["db_cpu_percent"],
                figures["others_cpu_percent"],
            ]
        ],
        metrics={**figures, "window_s": window},
    )
    return outcome
