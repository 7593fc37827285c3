"""Executions on real Celery workers: records, kills, duplicate messages, limits."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.utils import timezone

from scheduler_app import selectors
from scheduler_app.engine.celery_executor import RUN_EXECUTION, CeleryExecutor
from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import ScheduledTask, SchedulerInstance, TaskExecution
from scheduler_app.services import (
    executions_recover_abandoned,
    task_create,
    task_request_run,
)
from tests.celery.conftest import (
    INSTANCE_STALE_SECONDS,
    TASK_LOCK_TTL,
    Broker,
    process_env,
)
from tests.celery.helpers import ended, manual, pending
from tests.factories import make_execution, make_task
from tests.helpers import readme_command
from tests.processes import (
    STARTUP_TIMEOUT,
    SchedulerProcess,
    WorkerProcess,
    parent_pid,
    wait_for,
)

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

Status = TaskExecution.Status
Trigger = TaskExecution.TriggerType


# 1. Runs on workers ------------------------------------------------------------------


def test_a_scheduled_run_and_a_run_now_end_as_complete_records_on_a_worker(
    start_worker: Callable[..., WorkerProcess],
    broker: Broker,
    scripts_dir: Path,
    tmp_path: Path,
) -> None:
    # The README's commands as they are, on the default queue ("scheduler"): this
    # test's key prefix keeps its messages apart.
    worker = start_worker(command=readme_command("celery "))
    assert (
        readme_command("python manage.py runscheduler")
        == "python manage.py runscheduler"
    )
    scheduler = SchedulerProcess(
        "A",
        process_env(
            broker,
            {
                "SCHEDULER_EXECUTOR": "celery",
                "SCHEDULER_SCRIPTS_PATH": str(scripts_dir),
            },
        ),
        tmp_path / "runscheduler.log",
    )
    try:
        interval = task_create(
            task=ScheduledTask(
                name="every second",
                task_type="interval",
                interval_seconds=1,
                handler_path="scripts:logger",
            )
        )
        on_demand = manual("on demand", "scripts:logger", handler_kwargs={"lines": "5"})
        worker.wait_ready(processes=1)
        run_now = task_request_run(task=on_demand)
        runs = TaskExecution.objects.filter(
            task=interval, trigger_type=Trigger.SCHEDULED
        )

        wait_for(
            lambda: (
                runs.filter(status=Status.SUCCESS).count() >= 2 and ended(run_now)()
            ),
            STARTUP_TIMEOUT,
            worker,
            scheduler,
        )
    finally:
        scheduler.stop()

    workers = {
        row.instance_id: row for row in SchedulerInstance.objects.filter(kind="worker")
    }
    run_now.refresh_from_db()
    assert (run_now.status, run_now.trigger_type) == (Status.SUCCESS, Trigger.MANUAL), (
        run_now.error_message,
        worker.report(),
    )
    assert run_now.result == {"lines": 5}
    assert run_now.log_output.count(" line ") == 5, run_now.log_output
    assert (run_now.progress_done, run_now.progress_total) == (5, 5)
    assert run_now.instance_id in workers, (run_now.instance_id, workers)
    assert run_now.instance_id.startswith("celery@")
    for run in runs.filter(status=Status.SUCCESS):
        assert run.instance_id in workers
        assert run.scheduled_for is not None and run.started_at >= run.scheduled_for
        assert run.finished_at is not None and run.duration_ms is not None
        assert "line 3" in run.log_output and run.result == {"lines": 3}
    interval.refresh_from_db()
    assert interval.success_count >= 2 and interval.last_run_at is not None
    status = selectors.scheduler_status()
    assert status.worker_count >= 1
    assert run_now.instance_id in {item.instance_id for item in status.workers}
    assert all(item.kind == "scheduler" for item in status.instances)


# 2. Duplicate messages ------------------------------------------------------------


def test_a_message_delivered_twice_runs_the_execution_once(
    start_worker: Callable[..., WorkerProcess],
    celery_app: Celery,
    broker: Broker,
    tmp_path: Path,
) -> None:
    calls = tmp_path / "calls.txt"
    task = manual(
        "counted", "scripts:counted", handler_kwargs={"path": repr(str(calls))}
    )
    execution = task_request_run(task=task)
    worker = start_worker()
    worker.wait_ready(processes=2)

    # Two copies at once, so both pool processes take one while the run goes on.
    for _ in range(2):
        celery_app.send_task(RUN_EXECUTION, args=[execution.pk], queue=broker.queue)
    wait_for(ended(execution), 10, worker)
    wait_for(lambda: broker.waiting() == 0, 10, worker)

    execution.refresh_from_db()
    assert execution.status == Status.SUCCESS, (
        execution.error_message,
        worker.report(),
    )
    assert calls.read_text() == "ran\n"
    task.refresh_from_db()
    assert (task.run_count, task.success_count) == (1, 1)
    assert (
        "nothing to run" in worker.output() or "not running it again" in worker.output()
    )


def test_a_worker_runs_nothing_for_a_row_whose_handler_is_not_allowed(
    start_worker: Callable[..., WorkerProcess],
    celery_app: Celery,
    broker: Broker,
    tmp_path: Path,
) -> None:
    """A row written behind the services' back (SQL, a restored dump) with os:system."""
    canary = tmp_path / "canary"
    task = make_task(
        name="hostile",
        task_type="manual",
        interval_seconds=None,
        handler_path="os:system",
        handler_kwargs={"command": repr("touch %s" % canary)},
    )
    execution = make_execution(
        task, status=Status.PENDING, trigger_type=TaskExecution.TriggerType.MANUAL
    )
    worker = start_worker()
    worker.wait_ready(processes=2)

    celery_app.send_task(RUN_EXECUTION, args=[execution.pk], queue=broker.queue)
    execution = wait_for(ended(execution), 10, worker)

    assert execution.status == Status.FAILED, worker.report()
    assert "is not allowed" in execution.error_message
    assert "@scheduler_app.handler" in execution.error_message
    assert not canary.exists()


