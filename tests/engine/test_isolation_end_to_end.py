"""End to end: a real runscheduler survives what its handlers do to their processes.

The scheduler runs with the product's default, SCHEDULER_ISOLATION=process, on the
test database; the hostile handlers are tests/sample_handlers/hostile.py.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import task_create, task_request_run
from tests.processes import (
    STARTUP_TIMEOUT,
    Processes,
    SchedulerProcess,
    child_env,
    gone,
    path_param,
    reports,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Status = TaskExecution.Status
HOSTILE = "tests.sample_handlers.hostile"


@pytest.fixture
def start_scheduler(
    processes: Processes, tmp_path: Path
) -> Callable[..., SchedulerProcess]:
    def start(**extra_env: str) -> SchedulerProcess:
        suffix = uuid.uuid4().hex[:8]
        env = child_env(
            SCHEDULER_HANDLER_MODULES=HOSTILE,
            SCHEDULER_HEARTBEAT_INTERVAL="0.5",
            SCHEDULER_SHUTDOWN_GRACE_SECONDS="2",
            SCHEDULER_KILL_GRACE_SECONDS="1",
            SCHEDULER_LEADER_LOCK_KEY="isolation-leader-%s" % suffix,
            **extra_env,
        )
        log_path = tmp_path / ("runscheduler-%d.log" % len(processes.started))
        return processes.start(SchedulerProcess("isolation", env, log_path))

    return start


def task(name: str, handler: str, **fields: object) -> ScheduledTask:
    return task_create(
        task=ScheduledTask(
            name=name, handler_path="%s:%s" % (HOSTILE, handler), **fields
        )
    )


def noted(marker: Path) -> list[int] | None:
    """The pids a handler wrote to `marker`, once it has."""
    text = marker.read_text().strip() if marker.exists() else ""
    return [int(word) for word in text.split()] if text else None


def finished(execution: TaskExecution) -> TaskExecution | None:
    execution.refresh_from_db()
    return None if execution.status in (Status.PENDING, Status.RUNNING) else execution


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_the_scheduler_fires_and_records_in_either_isolation(
    start_scheduler: Callable[..., SchedulerProcess], isolation: str
) -> None:
    ticker = task("ticker", "pid", task_type="interval", interval_seconds=1)
    scheduler = start_scheduler(SCHEDULER_ISOLATION=isolation)

    def three_runs() -> list[TaskExecution] | None:
        runs = list(ticker.executions.filter(status=Status.SUCCESS))
        return runs if len(runs) >= 3 else None

    runs = wait_for(three_runs, STARTUP_TIMEOUT, scheduler)
    pids = {run.result for run in runs}
    if isolation == "process":
        assert scheduler.pid not in pids
    else:
        assert pids == {scheduler.pid}


def test_a_handler_that_crashes_its_process_loses_only_its_run(
    start_scheduler: Callable[..., SchedulerProcess],
) -> None:
    ticker = task("ticker", "pid", task_type="interval", interval_seconds=1)
    crasher = task("crasher", "segfault", task_type="manual")
    scheduler = start_scheduler()
    wait_for(lambda: ticker.executions.filter(status=Status.SUCCESS).exists(), 30)

    crash = task_request_run(task=crasher)
    crashed = wait_for(lambda: finished(crash), STARTUP_TIMEOUT, scheduler)
    assert crashed.status == Status.FAILED
    assert "exited with signal 11 (SIGSEGV)" in crashed.error_message
    after = crashed.finished_at

    # The scheduler is alive, and the ticker goes on firing every second.
    def three_fires_after() -> list[TaskExecution] | None:
        runs = list(
            ticker.executions.filter(
                status=Status.SUCCESS, scheduled_for__gt=after
            ).order_by("scheduled_for")
        )
        return runs if len(runs) >= 3 else None

    runs = wait_for(three_fires_after, 15, scheduler)
    steps = {
        later.scheduled_for - earlier.scheduled_for
        for earlier, later in zip(runs, runs[1:], strict=False)
    }
    assert steps == {dt.timedelta(seconds=1)}, reports(scheduler)
    assert scheduler.alive()


def test_after_sigterm_no_handler_process_outlives_the_scheduler(
    start_scheduler: Callable[..., SchedulerProcess], tmp_path: Path
) -> None:
    marker = tmp_path / "pids"
    sleeper = task(
        "sleeper",
        "sleep_with_child",
        task_type="manual",
        handler_kwargs={"marker": path_param(marker)},
    )
    scheduler = start_scheduler()
    run = task_request_run(task=sleeper)
    handler_pid, sleep_pid = wait_for(lambda: noted(marker), STARTUP_TIMEOUT, scheduler)

    scheduler.send_signal(signal.SIGTERM)
    try:
        code = scheduler.popen.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("runscheduler did not exit after SIGTERM\n" + reports(scheduler))

    assert code == 0, reports(scheduler)
    run.refresh_from_db()
    assert (run.status, run.failure_kind) == (Status.FAILED, "interrupted")
    wait_for(lambda: gone(handler_pid) and gone(sleep_pid), 10)
