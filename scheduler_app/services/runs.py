"""The execution path: claim, run, record (`execution_run`), and cancelling a run.

`runs_claim` (stage 1) takes pending executions (pending -> running, locks
taken), `run_claimed` (stage 2) calls the handler, `runs_finish` (stage 3,
services/records.py) records the end. The inline executor batches stages 1 and 3;
`execution_run` is the three for one execution. The machinery (threads, the
event loop, leases, overlap policies) is in scheduler_app/runtime/.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import livelog, signals
from ..choices import AuditAction
from ..conf import app_settings
from ..db.claims import claim_pending
from ..exceptions import (
    HandlerBroken,
    HandlerNotAllowed,
    HandlerNotFound,
    InvalidTransition,
    SchedulerError,
)
from ..handlers.info import HandlerInfo
from ..handlers.registry import resolve_handler
from ..handlers.results import json_safe
from ..locks import DatabaseLockBackend, LockBackend, get_lock_backend
from ..models import ScheduledTask, TaskExecution, TaskExecutionQuerySet
from ..runtime import capture
from ..runtime.invocation import call_handler, is_soft_time_limit, result_from_error
from ..runtime.leases import held_locks, request_cancel, watchdog
from ..runtime.overlap import take_claim_locks, take_claim_slots, take_wanted_lock
from ..runtime.processes import HandlerProcess
from ..runtime.run import Result, Run
from ..storable import storable_json
from ..tasklog import LogSnapshot, RunLog, bind
from .audit import PYTHON, Origin, audit_record
from .instances import instance_id
from .outcomes import fail_unstartable
from .params import parameters_evaluate, task_local_now
from .records import TRANSIENT_ERRORS, runs_finish_when_back, send_signal

logger = logging.getLogger(__name__)

Status = TaskExecution.Status
FailureKind = TaskExecution.FailureKind


# -- stage 1: claim -------------------------------------------------------------------


def runs_claim(
    executions: Sequence[TaskExecution],
    *,
    log_listener: Callable[[str], None] | None = None,
    echo: bool | None = None,
) -> list[Run]:
    """Claim pending executions for this instance and take their task locks.

    pending -> running by one conditional update, so an execution claimed already
    (a second delivery, a second scheduler) is left out: it never runs twice. The
    locks of the `skip` and `replace` policies are taken in the same transaction
    (database locks) or one Redis round trip; a `skip` run refused its lock is
    returned with its `skipped` result already set.
    """
    if not executions:
        return []
    me = instance_id()
    started_at = timezone.now()
    wanted = {execution.pk: execution for execution in executions}
    backend = get_lock_backend()
    claim = functools.partial(
        _claim,
        backend=backend,
        me=me,
        started_at=started_at,
        log_listener=log_listener,
        echo=echo,
    )
    not_claimed: set[int] = set()  # for a reason logged already
    try:
        runs = claim(list(wanted.values()))
    except TRANSIENT_ERRORS:
        raise  # a busy or lost database: they stay pending and are offered again
    except Exception:  # a row the batch broke on must not hold back the others
        logger.error(
            "Could not claim %d execution(s) in one batch; claiming them one by one",
            len(wanted),
            exc_info=True,
        )
        runs, not_claimed = _claim_one_by_one(list(wanted.values()), claim)
    if not isinstance(backend, DatabaseLockBackend):
        try:
            take_claim_locks(runs, backend)
        except Exception:  # Redis away: claimed without their locks, they wait again
            _unclaim(runs)
            raise
    claimed = {run.execution.pk for run in runs} | not_claimed
    for run in runs:  # from now on its lock is kept alive and a cancel reaches it
        watchdog.add(run)
    for pk in wanted.keys() - claimed:
        logger.warning("Execution %s is not pending any more: not running it again", pk)
    for run in runs:
        logger.info(
            "Execution %s of task %s started (trigger %s)",
            run.execution.pk,
            run.task.name,
            run.execution.trigger_type,
        )
    return runs


def _claim(
    executions: list[TaskExecution],
    *,
    backend: LockBackend,
    me: str,
    started_at: dt.datetime,
    log_listener: Callable[[str], None] | None,
    echo: bool | None,
) -> list[Run]:
    """Claim the executions still pending, in one transaction with their run slots
    and database locks.

    Locks of another backend (Redis) are the caller's to take, after the commit.
    """
    with transaction.atomic():
        claimed = claim_pending(
            ids=[e.pk for e in executions], instance=me, now=started_at
        )
        runs = _make_runs(
            [execution for execution in executions if execution.pk in claimed],
            me=me,
            started_at=started_at,
            log_listener=log_listener,
            echo=echo,
        )
        take_claim_slots(runs)
        if isinstance(backend, DatabaseLockBackend):
            take_claim_locks(runs, backend)
    return runs


def _unclaim(runs: Sequence[Run]) -> None:
    """Make runs claimed a moment ago pending again: their locks could not be taken.

    Left `running`, they would never run (nobody would start them) until the
    shutdown or the recovery of this instance ended them.
    """
    ids = [run.execution.pk for run in runs]
    try:
        TaskExecution.objects.filter(pk__in=ids, status=Status.RUNNING).update(
            status=Status.PENDING, instance_id="", started_at=None
        )
    except Exception:  # they are ended as interrupted or abandoned instead
        logger.exception("Could not make %d claimed run(s) pending again", len(ids))
    else:
        logger.warning(
            "Could not take the task locks of %d claimed run(s); they are pending "
            "again and are claimed once the lock store answers",
            len(ids),
        )


def _claim_one_by_one(
    executions: list[TaskExecution], claim: Callable[[list[TaskExecution]], list[Run]]
) -> tuple[list[Run], set[int]]:
    """Claim each execution on its own; record failed one that cannot be claimed at all.

    A transient error leaves its execution pending, offered again later. Returns
    the runs, and the ids of the executions not claimed for one of these reasons.
    """
    runs: list[Run] = []
    not_claimed: set[int] = set()
    for execution in executions:
        try:
            runs += claim([execution])
        except TRANSIENT_ERRORS:
            logger.warning(
                "Could not claim execution %s; it stays pending",
                execution.pk,
                exc_info=True,
            )
            not_claimed.add(execution.pk)
        except Exception as error:  # recorded on the execution
            fail_unstartable(execution, error)
            not_claimed.add(execution.pk)
    return runs, not_claimed


def _make_runs(
    executions: list[TaskExecution],
    *,
    me: str,
    started_at: dt.datetime,
    log_listener: Callable[[str], None] | None,
    echo: bool | None,
) -> list[Run]:
    # The engine hands executions over with their task loaded (one query per
    # batch); the others get theirs here, again in one query.
    missing = {e.task_id for e in executions if not TaskExecution.task.is_cached(e)}
    tasks = ScheduledTask.objects.in_bulk(missing) if missing else {}
    runs = []
    for execution in executions:
        if not TaskExecution.task.is_cached(execution):
            execution.task = tasks[execution.task_id]
        task = execution.task
        execution.mark_running(instance_id=me, now=started_at)
        run_log = RunLog(
            max_lines=app_settings.SCHEDULER_LOG_BUFFER_MAX_LINES,
            max_bytes=app_settings.SCHEDULER_LOG_MAX_BYTES,
            echo=settings.DEBUG if echo is None else echo,
            clock=functools.partial(task_local_now, task),
        )
        if log_listener is not None:
            run_log.add_listener(log_listener)
        runs.append(Run(execution=execution, task=task, run_log=run_log))
    return runs


# -- stage 2: run -----------------------------------------------------------------------


def run_claimed(
    run: Run,
    *,
    inline: bool = False,
    process: HandlerProcess | None = None,
    on_start: Callable[[Run, dt.datetime | None], None] | None = None,
) -> None:
    """Call a claimed run's handler under its timeout and cancels; sets `run.result`.

    `inline=True` (Celery workers) calls a sync handler in this thread even when
    the task has a timeout: the worker's own time limits enforce it there.
    `process` (SCHEDULER_ISOLATION=process) calls it in that handler process.
    `on_start(run, claimed_at)` is called once its `started_at` is set, just
    before the handler is (the inline executor's figures, engine/metrics.py);
    not for a run that does not start.
    """
    if run.result is not None:  # refused its lock at claim time
        return
    execution, _task = run.execution, run.task
    if not _still_ours(run):
        return
    # The handler's turn has come: a claimed run may have waited for a free thread,
    # and started_at says when it really started (written with the final state).
    claimed_at = execution.started_at  # the claim's
    execution.started_at = timezone.now()
    try:
        if on_start is not None:
            try:
                on_start(run, claimed_at)
            except Exception:  # a figure lost never costs the run
                logger.exception("on_start failed for execution %s", execution.pk)
        _run_stage(run, inline=inline, process=process)
    finally:
        run.ended_at = timezone.now()


def fence_after_seconds() -> float:
    """How long a claimed run may wait for its turn before it checks its row first.

    A third of SCHEDULER_INSTANCE_STALE_SECONDS: well before the other instances
    could take this one for gone and end its runs as abandoned.
    """
    return app_settings.SCHEDULER_INSTANCE_STALE_SECONDS / 3


def _still_ours(run: Run) -> bool:
    """Whether a claimed run may start: fencing for a run that waited long.

    A run that waited past fence_after_seconds (for a free thread, or in a
    process that was paused, frozen or cut off meanwhile) starts only if its row
    is still this instance's `running` row: another instance may have marked it
    abandoned, freed its slot and started the task itself. Otherwise its
    handler is not called and `run.result` is set; the record of that result is
    then dropped, as the row's end was written elsewhere.
    """
    if time.monotonic() - run.since < fence_after_seconds():
        return True
    execution = run.execution
    if TaskExecution.objects.filter(
        pk=execution.pk, status=Status.RUNNING, instance_id=execution.instance_id
    ).exists():
        return True
    logger.warning(
        "Execution %s of task %s was ended elsewhere while it waited %.0f s for its "
        "turn (this instance was taken for gone); its handler is not started",
        execution.pk,
        run.task.name,
        time.monotonic() - run.since,
    )
    run.result = Result(
        status=Status.FAILED,
        error_message=_("Not started: the run was ended elsewhere while it waited."),
        failure_kind=FailureKind.ABANDONED,
    )
    return False


def _run_stage(run: Run, *, inline: bool, process: HandlerProcess | None) -> None:
    execution, task = run.execution, run.task
    try:
        if not take_wanted_lock(run):  # no free slot: skipped
            return
        send_signal(signals.execution_started, task, execution)
        with bind(
            run.run_log,
            sink=_live_sink(execution),
            interval=app_settings.SCHEDULER_LOG_PUBLISH_INTERVAL,
            line_sink=livelog.sink_for(execution.pk),  # None without Redis
        ):
            try:
                run.result = _evaluate_and_call(run, inline=inline, process=process)
            finally:
                capture.end_of_run()  # a last print() without its newline
    except Exception as exc:  # the run boundary: whatever broke is recorded on the run
        if run.invocation is not None:
            run.invocation.cancel()
        logger.exception("Execution %s of task %s broke", execution.pk, task.name)
        run.result = result_from_error(run, exc)
    except BaseException as exc:  # a Celery time limit raised while waiting
        if not is_soft_time_limit(exc):
            raise
        if run.invocation is not None:
            run.invocation.cancel()
        run.result = result_from_error(run, exc)


#: Task id -> the handler path it could not load, warned about once by this
#: process; the entry goes when the task's handler loads again.
_unloadable: dict[int, str] = {}


def _resolve(task: ScheduledTask) -> tuple[HandlerInfo, Callable[..., Any]]:
    """The task's handler; a missing or broken one is logged at WARNING, once a task."""
    try:
        resolved = resolve_handler(task.handler_path)
    except (HandlerNotFound, HandlerBroken, HandlerNotAllowed) as exc:
        if _unloadable.get(task.pk) != task.handler_path:
            _unloadable[task.pk] = task.handler_path
            logger.warning(
                "Task %s cannot load its handler %s, so its runs fail until it is "
                "fixed: %s",
                task.name,
                task.handler_path,
                exc.message,
            )
        raise
    _unloadable.pop(task.pk, None)
    return resolved


def _evaluate_and_call(
    run: Run, *, inline: bool, process: HandlerProcess | None
) -> Result:
    execution, task = run.execution, run.task
    try:
        info, func = _resolve(task)
        raw = {**task.handler_kwargs, **execution.kwargs_overrides}
        kwargs = parameters_evaluate(
            info, raw, now=task_local_now(task, now=execution.started_at)
        )
    except SchedulerError as exc:
        run.run_log.write(exc.message)
        return Result(
            status=Status.FAILED,
            error_message=exc.message,
            failure_kind=FailureKind.ERROR,
        )
    # Recorded with the defaults the handler falls back on, so the run's page
    # says every value it ran with; the handler is called with `kwargs` alone.
    evaluated = json_safe({**_defaults_left(info, kwargs), **kwargs})
    execution.kwargs = storable_json(evaluated)  # the live log's row updates carry it
    if execution.kwargs is not evaluated:
        run.altered.append("kwargs")
    if process is not None:
        return process.call(run, task.handler_path, kwargs)
    return call_handler(run, func, kwargs, inline=inline)


def _defaults_left(info: HandlerInfo, given: dict[str, Any]) -> dict[str, Any]:
    """The defaults of the handler's parameters that a run leaves out."""
    return {
        spec.name: spec.default
        for spec in info.params
        if not spec.required and spec.name not in given
    }


def _live_sink(execution: TaskExecution) -> Callable[[LogSnapshot], None]:
    def sink(snapshot: LogSnapshot) -> None:
        # The evaluated parameters ride along with the first flush: no statement of
        # their own for the many runs that end before any flush.
        TaskExecution.objects.filter(pk=execution.pk, status=Status.RUNNING).update(
            log_output=snapshot.text,
            progress_done=snapshot.progress_done,
            progress_total=snapshot.progress_total,
            kwargs=execution.kwargs,
        )

    return sink


# -- giving claimed runs back, the path for one execution, cancelling ------------


def runs_release(runs: Sequence[Run]) -> None:
    """Give claimed runs whose handler never started back: pending again, locks freed.

    For an executor that stops with runs claimed but still waiting for a thread:
    the next scheduler starts them, as if they had never been claimed.
    """
    if not runs:
        return
    try:
        TaskExecution.objects.filter(
            pk__in=[run.execution.pk for run in runs], status=Status.RUNNING
        ).update(status=Status.PENDING, instance_id="", started_at=None)
        get_lock_backend().release_many(held_locks(runs))
    finally:
        for run in runs:
            watchdog.remove(run)
    logger.info("%d claimed run(s) not started yet are pending again", len(runs))


def execution_run(
    *,
    execution: TaskExecution,
    log_listener: Callable[[str], None] | None = None,
    echo: bool | None = None,
    inline: bool = False,
) -> TaskExecution:
    """Run one pending execution to its end: the one execution path.

    Claims the execution (pending -> running, by a conditional update, so a second
    delivery of the same execution does nothing), takes the lock its overlap policy
    needs (recording `skipped` when it cannot), evaluates the parameters, runs the
    handler under its timeout, records the outcome, updates the task's counters and
    schedules a retry when the task asks for one. Returns the execution as stored.

    The three stages are `runs_claim`, `run_claimed` and `runs_finish`; the inline
    executor calls the same three with its batches.
    """
    runs = runs_claim([execution], log_listener=log_listener, echo=echo)
    if not runs:
        execution.refresh_from_db()
        return execution
    run_claimed(runs[0], inline=inline)
    runs_finish_when_back(runs)  # while the database is away, the end waits
    return execution


#: Called, once the cancel is committed, with the id of each pending execution
#: `execution_cancel` cancelled, so that an executor which handed it elsewhere
#: withdraws it there (the Celery executor revokes its message). Best effort: a
#: message delivered anyway finds the execution cancelled and runs nothing.
pending_cancel_hooks: list[Callable[[int], None]] = []


def _withdraw_pending(execution_id: int) -> None:
    for hook in pending_cancel_hooks:
        try:
            hook(execution_id)
        except Exception:  # the cancel stands whatever a hook does
            logger.exception("Could not withdraw cancelled execution %s", execution_id)


def execution_cancel(
    *,
    execution: TaskExecution,
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
) -> TaskExecution:
    """Cancel a pending execution at once, or ask a running one to stop.

    A pending one is withdrawn from its executor too (`pending_cancel_hooks`). A
    running async handler is cancelled on its loop; a sync handler is stopped at
    its next task_log/task_progress call, or recorded cancelled and left to finish
    unobserved once the executor sees the request (within about a second). The
    cancel is audited as `origin`'s, on the run's task, with the run's id.
    """
    with transaction.atomic():
        execution, changed = _cancel(execution, now=now)
        task = ScheduledTask.objects.filter(pk=execution.task_id).first()
        # Asking a run to stop again changes nothing: one entry, not one a click.
        if task is not None and changed:
            audit_record(
                origin=origin,
                action=AuditAction.CANCEL,
                tasks=[task],
                run_id=execution.pk,
            )
    return execution


def cancel_execution(
    execution: TaskExecution, *, now: dt.datetime | None = None
) -> TaskExecution:
    """execution_cancel without its audit entry: for the services that cancel a
    run as part of another operation they audit (task_delete's `cancel_runs`)."""
    return _cancel(execution, now=now)[0]


def _cancel(
    execution: TaskExecution, *, now: dt.datetime | None = None
) -> tuple[TaskExecution, bool]:
    """Cancel or ask to stop; and whether that changed anything (a run asked to
    stop before is asked again, which changes nothing)."""
    now = now or timezone.now()
    if TaskExecution.objects.filter(pk=execution.pk, status=Status.PENDING).update(
        status=Status.CANCELLED,
        finished_at=now,
        error_message=_("Cancelled before it started."),
    ):
        ScheduledTask.objects.filter(pk=execution.task_id).update(
            cancelled_count=F("cancelled_count") + 1
        )
        transaction.on_commit(functools.partial(_withdraw_pending, execution.pk))
        execution.refresh_from_db()
        return execution, True
    execution.refresh_from_db()
    if execution.status != Status.RUNNING:
        raise InvalidTransition(
            _(
                "Execution #%(id)s is already %(status)s; only pending or running runs "
                "can be cancelled."
            )
            % {"id": execution.pk, "status": execution.get_status_display()}
        )
    asked_before = execution.cancel_requested
    request_cancel(execution.pk)
    execution.cancel_requested = True
    return execution, not asked_before


@dataclass(frozen=True)
class ExecutionsCancelled:
    """What a bulk cancel did: how many it cancelled (or asked to stop), and refusals."""

    cancelled: int
    refused: list[str]


def executions_cancel(
    *,
    executions: TaskExecutionQuerySet,
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
) -> ExecutionsCancelled:
    """Cancel each unfinished execution among `executions`; finished ones are left alone.

    A run that ends between the selection and its cancel is refused with the reason
    (execution_cancel's error), the others are still cancelled; each cancel is
    audited as `origin`'s.
    """
    cancelled, refused = 0, []
    for execution in executions.unfinished():
        try:
            execution_cancel(execution=execution, origin=origin, now=now)
        except SchedulerError as exc:
            refused.append(exc.message)
        else:
            cancelled += 1
    return ExecutionsCancelled(cancelled=cancelled, refused=refused)
