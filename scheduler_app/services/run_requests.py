"""Run requests: a pending execution for the scheduler (or a worker) to start.

The admin's Run now buttons and bulk action, the API's run verb, `run_task` and
the Python API's run_job ask here; nothing runs in the caller's process (see
services/runs.py for the run itself).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import notify
from ..choices import AuditAction
from ..handlers.registry import refusal
from ..models import ScheduledTask, TaskExecution
from .audit import PYTHON, Origin, audit_record
from .params import parameters_validate, task_local_now
from .validation import TaskInvalid


def task_request_run(
    *,
    task: ScheduledTask,
    trigger_type: str = TaskExecution.TriggerType.MANUAL,
    overrides: Mapping[str, Any] | None = None,
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
) -> TaskExecution:
    """Create a pending execution for the scheduler (or a worker) to start; never runs it here.

    Parameter overrides are expressions validated like the task's own; they replace
    the task's values for this run only. The run's `requested_by` is `origin`'s
    label, and the request is audited as `origin`'s (run now, or run with
    parameters when there are overrides), with the run's id.
    """
    now = now or timezone.now()
    overrides = dict(overrides or {})
    # A task whose handler is not allowed (a row written behind the services'
    # back) would only fail: refuse to queue the run, saying what to register.
    refused = refusal(task.handler_path)
    if refused is not None:
        raise TaskInvalid([refused])
    if overrides:
        merged = {**task.handler_kwargs, **overrides}
        problems = parameters_validate(
            task.handler_path, merged, now=task_local_now(task, now=now)
        )
        if problems:
            raise TaskInvalid(list(problems))
    # task_id, not task: the run loads the task as it is when it starts.
    with transaction.atomic():
        execution = TaskExecution.objects.create(
            task_id=task.pk,
            status=TaskExecution.Status.PENDING,
            trigger_type=trigger_type,
            kwargs_overrides=overrides,
            created_at=now,
            requested_by=origin.label,
        )
        audit_record(
            origin=origin,
            action=(
                AuditAction.RUN_WITH_PARAMETERS if overrides else AuditAction.RUN_NOW
            ),
            tasks=[task],
            changes={"kwargs": [None, overrides]} if overrides else None,
            run_id=execution.pk,
            at=now,
        )
    if trigger_type != TaskExecution.TriggerType.CLI:
        notify.publish(notify.RUN_REQUESTED)
    return execution


@dataclass(frozen=True)
class RunRequests:
    """What a bulk run request did."""

    #: How many runs were requested.
    requested: int
    #: Why each task left out was refused ("Task “x”: Handler ... is not allowed").
    refused: list[str]


def tasks_request_run(
    *,
    tasks: Iterable[ScheduledTask],
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
) -> RunRequests:
    """Request a run of each task (the admin's bulk action).

    Like task_request_run it refuses tasks whose handler is not allowed: those
    are left out, and `refused` says which and why; the others are requested,
    each audited as `origin`'s run now with its run's id.
    """
    now = now or timezone.now()
    allowed: list[ScheduledTask] = []
    refused: list[str] = []
    for task in tasks:
        why = refusal(task.handler_path)
        if why is None:
            allowed.append(task)
        else:
            refused.append(
                _("Task “%(name)s”: %(error)s")
                % {"name": task.name, "error": why.message}
            )
    executions = [
        TaskExecution(
            task=task,
            status=TaskExecution.Status.PENDING,
            trigger_type=TaskExecution.TriggerType.MANUAL,
            created_at=now,
            requested_by=origin.label,
        )
        for task in allowed
    ]
    if executions:
        with transaction.atomic():
            TaskExecution.objects.bulk_create(executions)
            for execution in executions:
                audit_record(
                    origin=origin,
                    action=AuditAction.RUN_NOW,
                    tasks=[execution.task],
                    run_id=execution.pk,
                    at=now,
                )
        notify.publish(notify.RUN_REQUESTED)
    return RunRequests(requested=len(executions), refused=refused)
