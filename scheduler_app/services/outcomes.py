"""Every way a run ends as failed outside its handler's own outcome.

The runs whose process cannot end them (`executions_fail`): abandoned by a gone
instance (`executions_recover_abandoned`), interrupted by a stopping scheduler
(`executions_interrupt`), lost with a worker or killed by a hard time limit
(services/workers.py); and a pending run that cannot even be claimed
(`fail_unstartable`). Each is recorded as the execution path records a failure:
counters, a retry when the task asks for one, the `execution_failed` signal.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import livelog, signals
from ..conf import app_settings
from ..db.batch import task_rows_lock
from ..locks import get_lock_backend
from ..models import ScheduledTask, SchedulerInstance, TaskExecution
from ..runtime.leases import watchdog
from ..runtime.overlap import lock_keys, lock_owner
from ..runtime.run import Result, Run
from ..tasklog import RunLog
from .instances import instances_alive_ids
from .records import add_counters, error_text, runs_finish, send_signal
from .retries import retry_schedule, wants_retry

logger = logging.getLogger(__name__)

Status = TaskExecution.Status
FailureKind = TaskExecution.FailureKind


def fail_unstartable(execution: TaskExecution, error: Exception) -> None:
    """Record failed a pending execution that cannot be claimed: counters, retry, signal.

    Best effort: when even that cannot be written, the execution stays pending
    and the error is logged.
    """
    reason = error_text(error)
    message = _(
        "This run could not be started: its execution could not be claimed (%(error)s)."
    ) % {"error": reason}
    now = timezone.now()
    try:
        task = execution.task
        with task_rows_lock, transaction.atomic():
            if not TaskExecution.objects.filter(
                pk=execution.pk, status=Status.PENDING
            ).update(
                status=Status.FAILED,
                failure_kind=FailureKind.ERROR,
                started_at=now,
                finished_at=now,
                duration_ms=0,
                error_message=message,
            ):
                return  # claimed, cancelled or deleted meanwhile
            execution.refresh_from_db()
            count_failure(execution, task, now=now)
    except Exception:  # nothing more can be done for it here
        logger.exception(
            "Execution %s can neither be claimed nor recorded failed; it stays pending",
            execution.pk,
        )
        return
    logger.error(
        "Execution %s of task %s could not be claimed (%s); recorded as failed",
        execution.pk,
        task.name,
        reason,
        exc_info=error,
    )
    send_signal(signals.execution_failed, task, execution)


def executions_fail(
    executions: Sequence[TaskExecution],
    *,
    failure_kind: str,
    message: Callable[[TaskExecution], str],
    now: dt.datetime | None = None,
) -> list[TaskExecution]:
    """End as failed runs whose process cannot end them (it died, a time limit killed it).

    The same record as the execution path's: final state (the log the row has is
    kept), the task's counters, a retry when the task asks for one, and the
    `execution_failed` signal. Only runs still `running` are ended; returns them.
    The task locks they still hold are freed, so the task's next fire runs
    rather than waiting for the locks' TTL.
    """
    runs = [
        Run(
            execution=execution,
            task=execution.task,
            run_log=RunLog(max_lines=1),
            keep_log=True,
            result=Result(
                status=Status.FAILED,
                error_message=message(execution),
                failure_kind=failure_kind,
            ),
        )
        for execution in executions
    ]
    written = runs_finish(runs, now=now)
    ended = [run.execution for run in runs if run.execution.pk in written]
    _free_locks_of(ended)
    return ended


def _free_locks_of(executions: Sequence[TaskExecution]) -> None:
    """Release the task locks (or slots) these ended runs' dead processes still hold.

    A lock is released only while its owner is the run (its token, read just
    before, must still hold it): one another run has taken meanwhile stays.
    """
    backend = get_lock_backend()
    for execution in executions:
        task = execution.task
        owner = lock_owner(execution)
        for key in lock_keys(task):
            try:
                info = backend.get(key)
                if info is not None and info.owner == owner:
                    backend.release(key, info.token)
                    logger.info(
                        "Freed the task lock %s of ended execution %s",
                        key,
                        execution.pk,
                    )
            except Exception:  # it expires by its TTL instead
                logger.warning("Could not free the task lock %s", key, exc_info=True)


def executions_recover_abandoned(*, now: dt.datetime | None = None) -> int:
    """Mark as failed the runs left `running` by instances that are gone.

    Recorded as the execution path would (counters, a retry when the task asks
    for one, the `execution_failed` signal), through `executions_fail`.

    "Gone" means no fresh heartbeat (SCHEDULER_INSTANCE_STALE_SECONDS). Runs that
    started within that window are left alone: their instance may not have beaten yet.
    """
    now = now or timezone.now()
    stale_before = now - dt.timedelta(
        seconds=app_settings.SCHEDULER_INSTANCE_STALE_SECONDS
    )
    alive = instances_alive_ids(now=now)
    orphans = (
        TaskExecution.objects.running()
        .filter(started_at__lt=stale_before)
        .exclude(instance_id__in=alive)
        .values_list("instance_id", flat=True)
        .distinct()
    )
    recovered = 0
    for gone in list(orphans):
        last = (
            SchedulerInstance.objects.filter(instance_id=gone)
            .values_list("last_heartbeat_at", flat=True)
            .first()
        )
        if last is not None:
            message = _(
                "Abandoned: instance “%(instance)s” stopped while this run was going "
                "(last heartbeat %(heartbeat)s)."
            ) % {
                "instance": gone,
                "heartbeat": timezone.localtime(last).strftime("%Y-%m-%d %H:%M:%S"),
            }
        else:
            message = _(
                "Abandoned: instance “%(instance)s” stopped while this run was going."
            ) % {"instance": gone or "?"}
        orphans_of_gone = list(
            TaskExecution.objects.running()
            .filter(instance_id=gone, started_at__lt=stale_before)
            .select_related("task")
        )
        if app_settings.redis_url:
            # The row's log lags the live log by up to SCHEDULER_LOG_ROW_FLUSH_INTERVAL:
            # keep what Redis got from the dead process.
            for orphan in orphans_of_gone:
                orphan.log_output = livelog.complete_text(orphan.pk, orphan.log_output)
        ended = executions_fail(
            orphans_of_gone,
            failure_kind=FailureKind.ABANDONED,
            message=functools.partial(_same_message, message),
            now=now,
        )
        count = len(ended)
        if count:
            logger.warning(
                "Marked %d execution(s) of gone instance %s as abandoned", count, gone
            )
        recovered += count
    return recovered


def _same_message(message: str, _execution: TaskExecution) -> str:
    return message


def count_failure(
    execution: TaskExecution, task: ScheduledTask, *, now: dt.datetime
) -> None:
    """The task's counters and retry for a failure recorded without a run (in a transaction)."""
    retried = wants_retry(
        Run(execution=execution, task=task, run_log=RunLog(max_lines=1))
    )
    add_counters([execution], retried={execution.pk} if retried else set())
    if retried:
        retry_schedule(execution=execution, task=task, now=now)


