"""Retries: whether a failed run is retried, after what delay, and scheduling it."""

from __future__ import annotations

import datetime as dt

from .. import notify
from ..models import ScheduledTask, TaskExecution
from ..runtime.run import Run

Status = TaskExecution.Status


def wants_retry(run: Run) -> bool:
    """A failed run is retried while its task has retries left (never a CLI run's).

    Not a run recorded failed only because its end could not be stored: its
    handler did run.
    """
    execution = run.execution
    return (
        execution.status == Status.FAILED
        and not run.unstorable
        and execution.trigger_type != TaskExecution.TriggerType.CLI
        and execution.attempt <= run.task.max_retries
    )


def retry_delay_seconds(*, execution: TaskExecution, task: ScheduledTask) -> float:
    """The wait before retrying `execution`: the task's delay, doubled per attempt
    with retry_backoff."""
    delay = task.retry_delay_seconds
    if task.retry_backoff:
        delay *= 2 ** (execution.attempt - 1)
    return delay


def retry_schedule(
    *, execution: TaskExecution, task: ScheduledTask, now: dt.datetime
) -> TaskExecution:
    """Create the pending retry of a failed execution, due after its delay."""
    delay = retry_delay_seconds(execution=execution, task=task)
    # The scheduler learns of the retry at once and starts it when its delay is over.
    notify.publish(notify.RUN_REQUESTED)
    return TaskExecution.objects.create(
        task=task,
        status=Status.PENDING,
        trigger_type=TaskExecution.TriggerType.RETRY,
        scheduled_for=execution.scheduled_for,
        attempt=execution.attempt + 1,
        retry_of_id=execution.retry_of_id or execution.pk,
        kwargs_overrides=execution.kwargs_overrides,
        run_after=now + dt.timedelta(seconds=delay),
        created_at=now,
    )
