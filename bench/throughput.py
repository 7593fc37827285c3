"""Scenario 4: run-now throughput.

1000 manual tasks; with the scheduler running, services.tasks_request_run() asks
for a run of each in one go (one insert of 1000 pending executions and one
notification, as the admin's bulk "run now" does). Rate = 1000 / (last finished_at
- created_at of the requests).
"""

from __future__ import annotations

import time

from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import tasks_request_run

from .common import (
    Context,
    Outcome,
    Workers,
    create_tasks,
    running,
    scheduler_process,
    wait_leader,
    wait_until,
)

COUNT = 1000
TIMEOUT_SECONDS = 120.0
PREFIX = "bench-runnow"


def measure(
    ctx: Context, *, workers: Workers | None = None, name: str = "throughput"
) -> dict:
    """One measurement; with `workers`, the executions run on them (scenario 7)."""
    ctx.settle()
    ctx.db.reset()
    create_tasks(PREFIX, COUNT, task_type="manual")
    with running(workers, name) as executor_env:
        return _measure(ctx, workers, name, executor_env)


def _measure(
    ctx: Context, workers: Workers | None, name: str, executor_env: dict[str, str]
) -> dict:
    process = scheduler_process(
        ctx.db, ctx.workdir, name, threads=ctx.threads, extra_env=executor_env
    )
    process.start()
    sampler = ctx.sampler(process.pid)
    executions = TaskExecution.objects.filter(task__name__startswith=PREFIX + "-")
    try:
        wait_leader(process)
        time.sleep(1.0)
        requested_at = time.time()
        tasks_request_run(
            tasks=ScheduledTask.objects.filter(name__startswith=PREFIX + "-")
        )
        wait_until(
            lambda: executions.filter(finished_at__isnull=False).count() >= COUNT,
            timeout=TIMEOUT_SECONDS,
            every=0.1,
        )
        done = time.time()
        figures = {
            **sampler.figures(requested_at, done),
            **(workers.figures(requested_at, done) if workers else {}),
        }
    finally:
        sampler.stop()
        process.stop()
    rows = list(
        executions.values_list("created_at", "started_at", "finished_at", "status")
    )
    created = min(c.timestamp() for c, *_ in rows)
    started = [s.timestamp() for _c, s, _f, _st in rows if s is not None]
    finished = [f.timestamp() for _c, _s, f, _st in rows if f is not None]
    succeeded = sum(1 for *_, status in rows if status == TaskExecution.Status.SUCCESS)
    complete = len(finished) == COUNT
    span = max(finished) - created if complete else None
    return {
        "requests": COUNT,
        "finished": len(finished),
        "succeeded": succeeded,
        "all_started_s": max(started) - created if len(started) == COUNT else None,
        "all_finished_s": span,
        "rate_per_s": COUNT / span if span else None,
        **figures,
    }


def run(ctx: Context) -> Outcome:
    metrics = measure(ctx)
    outcome = Outcome(
        "throughput",
        "4. Run-now throughput: %d requests created in one go" % COUNT,
        [
            "requests",
            "success",
            "all started s",
            "all finished s",
            "rate /s",
            "CPU %",
            "peak RSS MB",
            "DB CPU %",
            "others CPU %",
        ],
        rows=[
            [
                COUNT,
                metrics["succeeded"],
                metrics["all_started_s"],
                metrics["all_finished_s"],
                metrics["rate_per_s"],
                metrics["cpu_percent"],
                metrics["peak_rss_mb"],
                metrics["db_cpu_percent"],
                metrics["others_cpu_percent"],
            ]
        ],
        metrics=metrics,
    )
    if metrics["finished"] < COUNT:
        outcome.notes.append(
            "only %d of %d finished within %.0f s"
            % (metrics["finished"], COUNT, TIMEOUT_SECONDS)
        )
    return outcome
