"""Celery entry points only (`celery -A config worker`): load by id, call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import close_old_connections

from ..engine.celery_executor import RUN_EXECUTION
from ..models import TaskExecution
from ..services import execution_run
from ..services.instances import instance_id
from ..services.workers import execution_record_broken
from .worker import ExecutionTask, heartbeat_ensure

logger = logging.getLogger(__name__)


@shared_task(name=RUN_EXECUTION, base=ExecutionTask)
def run_execution(execution_id: int) -> None:
    """Run one pending execution through the one execution path; the message is its id.

    A message delivered twice finds its execution no longer pending and does
    nothing (execution_run claims by a conditional update).
    """
    # The worker keeps its connection between executions (CELERY_DB_REUSE_MAX);
    # drop it here when it is too old or broken, as Django does per request.
    close_old_connections()
    try:
        _run(execution_id)
    finally:
        close_old_connections()


def _run(execution_id: int) -> None:
    heartbeat_ensure()
    execution = (
        TaskExecution.objects.select_related("task").filter(pk=execution_id).first()
    )
    if execution is None:
        logger.warning(
            "Execution %s does not exist (deleted?): nothing to run", execution_id
        )
        return
    if execution.status != TaskExecution.Status.PENDING:
        logger.info(
            "Execution %s is already %s: a repeated message, nothing to run",
            execution_id,
            execution.status,
        )
        return
    try:
        # inline=True: a sync handler runs in this process's main thread, where the
        # soft time limit can interrupt it (the worker enforces timeout_seconds).
        execution_run(execution=execution, inline=True)
    except BaseException as exc:
        execution_record_broken(execution.pk, error=exc, instance=instance_id())
        raise
