"""The inline executor: the execution path's stages, batched, on a pool of threads."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from django.utils import timezone

from scheduler_app.engine.executor import InlineExecutor
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import task_request_run
from tests.factories import make_sample_task as make
from tests.factories import make_task
from tests.helpers import DatabaseAway, wait_until
from tests.sample_handlers import runs

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskExecution.Status


@pytest.fixture(autouse=True)
def _reset_handlers() -> Iterator[None]:
    runs.reset()
    yield
    runs.release.set()


@pytest.fixture
def executors() -> Iterator[list[InlineExecutor]]:
    """Executors a test makes, shut down after it (their threads close their connections)."""
    made: list[InlineExecutor] = []
    yield made
    runs.release.set()
    for executor in made:
        executor.shutdown(grace_seconds=5)


def statuses(executions: list[TaskExecution]) -> list[str]:
    by_id = dict(
        TaskExecution.objects.filter(pk__in=[e.pk for e in executions]).values_list(
            "pk", "status"
        )
    )
    return [by_id[e.pk] for e in executions]


def test_submitted_executions_are_run_and_recorded_in_batches(
    executors: list[InlineExecutor],
) -> None:
    tasks = [
        make("add", name="add-%d" % n, handler_kwargs={"a": str(n)}) for n in range(25)
    ]
    executions = [task_request_run(task=task) for task in tasks]
    executor = InlineExecutor(max_workers=4)
    executors.append(executor)

    executor.submit(executions)

    assert wait_until(lambda: statuses(executions) == [Status.SUCCESS] * 25)
    assert wait_until(lambda: executor.inflight() == set())
    assert sorted(call["a"] for call in runs.calls) == list(range(25))
    counts = ScheduledTask.objects.filter(pk__in=[t.pk for t in tasks]).values_list(
        "run_count", "success_count"
    )
    assert set(counts) == {(1, 1)}


def test_a_second_run_of_a_skip_task_in_the_same_batch_is_skipped(
    executors: list[InlineExecutor],
) -> None:
    task = make("log_then_block")
    first, second = task_request_run(task=task), task_request_run(task=task)
    executor = InlineExecutor(max_workers=4)
    executors.append(executor)

    executor.submit([first, second])

    assert wait_until(lambda: statuses([second]) == [Status.SKIPPED])
    assert statuses([first]) == [Status.RUNNING]
    second.refresh_from_db()
    assert "exec:%s" % first.pk in second.result["message"]
    runs.release.set()
    assert wait_until(lambda: statuses([first]) == [Status.SUCCESS])


def test_shutdown_gives_back_claimed_runs_that_never_started(
    executors: list[InlineExecutor],
) -> None:
    blocking = task_request_run(task=make("block_ignoring_cancel"))
    waiting = task_request_run(task=make("add", handler_kwargs={"a": "1"}))
    executor = InlineExecutor(max_workers=1)
    executors.append(executor)

    executor.submit([blocking, waiting])
    assert runs.started.wait(10)
    still_running = executor.shutdown(grace_seconds=0.2)

    assert still_running == {blocking.pk}
    assert statuses([blocking, waiting]) == [Status.RUNNING, Status.PENDING]
    assert executor.inflight() == {blocking.pk}
    waiting.refresh_from_db()
    assert waiting.instance_id == "" and waiting.started_at is None
    assert runs.calls == []


def test_started_at_is_when_the_handler_started_not_when_it_was_claimed(
    executors: list[InlineExecutor],
) -> None:
    blocking = task_request_run(task=make("block_ignoring_cancel"))
    queued = task_request_run(task=make("add", handler_kwargs={"a": "1"}))
    executor = InlineExecutor(max_workers=1)
    executors.append(executor)

    executor.submit([blocking, queued])
    assert runs.started.wait(10)
    assert wait_until(
        lambda: statuses([queued]) == [Status.RUNNING]
    )  # claimed, waiting
    claimed_at = TaskExecution.objects.get(pk=queued.pk).started_at
    runs.release.set()

    assert wait_until(lambda: statuses([blocking, queued]) == [Status.SUCCESS] * 2)
    blocking.refresh_from_db()
    queued.refresh_from_db()
    assert queued.started_at > claimed_at
    assert queued.started_at >= blocking.finished_at - dt.timedelta(milliseconds=50)


def test_a_duplicate_submission_runs_once(executors: list[InlineExecutor]) -> None:
    execution = task_request_run(task=make("add", handler_kwargs={"a": "1"}))
    executor = InlineExecutor(max_workers=2)
    executors.append(executor)

    executor.submit([execution])
    executor.submit([execution])

    assert wait_until(lambda: statuses([execution]) == [Status.SUCCESS])
    assert wait_until(lambda: executor.inflight() == set())
    assert len(runs.calls) == 1


# -- executions handed over before their time (staged fires) ---------------------------


def due_in(execution: TaskExecution, seconds: float) -> dt.datetime:
    """Make a pending execution due `seconds` from now, as a staged fire is."""
    due = timezone.now() + dt.timedelta(seconds=seconds)
    TaskExecution.objects.filter(pk=execution.pk).update(
        run_after=due, scheduled_for=due
    )
    execution.run_after = execution.scheduled_for = due
    return due


def test_an_execution_handed_over_early_is_claimed_at_once_and_started_at_its_time(
    executors: list[InlineExecutor],
) -> None:
    execution = task_request_run(task=make("add", handler_kwargs={"a": "1"}))
    due = due_in(execution, 1.0)
    executor = InlineExecutor(max_workers=2)
    executors.append(executor)

    executor.submit([execution])

    assert wait_until(lambda: statuses([execution]) == [Status.RUNNING])
    if timezone.now() < due:
        assert runs.calls == []
    # Claimed, waiting for its time: the row does not say it started before it.
    row = TaskExecution.objects.get(pk=execution.pk)
    assert row.status != Status.RUNNING or row.started_at >= due
    assert wait_until(lambda: statuses([execution]) == [Status.SUCCESS])
    execution.refresh_from_db()
    assert execution.started_at >= due
    assert len(runs.calls) == 1


def running_then_due(
    executors: list[InlineExecutor], seconds: float
) -> tuple[InlineExecutor, TaskExecution, TaskExecution, dt.datetime]:
    """A run of a `skip` task that holds its lock, and the task's next run, due soon."""
    task = make("log_then_block")
    first = task_request_run(task=task)
    executor = InlineExecutor(max_workers=2)
    executors.append(executor)
    executor.submit([first])
    assert runs.started.wait(10)
    later = task_request_run(task=task)
    return executor, first, later, due_in(later, seconds)


