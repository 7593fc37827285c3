"""Runs a Celery worker process could not finish: it died, or the hard limit killed it.

The worker's main process calls these (the process that ran the execution is gone),
so they write the record that `execution_run` would have written (counters, a
retry when the task asks for one, the signal) through `executions_fail`, if the
run is still `running`: a conditional update, so whoever ends a run first wins.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from django.utils.translation import gettext as _

from ..models import TaskExecution
from ..runtime.invocation import is_soft_time_limit
from .outcomes import executions_fail

logger = logging.getLogger(__name__)

Status = TaskExecution.Status
FailureKind = TaskExecution.FailureKind


def execution_record_worker_lost(
    execution_id: int, *, error: str, now: dt.datetime | None = None
) -> bool:
    """Mark failed ("abandoned") a run whose worker process died; whether it ran."""
    return _fail_running(
        execution_id,
        failure_kind=FailureKind.ABANDONED,
        message=lambda instance: (
            _(
                "Abandoned: the worker process “%(instance)s” died while this run was "
                "going (%(error)s)."
            )
            % {"instance": instance, "error": error}
        ),
        now=now,
    )


def execution_record_hard_timeout(
    execution_id: int, *, limit_seconds: float, now: dt.datetime | None = None
) -> bool:
    """Mark a run failed ("timeout") whose worker process the hard time limit killed."""
    return _fail_running(
        execution_id,
        failure_kind=FailureKind.TIMEOUT,
        message=lambda instance: (
            _(
                "Timed out: the hard time limit of %(seconds)s s (timeout_seconds plus "
                "SCHEDULER_CELERY_HARD_LIMIT_GRACE_SECONDS) killed the worker process "
                "“%(instance)s” (TimeLimitExceeded); the handler did not stop at the soft "
                "time limit."
            )
            % {"seconds": _format_seconds(limit_seconds), "instance": instance}
        ),
        now=now,
    )


def execution_record_broken(
    execution_id: int,
    *,
    error: BaseException,
    instance: str,
    now: dt.datetime | None = None,
) -> bool:
    """Mark failed a run of `instance` that an exception took out of the execution path.

    For what escaped `execution_run` itself (a database error while recording, a
    time limit that struck outside the handler): without this the run would stay
    `running` for as long as its worker process lives on and heartbeats.
    """
    return _fail_running(
        execution_id,
        failure_kind=FailureKind.TIMEOUT
        if is_soft_time_limit(error)
        else FailureKind.ERROR,
        message=lambda _instance: (
            _("The run broke outside its handler: %(error)s")
            % {"error": "%s: %s" % (type(error).__name__, error)}
        ),
        instance=instance,
        now=now,
    )


def _format_seconds(seconds: float) -> str:
    return "%d" % seconds if float(seconds).is_integer() else "%.1f" % seconds


def _fail_running(
    execution_id: int,
    *,
    failure_kind: str,
    message: Callable[[str], str],
    now: dt.datetime | None,
    instance: str | None = None,
) -> bool:
    running = TaskExecution.objects.filter(pk=execution_id, status=Status.RUNNING)
    if instance is not None:
        running = running.filter(instance_id=instance)
    execution = running.select_related("task").first()
    if execution is None:
        return False  # never claimed (its message goes back to the queue), or ended
    ended = executions_fail(
        [execution],
        failure_kind=failure_kind,
        message=lambda execution: message(execution.instance_id or "?"),
        now=now,
    )
    if not ended:
        return False
    logger.warning(
        "Execution %s of task %s failed (%s): %s",
        execution.pk,
        execution.task.name,
        failure_kind,
        execution.error_message,
    )
    return True
