"""Scenario 2: 5000 cron tasks due at the same instant.

Every task has the 6-field cron "<S> * * * * *" (once a minute, at second S) and
next_run_at = D, the same whole second a little ahead. The figures are times from D:
until the engine's insert of the 5000 fires is visible (polled every 20 ms), until
every run has started (max started_at), and until every run is recorded as a
success (max finished_at, all 5000 with status success).
"""

from __future__ import annotations

import time

from scheduler_app.models import TaskExecution

from .common import (
    Context,
    Outcome,
    Workers,
    create_tasks,
    next_whole_second,
    running,
    scheduler_process,
    summary_ms,
    utc,
    wait_leader,
    wait_until,
)
from .fires import log_problems

COUNT = 5000
LEAD_SECONDS = 12.0
#: Give up this long after D (the tasks fire again 60 s after D).
TIMEOUT_SECONDS = 50.0
PREFIX = "bench-burst"


def measure(
    ctx: Context,
    *,
    workers: Workers | None = None,
    name: str = "burst",
    timeout: float = TIMEOUT_SECONDS,
) -> dict:
    """One measurement; with `workers`, the executions run on them (scenario 7)."""
    ctx.settle()
    ctx.db.reset()
    with running(workers, name) as executor_env:
        return _measure(ctx, workers, name, executor_env, timeout)


def _measure(
    ctx: Context,
    workers: Workers | None,
    name: str,
    executor_env: dict[str, str],
    timeout: float,
) -> dict:
    due = next_whole_second(time.time() + LEAD_SECONDS)
    # Once a minute at second S; once an hour (at minute M, second S) when the wait may
    # outlast the minute, so that the next fires do not queue up behind the burst.
    cron = "%d * * * * *" % (int(due) % 60)
    if timeout >= 55:
        cron = "%d %d * * * *" % (int(due) % 60, int(due) // 60 % 60)
    create_tasks(
        PREFIX,
        COUNT,
        task_type="cron",
        cron_expression=cron,
        next_run_at=lambda i: utc(due),
    )
    executions = TaskExecution.objects.filter(
        task__name__startswith=PREFIX + "-", scheduled_for=utc(due)
    )
    process = scheduler_process(
        ctx.db, ctx.workdir, name, threads=ctx.threads, extra_env=executor_env
    )
    process.start()
    sampler = ctx.sampler(process.pid)
    try:
        ready = wait_leader(process)
        wait_until(lambda: time.time() >= due, timeout=LEAD_SECONDS + 5, every=0.2)
        # The fires' insert commits as one statement: watch for it closely.
        wait_until(lambda: executions.count() >= COUNT, timeout=timeout, every=0.02)
        fired_seen = time.time()
        wait_until(
            lambda: (
                executions.filter(status=TaskExecution.Status.SUCCESS).count() >= COUNT
            ),
            timeout=timeout,
            every=0.25,
        )
        done = time.time()
        figures = {
            **sampler.figures(due, done),
            **(workers.figures(due, done) if workers else {}),
        }
    finally:
        sampler.stop()
        process.stop()
    rows = list(
        executions.values_list("created_at", "started_at", "finished_at", "status")
    )
    succeeded = sum(1 for *_, status in rows if status == TaskExecution.Status.SUCCESS)
    started = [s.timestamp() for _c, s, _f, _st in rows if s is not None]
    finished = [
        f.timestamp() for _c, _s, f, st in rows if f is not None and st == "success"
    ]
    created = [c for c, *_ in rows]
    complete = succeeded == COUNT
    return {
        "tasks": COUNT,
        "fired": len(rows),
        "succeeded": succeeded,
        # Seen by polling every 20 ms: when the one insert of the 5000 fires was visible.
        "all_fired_s": fired_seen - due if len(created) == COUNT else None,
        "all_started_s": max(started) - due if len(started) == COUNT else None,
        "all_recorded_s": max(finished) - due if complete else None,
        # Runs recorded per second from the due instant (of those recorded so far).
        "rate_per_s": len(finished) / (max(finished) - due) if finished else None,
        "start_lateness_ms": summary_ms(s - due for s in started),
        **figures,
        "ready_before_due_s": due - ready,
        "timeout_s": timeout,
        "log_problems": log_problems(process.log.read_text(errors="replace")),
    }


def run(ctx: Context) -> Outcome:
    metrics = measure(ctx)
    succeeded = metrics["succeeded"]
    outcome = Outcome(
        "burst",
        "2. Burst: %d cron tasks due at the same instant" % COUNT,
        [
            "tasks",
            "fired",
            "success",
            "all fired s",
            "all started s",
            "all recorded s",
            "start p50 ms",
            "start p99 ms",
            "CPU %",
            "peak RSS MB",
            "DB CPU %",
            "others CPU %",
        ],
        rows=[
            [
                COUNT,
                metrics["fired"],
                succeeded,
                metrics["all_fired_s"],
                metrics["all_started_s"],
                metrics["all_recorded_s"],
                metrics["start_lateness_ms"]["p50"],
                metrics["start_lateness_ms"]["p99"],
                metrics["cpu_percent"],
                metrics["peak_rss_mb"],
                metrics["db_cpu_percent"],
                metrics["others_cpu_percent"],
            ]
        ],
        metrics=metrics,
    )
    if succeeded < COUNT:
        outcome.notes.append(
            "only %d of %d succeeded within %.0f s of the due instant"
            % (succeeded, COUNT, TIMEOUT_SECONDS)
        )
    return outcome
