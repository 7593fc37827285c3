"""Handlers in handler processes (SCHEDULER_ISOLATION=process): what a handler does to
its process costs only its own run.

The executor here is the one runscheduler uses, in this process, with real handler
processes; the handlers are in tests/sample_handlers/hostile.py and report through
files, since nothing in memory is shared with them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler_app.choices import Isolation
from scheduler_app.engine.executor import InlineExecutor
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import execution_cancel, task_request_run
from tests.factories import make_task
from tests.helpers import wait_until
from tests.processes import gone, path_param

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskExecution.Status
FINISHED = (Status.SUCCESS, Status.FAILED, Status.SKIPPED, Status.CANCELLED)
#: Starting Django in a new handler process takes about a second on a busy machine.
DEADLINE = 30.0


def hostile(name: str, **fields: Any) -> ScheduledTask:
    return make_task(
        name=fields.pop("task_name", name),
        handler_path="tests.sample_handlers.hostile:" + name,
        **fields,
    )


@pytest.fixture
def executor(settings: Any) -> Iterator[Any]:
    """Makes a process-isolated executor; every one made is shut down after the test."""
    settings.SCHEDULER_KILL_GRACE_SECONDS = 1
    made: list[InlineExecutor] = []

    def make(workers: int = 1) -> InlineExecutor:
        made.append(InlineExecutor(workers, isolation=Isolation.PROCESS))
        return made[-1]

    yield make
    for each in made:
        each.shutdown(grace_seconds=10)


def run(executor: InlineExecutor, *tasks: ScheduledTask) -> list[TaskExecution]:
    """Request a run of each task, hand them all over, return them once all ended."""
    executions = [task_request_run(task=task) for task in tasks]
    executor.submit(executions)
    return [ended(execution) for execution in executions]


def ended(execution: TaskExecution) -> TaskExecution:
    # A fresh row each time: the instance handed over is the executor's to change,
    # and refreshing it here could undo its end before the executor saves it.
    def finished() -> TaskExecution | None:
        return TaskExecution.objects.filter(
            pk=execution.pk, status__in=FINISHED
        ).first()

    return wait_until(finished, timeout=DEADLINE)


def pids_in(marker: Path) -> list[int]:
    text = wait_until(lambda: marker.exists() and marker.read_text().strip())
    return [int(word) for word in text.split()]


def test_runs_happen_in_another_process_and_their_prints_and_logs_go_to_the_run_log(
    executor: Any,
) -> None:
    [where, chatty] = run(executor(), hostile("pid"), hostile("chatty"))

    assert where.status == Status.SUCCESS
    assert where.result != os.getpid()
    assert chatty.status == Status.SUCCESS and chatty.result == "chatted"
    lines = [line.split("] ", 1)[1] for line in chatty.log_output.splitlines()]
    assert lines[:5] == [
        "printed line 0",
        "printed line 1",
        "printed line 2",
        "to stderr",
        "WARNING hostile.handler: a logged warning",
    ]
    assert set(lines[5:]) == {"and task_log", "no newline at the end"}


@pytest.mark.parametrize(
    ("handler", "params", "what"),
    [
        ("exit_now", {"code": "3"}, "exited with code 3"),
        ("segfault", {}, "exited with signal 11 (SIGSEGV)"),
    ],
)
def test_a_process_that_exits_or_crashes_loses_only_its_run(
    executor: Any, handler: str, params: dict[str, str], what: str
) -> None:
    pool = executor()
    [before] = run(pool, hostile("pid", task_name="before"))
    [crashed, after] = run(
        pool, hostile(handler, handler_kwargs=params), hostile("pid", task_name="after")
    )

    assert crashed.status == Status.FAILED
    assert crashed.failure_kind == TaskExecution.FailureKind.ERROR
    assert crashed.error_message == (
        "The handler process %s while running the handler." % what
    )
    assert after.status == Status.SUCCESS, after.error_message
    assert after.result != before.result  # a new process took over
    assert gone(before.result)


def test_a_timeout_stops_the_handler_and_its_children_before_the_lock_is_freed(
    executor: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "pids"
    task = hostile(
        "sleep_with_child",
        timeout_seconds=1,
        overlap_policy=ScheduledTask.OverlapPolicy.SKIP,
        handler_kwargs={"marker": path_param(marker)},
    )
    [timed_out] = run(executor(), task)

    assert timed_out.status == Status.FAILED
    assert timed_out.failure_kind == TaskExecution.FailureKind.TIMEOUT
    assert "its handler process was stopped" in timed_out.error_message
    handler_pid, sleep_pid = pids_in(marker)
    # Recorded (and the skip lock freed) only once both were gone.
    assert gone(handler_pid) and gone(sleep_pid)


@pytest.mark.parametrize("handler", ["busy", "ignore_term"])
def test_a_handler_that_spins_or_ignores_sigterm_is_killed_after_the_grace(
    executor: Any, tmp_path: Path, handler: str
) -> None:
    marker = tmp_path / "pid"
    task = hostile(
        handler, timeout_seconds=1, handler_kwargs={"marker": path_param(marker)}
    )
    started = time.monotonic()
    [timed_out] = run(executor(), task)

    assert timed_out.failure_kind == TaskExecution.FailureKind.TIMEOUT
    [pid] = pids_in(marker)
    assert gone(pid)
    # timeout 1 s + kill grace 1 s + a process start: not the old "runs on forever".
    assert time.monotonic() - started < DEADLINE


def test_a_skip_task_never_overlaps_itself_across_a_timeout(
    executor: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "probe"
    task = hostile(
        "probe",
        timeout_seconds=1,
        overlap_policy=ScheduledTask.OverlapPolicy.SKIP,
        handler_kwargs={"marker": path_param(marker), "seconds": "3"},
    )
    pool = executor(2)
    first = task_request_run(task=task)
    pool.submit([first])
    wait_until(lambda: marker.exists(), timeout=DEADLINE)
    second = task_request_run(task=task)
    pool.submit([second])
    first, second = ended(first), ended(second)

    # The second either found the lock held (skipped) or started after the first
    # was killed: never while it ran.
    events = [line.split() for line in marker.read_text().splitlines()]
    assert [event[0] for event in events].count("end") == 0
    if second.status != Status.SKIPPED:
        first_pid, second_pid = int(events[0][1]), int(events[1][1])
        assert first_pid != second_pid and gone(first_pid)


def test_one_blocking_async_handler_does_not_stall_the_others(executor: Any) -> None:
    pool = executor(2)
    blocker = task_request_run(task=hostile("async_block", timeout_seconds=20))
    pool.submit([blocker])
    wait_until(
        lambda: TaskExecution.objects.get(pk=blocker.pk).status == Status.RUNNING
    )
    started = time.monotonic()
    [quick] = run(pool, hostile("async_quick"))

    assert quick.status == Status.SUCCESS
    assert time.monotonic() - started < 15  # the blocker still blocks its own loop
    assert TaskExecution.objects.get(pk=blocker.pk).status == Status.RUNNING
    execution_cancel(execution=blocker)
    assert ended(blocker).status == Status.CANCELLED


def test_a_cancel_stops_a_cooperative_handler_at_its_next_task_log(
    executor: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "pid"
    pool = executor()
    execution = task_request_run(
        task=hostile("cooperative", handler_kwargs={"marker": path_param(marker)})
    )
    pool.submit([execution])
    [pid] = pids_in(marker)
    execution_cancel(execution=execution)

    assert ended(execution).status == Status.CANCELLED
    assert not gone(pid)  # it stopped by itself: its process is kept


def test_a_cancel_the_handler_ignores_kills_it_after_the_grace(
    executor: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "pids"
    pool = executor()
    execution = task_request_run(
        task=hostile("sleep_with_child", handler_kwargs={"marker": path_param(marker)})
    )
    pool.submit([execution])
    handler_pid, sleep_pid = pids_in(marker)
    execution_cancel(execution=execution)

    assert ended(execution).status == Status.CANCELLED
    assert gone(handler_pid) and gone(sleep_pid)


def test_a_process_is_replaced_after_max_runs(executor: Any, settings: Any) -> None:
    settings.SCHEDULER_WORKER_MAX_RUNS = 2
    pool = executor()
    pids = [
        run(pool, hostile("pid", task_name="pid-%d" % n))[0].result for n in range(3)
    ]

    assert pids[0] == pids[1] != pids[2]
    assert wait_until(lambda: gone(pids[0]))


def test_a_process_is_replaced_once_its_memory_passes_the_limit(
    executor: Any, settings: Any
) -> None:
    settings.SCHEDULER_WORKER_MAX_MEMORY_MB = 40
    pool = executor()
    [leaked] = run(pool, hostile("leak", handler_kwargs={"megabytes": "64"}))
    [after] = run(pool, hostile("pid"))

    assert leaked.status == Status.SUCCESS
    assert after.result != leaked.result
    assert wait_until(lambda: gone(leaked.result))


def test_shutdown_ends_the_handler_processes(executor: Any) -> None:
    pool = executor(2)
    [where] = run(pool, hostile("pid"))
    pool.shutdown(grace_seconds=5)

    assert wait_until(lambda: gone(where.result), timeout=DEADLINE)


def test_a_huge_message_or_endless_partial_line_stays_within_the_log_cap(
    executor: Any,
) -> None:
    [flooded] = run(
        executor(), hostile("huge_output", handler_kwargs={"megabytes": "3"})
    )

    assert flooded.status == Status.SUCCESS
    assert len(flooded.log_output.encode()) <= 2**20  # SCHEDULER_LOG_MAX_BYTES
    assert "the next message had 3145728 characters; its last 2097152 were cut" in (
        flooded.log_output
    )
    assert "y" * 1000 in flooded.log_output  # the print arrived, in pieces


def test_a_huge_result_or_error_is_cut_in_the_handler_process_before_it_crosses(
    executor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler processes read their settings from the environment; this one's
    # caps stay the defaults (256 KiB), so what is stored was cut over there.
    monkeypatch.setenv("SCHEDULER_RESULT_MAX_BYTES", "4096")
    monkeypatch.setenv("SCHEDULER_ERROR_MAX_BYTES", "2048")
    monkeypatch.setenv("SCHEDULER_TRACEBACK_MAX_BYTES", "4096")
    big = {"megabytes": "3"}
    result, error = run(
        executor(),
        make_task(
            name="huge-result",
            handler_path="tests.sample_handlers.runs:huge_result",
            handler_kwargs=big,
        ),
        make_task(
            name="huge-error",
            handler_path="tests.sample_handlers.runs:huge_error",
            handler_kwargs=big,
        ),
    )

    assert result.status == Status.SUCCESS
    assert result.result["truncated"] is True
    assert result.result["max_bytes"] == 4096
    assert result.result["size_bytes"] == len(json.dumps({"rows": ["r" * 1000] * 3072}))
    assert "SCHEDULER_RESULT_MAX_BYTES=4096" in result.log_output
    assert error.status == Status.FAILED
    assert len(error.error_message.encode()) <= 2048
    assert "at most SCHEDULER_ERROR_MAX_BYTES=2048 bytes" in error.error_message
    assert error.error_message.endswith("mmm END")
    assert len(error.error_traceback.encode()) <= 4096
    assert "SCHEDULER_TRACEBACK_MAX_BYTES=4096" in error.log_output