def test_the_executor_sends_each_execution_once_until_a_worker_claims_it(
    start_worker: Callable[..., WorkerProcess],
    executor: CeleryExecutor,
    broker: Broker,
) -> None:
    task = manual("logged", "scripts:logger")
    execution = pending(task_request_run(task=task))

    executor.submit([execution])
    executor.submit([execution])  # the engine offering it again: not sent twice

    assert executor.inflight() == {execution.pk}
    assert broker.waiting() == 1
    worker = start_worker()
    pool = worker.wait_ready(processes=2)
    wait_for(ended(execution), STARTUP_TIMEOUT, worker)
    executor._next_check = 0.0  # the next check is due now, not in 2 s
    assert executor.inflight() == set()
    assert TaskExecution.objects.get(pk=execution.pk).status == Status.SUCCESS

    worker.stop()  # warm shutdown: the pool processes say goodbye
    stopped = SchedulerInstance.objects.filter(pk__in=[row.pk for row in pool])
    assert all(row.stopped_at is not None for row in stopped), worker.report()


# 3. A worker killed mid-run ----------------------------------------------------------


@pytest.mark.parametrize("killed", ["pool process", "whole worker"])
def test_a_run_whose_worker_is_killed_is_abandoned_and_the_next_fire_runs(
    killed: str,
    start_worker: Callable[..., WorkerProcess],
    broker: Broker,
    scripts_dir: Path,
    tmp_path: Path,
    settings: Any,
) -> None:
    # A pool process's death is recorded by its worker at once; a whole worker's by
    # the recovery once its heartbeats are stale, which must not race the former.
    stale = INSTANCE_STALE_SECONDS if killed == "whole worker" else 60
    settings.SCHEDULER_INSTANCE_STALE_SECONDS = stale
    timings = {"SCHEDULER_INSTANCE_STALE_SECONDS": str(stale)}
    marker = tmp_path / "first-run-started"
    first_worker = start_worker(extra_env=timings)
    # Later fires go to whichever worker is alive: the same one after a pool
    # process dies (its pool starts another), a second one when the first is gone.
    spare = start_worker(extra_env=timings) if killed == "whole worker" else None
    scheduler = SchedulerProcess(
        "A",
        process_env(
            broker,
            {
                "SCHEDULER_EXECUTOR": "celery",
                "SCHEDULER_SCRIPTS_PATH": str(scripts_dir),
                "SCHEDULER_DEFAULT_QUEUE": broker.queue,
                **timings,
            },
        ),
        tmp_path / "runscheduler.log",
    )
    processes = [first_worker, scheduler] + ([spare] if spare else [])
    try:
        first_worker.wait_ready(processes=2)
        if spare is not None:
            spare.wait_ready(processes=2)
        # Created once the workers are ready, so the first fire is the first run.
        task = task_create(
            task=ScheduledTask(
                name="killed mid-run",
                task_type="interval",
                interval_seconds=1,
                handler_path="scripts:first_sleeps",
                handler_kwargs={"marker": repr(str(marker))},
            )
        )
        # The first fire's handler is in its long sleep once the marker exists.
        wait_for(marker.exists, STARTUP_TIMEOUT, *processes)
        long_run = TaskExecution.objects.filter(task=task).order_by("created_at", "pk")[
            0
        ]
        assert long_run.status == Status.RUNNING, long_run.error_message
        victim = SchedulerInstance.objects.get(instance_id=long_run.instance_id)
        assert victim.kind == "worker" and victim.instance_id.startswith(("w1-", "w2-"))

        owner = first_worker if parent_pid(victim.pid) == first_worker.pid else spare
        assert owner is not None, victim
        if killed == "pool process":
            os.kill(victim.pid, signal.SIGKILL)
        else:
            owner.kill_all()
        killed_at = timezone.now()
        # The run's task lock outlives its holder until its TTL runs out.
        lock = get_lock_backend().get(task_lock_key(task.pk))
        assert lock is not None and victim.instance_id in lock.owner, lock

        def recorded() -> TaskExecution | None:
            if killed == "whole worker":
                # What the leading scheduler does every minute (and at takeover).
                executions_recover_abandoned()
            return ended(long_run)()

        long_run = wait_for(recorded, INSTANCE_STALE_SECONDS + 10, *processes)
        assert (long_run.status, long_run.failure_kind) == (
            Status.FAILED,
            "abandoned",
        ), (
            long_run.error_message,
            owner.report(),
        )
        assert victim.instance_id in long_run.error_message
        if killed == "pool process":
            assert "WorkerLostError" in long_run.error_message
            # The message went back to the queue; delivered again, it ran nothing.
            wait_for(
                lambda: (
                    "Execution %d is already failed" % long_run.pk in owner.output()
                ),
                10,
                *processes,
            )

        wait_for(
            lambda: TaskExecution.objects.filter(
                task=task, status=Status.SUCCESS, scheduled_for__gt=killed_at
            ).exists(),
            TASK_LOCK_TTL + 10,
            *processes,
        )
    finally:
        scheduler.stop()
    assert get_lock_backend().get(task_lock_key(task.pk)) is None or (
        victim.instance_id not in get_lock_backend().get(task_lock_key(task.pk)).owner
    )
    started_at = long_run.started_at
    long_run.refresh_from_db()
    # Its message, delivered again (pool process) or not, ran nothing twice.
    assert (long_run.status, long_run.started_at) == (Status.FAILED, started_at)