def test_a_run_claimed_early_is_not_skipped_for_a_lock_freed_before_its_time(
    executors: list[InlineExecutor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="scheduler_app.services.runs")
    executor, first, later, due = running_then_due(executors, 1.5)

    executor.submit([later])
    # Claimed ahead, refused the lock the first run holds: given back, not skipped.
    assert wait_until(lambda: "not started yet are pending again" in caplog.text)
    assert statuses([first, later]) == [Status.RUNNING, Status.PENDING]
    runs.release.set()

    assert wait_until(lambda: statuses([first, later]) == [Status.SUCCESS] * 2)
    later.refresh_from_db()
    assert later.started_at >= due


def test_a_run_claimed_early_is_skipped_at_its_time_when_the_lock_is_still_held(
    executors: list[InlineExecutor],
) -> None:
    executor, first, later, due = running_then_due(executors, 0.5)

    executor.submit([later])

    assert wait_until(lambda: statuses([later]) == [Status.SKIPPED])
    later.refresh_from_db()
    assert "exec:%s" % first.pk in later.result["message"]
    assert later.finished_at >= due
    assert statuses([first]) == [Status.RUNNING]


def test_shutdown_gives_back_runs_waiting_for_their_time(
    executors: list[InlineExecutor],
) -> None:
    execution = task_request_run(task=make("add", handler_kwargs={"a": "1"}))
    due_in(execution, 30)
    executor = InlineExecutor(max_workers=2)
    executors.append(executor)
    executor.submit([execution])
    assert wait_until(lambda: statuses([execution]) == [Status.RUNNING])

    assert executor.shutdown(grace_seconds=0.2) == set()

    assert statuses([execution]) == [Status.PENDING]
    assert executor.inflight() == set()
    assert runs.calls == []


def test_in_threads_one_blocking_async_handler_does_not_stall_the_others(
    executors: list[InlineExecutor],
) -> None:
    blocking = make_task(
        name="blocking",
        handler_path="tests.sample_handlers.hostile:async_block",
        handler_kwargs={"seconds": "5"},
    )
    quick = make_task(
        name="quick", handler_path="tests.sample_handlers.hostile:async_quick"
    )
    executor = InlineExecutor(max_workers=2)
    executors.append(executor)
    blocked = task_request_run(task=blocking)
    executor.submit([blocked])
    assert wait_until(lambda: statuses([blocked]) == [Status.RUNNING])
    started = time.monotonic()
    run = task_request_run(task=quick)
    executor.submit([run])

    assert wait_until(lambda: statuses([run]) == [Status.SUCCESS])
    assert time.monotonic() - started < 4  # not after the blocker's 5 s
    assert statuses([blocked]) == [Status.RUNNING]
    assert wait_until(lambda: statuses([blocked]) == [Status.SUCCESS])


def test_a_run_that_ends_while_the_database_is_away_is_recorded_once_it_is_back(
    executors: list[InlineExecutor],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = DatabaseAway(monkeypatch)
    execution = task_request_run(task=make("add", handler_kwargs={"a": "1"}))
    executor = InlineExecutor(max_workers=1)
    executors.append(executor)

    executor.submit([execution])
    assert wait_until(lambda: database.tries > 5, timeout=30)  # its retries are spent
    assert executor.inflight() == {execution.pk}  # kept, not dropped
    assert statuses([execution]) == [Status.RUNNING]
    database.back()

    assert wait_until(lambda: statuses([execution]) == [Status.SUCCESS], timeout=30)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("The database is away" in m for m in messages) == 1
    assert any("The database is back" in m for m in messages)
    assert wait_until(lambda: executor.inflight() == set())


def test_a_shutdown_while_the_database_is_away_names_the_ends_it_could_not_record(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    database = DatabaseAway(monkeypatch)
    execution = task_request_run(task=make("add", handler_kwargs={"a": "1"}))
    executor = InlineExecutor(max_workers=1)
    executor.submit([execution])
    assert wait_until(lambda: database.tries > 5, timeout=30)

    still = executor.shutdown(grace_seconds=0.5)

    assert still == {execution.pk}
    assert any(
        "Execution %s of task task-add ended (success) but its end could not be "
        "recorded" % execution.pk in r.getMessage()
        for r in caplog.records
    )
    database.back()  # the bookkeeper, still trying, records it after all
    assert wait_until(lambda: statuses([execution]) == [Status.SUCCESS], timeout=60)
    assert wait_until(lambda: not executor._bookkeeper.is_alive())  # then it ends
