"""Celery worker processes: identity, heartbeat, and the runs they could not finish."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from scheduler_app import signals
from scheduler_app.models import SchedulerInstance, TaskExecution
from scheduler_app.services import instances
from scheduler_app.services.instances import (
    instance_heartbeat,
    instance_id,
    instance_set_worker,
    instances_alive_ids,
)
from scheduler_app.services.workers import (
    execution_record_broken,
    execution_record_hard_timeout,
    execution_record_worker_lost,
)
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

Status = TaskExecution.Status


@pytest.fixture
def as_worker() -> Iterator[None]:
    """This process plays a Celery worker process for the test."""
    saved = (
        instances._process_kind,
        instances._process_name,
        dict(instances._instance_ids),
    )
    instance_set_worker(node_name="celery@box")
    yield
    instances._process_kind, instances._process_name = saved[0], saved[1]
    instances._instance_ids.clear()
    instances._instance_ids.update(saved[2])


def running_run(**fields: Any) -> TaskExecution:
    started = timezone.now() - dt.timedelta(seconds=90)
    return make_execution(
        status=Status.RUNNING,
        instance_id="celery@box:4242:abcdef",
        started_at=started,
        log_output="[10:00:00] half way\n",
        **fields,
    )


def test_a_worker_process_is_named_after_its_node_and_heartbeats_as_a_worker(
    as_worker: None,
) -> None:
    instance_heartbeat()

    assert instance_id().startswith("celery@box:%d:" % os.getpid())
    row = SchedulerInstance.objects.get(instance_id=instance_id())
    assert row.kind == SchedulerInstance.Kind.WORKER
    assert instances_alive_ids(kind="worker") == {instance_id()}
    assert instances_alive_ids(kind="scheduler") == set()
    assert instances_alive_ids() == {instance_id()}


def test_a_run_whose_worker_process_died_is_abandoned_naming_it() -> None:
    task = make_task()
    execution = running_run(task=task)
    failed: list[TaskExecution] = []

    def receiver(sender: Any, execution: TaskExecution, **kwargs: Any) -> None:
        failed.append(execution)

    signals.execution_failed.connect(receiver)
    try:
        recorded = execution_record_worker_lost(
            execution.pk,
            error="WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL).",
        )
    finally:
        signals.execution_failed.disconnect(receiver)

    assert recorded
    execution.refresh_from_db()
    assert (execution.status, execution.failure_kind) == (Status.FAILED, "abandoned")
    assert execution.error_message == (
        "Abandoned: the worker process “celery@box:4242:abcdef” died while this run was "
        "going (WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL).)."
    )
    assert execution.log_output == "[10:00:00] half way\n"  # what it wrote is kept
    assert (
        execution.finished_at is not None and 89_000 <= execution.duration_ms < 200_000
    )
    task.refresh_from_db()
    assert (task.run_count, task.fail_count, task.last_run_at) == (
        1,
        1,
        execution.started_at,
    )
    assert [item.pk for item in failed] == [execution.pk]


def test_a_hard_time_limit_kill_is_recorded_as_a_timeout() -> None:
    execution = running_run(task=make_task(timeout_seconds=60))

    assert execution_record_hard_timeout(execution.pk, limit_seconds=90)

    execution.refresh_from_db()
    assert (execution.status, execution.failure_kind) == (Status.FAILED, "timeout")
    assert "hard time limit of 90 s" in execution.error_message
    assert "“celery@box:4242:abcdef”" in execution.error_message
    assert "TimeLimitExceeded" in execution.error_message


@pytest.mark.parametrize("status", [Status.PENDING, Status.SUCCESS, Status.FAILED])
def test_a_run_not_running_is_left_as_it_is(status: str) -> None:
    execution = make_execution(status=status, error_message="as it was")

    assert not execution_record_worker_lost(execution.pk, error="WorkerLostError")
    assert not execution_record_hard_timeout(execution.pk, limit_seconds=5)

    execution.refresh_from_db()
    assert (execution.status, execution.error_message) == (status, "as it was")
    assert execution.task.run_count == 0


def test_a_run_broken_outside_its_handler_is_failed_only_by_its_own_process() -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    execution = running_run()

    assert not execution_record_broken(
        execution.pk, error=RuntimeError("x"), instance="celery@other:1:aaaaaa"
    )
    assert execution_record_broken(
        execution.pk,
        error=SoftTimeLimitExceeded("late"),
        instance="celery@box:4242:abcdef",
    )

    execution.refresh_from_db()
    assert (execution.status, execution.failure_kind) == (Status.FAILED, "timeout")
    assert execution.error_message.startswith(
        "The run broke outside its handler: SoftTimeLimitExceeded: "
    )


def test_an_error_named_like_a_time_limit_is_not_one() -> None:
    execution = running_run()

    class SoftTimeLimitExceeded(Exception):  # the handler's own, not Celery's
        pass

    assert execution_record_broken(
        execution.pk,
        error=SoftTimeLimitExceeded("mine"),
        instance="celery@box:4242:abcdef",
    )
    execution.refresh_from_db()
    assert execution.failure_kind == "error"


def test_a_run_whose_worker_process_died_is_retried_when_its_task_asks() -> None:
    task = make_task(max_retries=1, retry_delay_seconds=30)
    execution = running_run(task=task)

    assert execution_record_worker_lost(execution.pk, error="WorkerLostError")

    retry = TaskExecution.objects.get(retry_of=execution)
    assert (retry.status, retry.trigger_type, retry.attempt) == (
        Status.PENDING,
        TaskExecution.TriggerType.RETRY,
        2,
    )
    assert retry.run_after > timezone.now() + dt.timedelta(seconds=25)
