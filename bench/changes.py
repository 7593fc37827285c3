"""Scenario 3: change propagation and run-now latency, 50 samples each.

Propagation: how long a change committed elsewhere (here: the bench process,
through the services the admin and API use) takes to be acted on by the running
scheduler. Each sample makes a one-off task due at once, alternately
  - created:  services.task_create(task=ScheduledTask(task_type="date", run_date=now + 1 ms))
  - edited:   services.task_update(task=<an active date task due tomorrow>,
                                   changes={"run_date": now + 1 ms})
and propagation = created_at of the fire the engine records - the commit (timed by
an on_commit callback that runs right after COMMIT, before the service's own
Redis notification). created_at is the clock of the engine tick that recorded the
fire, so a tick that began a hair before the commit (it had already been woken)
can show as slightly negative. That is the time to notice the
change and record its fire; "to start" adds the hand-over to the thread pool
(started_at - commit). Without Redis the engine notices on its next poll (every
0.25 s); with Redis a notification wakes it at once.

Run-now latency: services.task_request_run(task=<a manual task>) while the scheduler
runs; latency = started_at - created_at of the pending execution it creates.

Samples are spaced by a random 0.2-0.6 s (so they land anywhere in the poll cycle),
one at a time: the next starts once the previous one has run.
"""

from __future__ import annotations

import datetime as dt
import random
import time

from django.db import transaction
from django.utils import timezone

from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import task_create, task_request_run, task_update

from .common import (
    HANDLER,
    Context,
    Outcome,
    create_tasks,
    scheduler_process,
    summary_ms,
    utc,
    wait_leader,
    wait_until,
)

SAMPLES = 50
SAMPLE_TIMEOUT = 10.0
PREFIX = "bench-change"


def _wait_finished(execution_filter: dict) -> TaskExecution | None:
    def finished() -> TaskExecution | None:
        return (
            TaskExecution.objects.filter(**execution_filter, finished_at__isnull=False)
            .order_by("id")
            .first()
        )

    return wait_until(finished, timeout=SAMPLE_TIMEOUT, every=0.01)


def run(ctx: Context) -> Outcome:
    ctx.settle()
    ctx.db.reset()
    rng = random.Random(3)
    tomorrow = time.time() + 86400
    create_tasks(
        PREFIX + "-edit",
        SAMPLES // 2,
        task_type="date",
        run_date=utc(tomorrow),
        next_run_at=lambda i: utc(tomorrow),
    )
    create_tasks(PREFIX + "-runnow", 1, task_type="manual")
    process = scheduler_process(ctx.db, ctx.workdir, "changes", threads=ctx.threads)
    process.start()
    propagation: list[float] = []
    to_start: list[float] = []
    run_now: list[float] = []
    lost = {"propagation": 0, "run-now": 0}
    kinds: dict[str, list[float]] = {"created": [], "edited": []}
    try:
        wait_leader(process)
        time.sleep(1.0)
        edits = list(ScheduledTask.objects.filter(name__startswith=PREFIX + "-edit-"))
        for i in range(SAMPLES):
            time.sleep(rng.uniform(0.2, 0.6))
            now = timezone.now()
            run_date = now + dt.timedelta(milliseconds=1)
            commits: list[float] = []
            # An outer transaction only to timestamp the commit: this callback runs
            # right after COMMIT, before the service's own (the Redis notification).
            with transaction.atomic():
                transaction.on_commit(lambda sink=commits: sink.append(time.time()))
                if i % 2 == 0:
                    task = task_create(
                        task=ScheduledTask(
                            name="%s-new-%02d" % (PREFIX, i),
                            task_type="date",
                            run_date=run_date,
                            handler_path=HANDLER,
                        ),
                        now=now,
                    )
                    kind = "created"
                else:
                    task = task_update(
                        task=edits[i // 2], changes={"run_date": run_date}, now=now
                    )
                    kind = "edited"
            committed = commits[0]
            execution = _wait_finished({"task": task, "trigger_type": "scheduled"})
            if execution is None:
                lost["propagation"] += 1
                continue
            delay = execution.created_at.timestamp() - committed
            propagation.append(delay)
            kinds[kind].append(delay)
            if execution.started_at is not None:
                to_start.append(execution.started_at.timestamp() - committed)
        manual = ScheduledTask.objects.get(name__startswith=PREFIX + "-runnow-")
        for _ in range(SAMPLES):
            time.sleep(rng.uniform(0.2, 0.6))
            requested = task_request_run(task=manual)
            execution = _wait_finished({"pk": requested.pk})
            if execution is None or execution.started_at is None:
                lost["run-now"] += 1
                continue
            run_now.append(
                (execution.started_at - execution.created_at).total_seconds()
            )
    finally:
        process.stop()
    metrics = {
        "propagation_ms": summary_ms(propagation),
        "propagation_created_ms": summary_ms(kinds["created"]),
        "propagation_edited_ms": summary_ms(kinds["edited"]),
        "change_to_start_ms": summary_ms(to_start),
        "run_now_ms": summary_ms(run_now),
        "lost": lost,
    }
    rows = []
    for label, key in (
        ("propagation (all changes)", "propagation_ms"),
        ("  created tasks", "propagation_created_ms"),
        ("  edited tasks", "propagation_edited_ms"),
        ("change to run started", "change_to_start_ms"),
        ("run-now (started - created)", "run_now_ms"),
    ):
        figures = metrics[key]
        rows.append(
            [label, figures["n"], figures["p50"], figures["p99"], figures["max"]]
        )
    outcome = Outcome(
        "changes",
        "3. Change propagation and run-now latency (%s)"
        % ("Redis notifications" if ctx.db.redis else "database polling"),
        ["measure", "n", "p50 ms", "p99 ms", "max ms"],
        rows=rows,
        metrics=metrics,
    )
    if any(lost.values()):
        outcome.notes.append(
            "samples not seen within %.0f s: %s" % (SAMPLE_TIMEOUT, lost)
        )
    return outcome
