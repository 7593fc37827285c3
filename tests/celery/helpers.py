"""Helpers of the Celery tests: tasks to run on workers, and checks of their executions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import task_create

Status = TaskExecution.Status


def pending(execution: TaskExecution) -> TaskExecution:
    """The execution as the engine hands it over: pending, with its task loaded."""
    return TaskExecution.objects.select_related("task").get(pk=execution.pk)


def ended(execution: TaskExecution) -> Callable[[], TaskExecution | None]:
    def check() -> TaskExecution | None:
        row = TaskExecution.objects.get(pk=execution.pk)
        return row if row.is_finished else None

    return check


def running(execution: TaskExecution) -> Callable[[], TaskExecution | None]:
    def check() -> TaskExecution | None:
        return TaskExecution.objects.filter(
            pk=execution.pk, status=Status.RUNNING
        ).first()

    return check


def manual(name: str, handler: str, **fields: Any) -> ScheduledTask:
    return task_create(
        task=ScheduledTask(
            name=name, task_type="manual", handler_path=handler, **fields
        )
    )
