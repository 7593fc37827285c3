"""The inline executor: the execution path's stages, batched, on a pool of threads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scheduler_app.engine.executor import InlineExecutor
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import task_request_run
from tests.helpers import wait_until
from tests.services import sample_handlers

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskExecution.Status
H = "tests.services.sample_handlers:"


@pytest.fixture(autouse=True)
def _reset_handlers() -> Iterator[None]:
    sample_handlers.reset()
    yield
    sample_handlers.release.set()


def make(handler: str, **fields: Any) -> ScheduledTask:
    defaults: dict[str, Any] = {
        "name": "task-%s" % handler,
        "task_type": ScheduledTask.TaskType.MANUAL,
        "handler_path": H + handler,
    }
    defaults.update(fields)
    return ScheduledTask.objects.create(**defaults)


def statuses(executions: list[TaskExecution]) -> list[str]:
    by_id = dict(
        TaskExecution.objects.filter(pk__in=[e.pk for e in executions]).values_list("pk", "status")
    )
    return [by_id[e.pk] for e in executions]


def test_submitted_executions_are_run_and_recorded_in_batches() -> None:
    tasks = [
        make("add", name="add-%d" % n, handler_kwargs={"a": str(n)}) for n in range(25)
    ]
    executions = [task_request_run(task) for task in tasks]
    executor = InlineExecutor(max_workers=4)

    executor.submit(executions)

    assert wait_until(lambda: statuses(executions) == [Status.SUCCESS] * 25)
    assert wait_until(lambda: executor.inflight() == set())
    assert sorted(call["a"] for call in sample_handlers.calls) == list(range(25))
    counts = ScheduledTask.objects.filter(pk__in=[t.pk for t in tasks]).values_list(
        "run_count", "success_count"
    )
    assert set(counts) == {(1, 1)}


def test_a_second_run_of_a_skip_task_in_the_same_batch_is_skipped() -> None:
    task = make("log_then_block")
    first, second = task_request_run(task), task_request_run(task)
    executor = InlineExecutor(max_workers=4)

    executor.submit([first, second])

    assert wait_until(lambda: statuses([second]) == [Status.SKIPPED])
    assert statuses([first]) == [Status.RUNNING]
    second.refresh_from_db()
    assert "exec:%s" % first.pk in second.result["message"]
    sample_handlers.release.set()
    assert wait_until(lambda: statuses([first]) == [Status.SUCCESS])


def test_the_pool_bounds_what_is_claimed_and_shutdown_leaves_the_rest_pending() -> None:
    blocking = task_request_run(make("block_ignoring_cancel"))
    waiting = task_request_run(make("add", handler_kwargs={"a": "1"}))
    executor = InlineExecutor(max_workers=1)

    executor.submit([blocking, waiting])
    assert sample_handlers.started.wait(10)
    still_running = executor.shutdown(grace_seconds=0.2)

    assert still_running == {blocking.pk}
    assert statuses([blocking, waiting]) == [Status.RUNNING, Status.PENDING]
    assert executor.inflight() == {blocking.pk}


def test_a_duplicate_submission_runs_once() -> None:
    execution = task_request_run(make("add", handler_kwargs={"a": "1"}))
    executor = InlineExecutor(max_workers=2)

    executor.submit([execution])
    executor.submit([execution])

    assert wait_until(lambda: statuses([execution]) == [Status.SUCCESS])
    assert wait_until(lambda: executor.inflight() == set())
    assert len(sample_handlers.calls) == 1