# 4. Time limits ------------------------------------------------------------------


def test_the_hard_time_limit_kills_a_handler_that_ignores_the_soft_one(
    start_worker: Callable[..., WorkerProcess], executor: CeleryExecutor, settings: Any
) -> None:
    settings.SCHEDULER_CELERY_HARD_LIMIT_GRACE_SECONDS = 1
    task = manual("stubborn", "scripts:stubborn", timeout_seconds=1)
    execution = pending(task_request_run(task=task))
    worker = start_worker()
    worker.wait_ready(processes=2)

    executor.submit([execution])
    execution = wait_for(ended(execution), 15, worker)

    assert (execution.status, execution.failure_kind) == (Status.FAILED, "timeout"), (
        execution.error_message,
        worker.report(),
    )
    assert "hard time limit of 2 s" in execution.error_message
    assert "TimeLimitExceeded" in execution.error_message
    assert execution.instance_id and execution.instance_id in execution.error_message
    task.refresh_from_db()
    assert (task.run_count, task.fail_count) == (1, 1)


def test_a_handler_holding_the_database_past_its_hard_limit_is_recorded_at_once(
    start_worker: Callable[..., WorkerProcess], executor: CeleryExecutor, settings: Any
) -> None:
    """Its process is killed before the record, which would otherwise wait for the
    row lock it holds (and, on SQLite, for the busy timeout: 20 s)."""
    settings.SCHEDULER_CELERY_HARD_LIMIT_GRACE_SECONDS = 1
    task = manual(
        "holder",
        "scripts:holds_the_database",
        timeout_seconds=1,
        handler_kwargs={"task": '"holder"'},
    )
    execution = pending(task_request_run(task=task))
    worker = start_worker()
    worker.wait_ready(processes=2)

    executor.submit([execution])
    execution = wait_for(ended(execution), 10, worker)

    assert (execution.status, execution.failure_kind) == (Status.FAILED, "timeout"), (
        execution.error_message,
        worker.report(),
    )
    assert "hard time limit of 2 s" in execution.error_message
    task.refresh_from_db()
    assert task.description != "held"  # its transaction died with its process
    assert (task.run_count, task.fail_count) == (1, 1)


def test_the_soft_time_limit_stops_a_handler_and_the_worker_process_lives_on(
    start_worker: Callable[..., WorkerProcess], executor: CeleryExecutor
) -> None:
    task = manual("sleepy", "scripts:sleeper", timeout_seconds=1)
    execution = pending(task_request_run(task=task))
    worker = start_worker()
    worker.wait_ready(processes=2)

    executor.submit([execution])
    execution = wait_for(ended(execution), 15, worker)

    assert (execution.status, execution.failure_kind) == (Status.FAILED, "timeout"), (
        execution.error_message,
        worker.report(),
    )
    assert "hard time limit" not in execution.error_message
    assert "sleeping" in execution.log_output
    # Stopped by an exception in the handler: the same process goes on beating.
    row = SchedulerInstance.objects.get(instance_id=execution.instance_id)
    assert row.stopped_at is None
    assert any(
        item.alive and item.instance_id == execution.instance_id
        for item in selectors.scheduler_status().workers
    )