def executions_interrupt(*, instance: str, now: dt.datetime | None = None) -> int:
    """Mark the runs this instance still has going as failed ("interrupted").

    Called when the scheduler stops and the shutdown grace period is over. Recorded
    as the execution path would, through `executions_fail`: the task's counters, a
    retry when the task asks for one (the next scheduler starts it), the
    `execution_failed` signal, the task lock freed for the next scheduler, and the
    log as the run has it so far. The runs of this process then stop waiting for
    their handlers (their late results are ignored), so the process can exit.
    """
    message = _(
        "Interrupted: the scheduler instance “%(instance)s” stopped before the run finished."
    ) % {"instance": instance}
    going = list(
        TaskExecution.objects.running()
        .filter(instance_id=instance)
        .select_related("task")
    )
    for execution in going:
        run = watchdog.get(execution.pk)
        if run is not None:  # its log here is newer than the row's
            snapshot = run.run_log.snapshot()
            execution.log_output = snapshot.text
            execution.progress_done = snapshot.progress_done
            execution.progress_total = snapshot.progress_total
    ended = executions_fail(
        going,
        failure_kind=FailureKind.INTERRUPTED,
        message=lambda _execution: message,
        now=now,
    )
    for run in watchdog.runs():
        run.cancel()
    return len(ended)
