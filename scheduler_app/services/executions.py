"""The one execution path (`execution_run`) and the other execution use cases."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    transaction,
)
from django.db.models.base import ModelState
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import livelog, notify, signals
from ..conf import app_settings
from ..db.batch import task_rows_lock
from ..db.claims import claim_pending
from ..db.counters import add_run_counts
from ..db.finals import write_finals
from ..db.fires import insert_fires
from ..exceptions import InvalidTransition, SchedulerError
from ..handlers.registry import resolve_handler
from ..handlers.results import json_safe
from ..locks import (
    DatabaseLockBackend,
    LockBackend,
    get_lock_backend,
)
from ..models import ScheduledTask, SchedulerInstance, TaskExecution
from ..runtime.invocation import call_handler, is_soft_time_limit, result_from_error
from ..runtime.leases import held_locks, request_cancel, watchdog
from ..runtime.overlap import lock_keys, lock_owner, take_claim_locks, take_wanted_lock
from ..runtime.run import Result, Run
from ..storable import REPLACEMENT, storable_json, storable_text
from ..tasklog import LogSnapshot, RunLog, bind
from .instances import instance_id, instances_alive_ids
from .params import parameters_evaluate
from .tasks import task_local_now

logger = logging.getLogger(__name__)

Status = TaskExecution.Status
FailureKind = TaskExecution.FailureKind


#: Errors worth the same statement again a moment later: a lost connection, a busy
#: SQLite, a deadlock. Others (a value, a constraint) fail the same way every time.
_TRANSIENT_ERRORS = (OperationalError, InterfaceError)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _send(signal: Any, task: ScheduledTask, execution: TaskExecution) -> None:
    for receiver, response in signal.send_robust(
        sender=ScheduledTask, task=task, execution=execution
    ):
        if isinstance(response, Exception):
            logger.error(
                "Signal receiver %r failed for execution %s: %r",
                receiver,
                execution.pk,
                response,
            )


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
    except _TRANSIENT_ERRORS:
        raise  # a busy or lost database: they stay pending and are offered again
    except Exception:  # a row the batch broke on must not hold back the others
        logger.error(
            "Could not claim %d execution(s) in one batch; claiming them one by one",
            len(wanted),
            exc_info=True,
        )
        runs, not_claimed = _claim_one_by_one(list(wanted.values()), claim)
    if not isinstance(backend, DatabaseLockBackend):
        take_claim_locks(runs, backend)
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
    """Claim the executions still pending, in one transaction with their database locks.

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
        if isinstance(backend, DatabaseLockBackend):
            take_claim_locks(runs, backend)
    return runs


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
        except _TRANSIENT_ERRORS:
            logger.warning(
                "Could not claim execution %s; it stays pending",
                execution.pk,
                exc_info=True,
            )
            not_claimed.add(execution.pk)
        except Exception as error:  # recorded on the execution
            _fail_unstartable(execution, error)
            not_claimed.add(execution.pk)
    return runs, not_claimed


def _error_text(error: BaseException) -> str:
    """An error as a record names it: storable, and short."""
    return storable_text("%s: %s" % (type(error).__name__, error))[:500]


def _fail_unstartable(execution: TaskExecution, error: Exception) -> None:
    """Record failed a pending execution that cannot be claimed: counters, retry, signal.

    Best effort: when even that cannot be written, the execution stays pending
    and the error is logged.
    """
    reason = _error_text(error)
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
            _count_failure(execution, task, now=now)
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
    _send(signals.execution_failed, task, execution)


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
            echo=settings.DEBUG if echo is None else echo,
            clock=functools.partial(task_local_now, task),
        )
        if log_listener is not None:
            run_log.add_listener(log_listener)
        runs.append(Run(execution=execution, task=task, run_log=run_log))
    return runs


# -- stage 2: run -----------------------------------------------------------------------


def run_claimed(run: Run, *, inline: bool = False) -> None:
    """Call a claimed run's handler under its timeout and cancels; sets `run.result`.

    `inline=True` (Celery workers) calls a sync handler in this thread even when
    the task has a timeout: the worker's own time limits enforce it there.
    """
    if run.result is not None:  # refused its lock at claim time
        return
    execution, _task = run.execution, run.task
    # The handler's turn has come: a claimed run may have waited for a free thread,
    # and started_at says when it really started (written with the final state).
    execution.started_at = timezone.now()
    try:
        _run_stage(run, inline=inline)
    finally:
        run.ended_at = timezone.now()


def _run_stage(run: Run, *, inline: bool) -> None:
    execution, task = run.execution, run.task
    try:
        if not take_wanted_lock(run):  # no free slot: skipped
            return
        _send(signals.execution_started, task, execution)
        with bind(
            run.run_log,
            sink=_live_sink(execution),
            interval=app_settings.SCHEDULER_LOG_PUBLISH_INTERVAL,
            line_sink=livelog.sink_for(execution.pk),  # None without Redis
        ):
            run.result = _evaluate_and_call(run, inline=inline)
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


def _evaluate_and_call(run: Run, *, inline: bool) -> Result:
    execution, task = run.execution, run.task
    try:
        info, func = resolve_handler(task.handler_path)
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
    evaluated = json_safe(kwargs)
    execution.kwargs = storable_json(evaluated)  # the live log's row updates carry it
    if execution.kwargs is not evaluated:
        run.altered.append("kwargs")
    return call_handler(run, func, kwargs, inline=inline)


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


# -- stage 3: record ------------------------------------------------------------------


def runs_finish(runs: Sequence[Run], *, now: dt.datetime | None = None) -> set[int]:
    """Record the end of runs: final states, task counters, lock releases, retries.

    One transaction for the batch, retried on transient database errors (a lost
    connection, a busy SQLite) so no record is lost; when it still fails, row by
    row, so that a row the database refuses spoils no other run's record (that
    row is recorded failed, see `_record_ends`). Values no database can store
    were replaced first (`_make_storable`). A run is recorded only if it is still
    `running` (nobody recovered, interrupted or replaced it meanwhile); otherwise
    that other ending stands and the late result is ignored. Returns the ids of
    the runs recorded here.
    """
    if not runs:
        return set()
    try:
        return _finish(runs, now=now)
    finally:
        for run in runs:
            watchdog.remove(run)


def _finish(runs: Sequence[Run], *, now: dt.datetime | None) -> set[int]:
    recorded_at = timezone.now()
    for run in runs:
        result = run.result or Result(
            status=Status.FAILED,
            error_message=_("The run stopped unexpectedly."),
            failure_kind=FailureKind.ERROR,
        )
        run.execution.mark_finished(
            status=result.status,
            now=now or run.ended_at or recorded_at,
            result=result.result,
            error_message=result.error_message,
            error_traceback=result.error_traceback,
            failure_kind=result.failure_kind,
        )
        if not run.keep_log:
            snapshot = run.run_log.snapshot()
            run.execution.log_output = snapshot.text
            run.execution.progress_done = snapshot.progress_done
            run.execution.progress_total = snapshot.progress_total
        _make_storable(run)
    backend = get_lock_backend()
    written, retries, unrecorded, broken = _record_ends(runs, backend)
    if not isinstance(backend, DatabaseLockBackend):
        # A run whose end is not recorded keeps its lock: it is still `running`.
        held = held_locks([run for run in runs if run.execution.pk not in unrecorded])
        try:
            backend.release_many(held)
        except Exception:
            logger.exception(
                "Could not release %d task lock(s); they expire by themselves",
                len(held),
            )
    for run, retry in retries:
        logger.info(
            "Execution %s of task %s failed; retry %s/%s is execution %s at %s",
            run.execution.pk,
            run.task.name,
            run.execution.attempt,
            run.task.max_retries,
            retry.pk,
            retry.run_after,
        )
    for run in runs:
        execution = run.execution
        if execution.pk in unrecorded:
            continue  # logged by _record_ends; the error is raised below
        if execution.pk not in written:
            # Someone else ended this run meanwhile (replaced, recovered): theirs stands.
            execution.refresh_from_db()
            logger.warning(
                "Execution %s was ended elsewhere (%s); its late result is ignored",
                execution.pk,
                execution.status,
            )
            continue
        logger.info(
            "Execution %s of task %s ended: %s in %s ms",
            execution.pk,
            run.task.name,
            execution.status,
            execution.duration_ms,
        )
        signal = {
            Status.SUCCESS: signals.execution_succeeded,
            Status.FAILED: signals.execution_failed,
            Status.SKIPPED: signals.execution_skipped,
        }.get(execution.status)
        if signal is not None:
            _send(signal, run.task, execution)
    if broken is not None:
        raise broken
    return written


#: The final values of a run that are a handler's text, and its JSON values.
_STORABLE_TEXT_FIELDS = ("error_message", "error_traceback", "log_output")
_STORABLE_JSON_FIELDS = ("result", "kwargs")


def _field_names(names: Sequence[str]) -> str:
    """The verbose names of execution fields, for a message: "result, log"."""
    seen = dict.fromkeys(names)
    return ", ".join(
        str(TaskExecution._meta.get_field(name).verbose_name) for name in seen
    )


def _log_appended(run: Run, text: str, message: str) -> str:
    """`text` with a line like the run log's own appended."""
    line = "[%s] %s" % (task_local_now(run.task).strftime("%H:%M:%S"), message)
    return "%s\n%s" % (text, line) if text else line


def _make_storable(run: Run) -> None:
    """Replace what no database can store in a run's final values; say so in its log.

    NUL characters and lone surrogates, wherever the handler put them: its
    result, error, traceback, log lines (`RunLog` replaced those as they were
    written) and evaluated parameters (replaced before the run).
    """
    execution = run.execution
    altered = list(run.altered)
    if run.run_log.altered_lines:
        altered.append("log_output")
    for name in _STORABLE_JSON_FIELDS:
        value = getattr(execution, name)
        stored = storable_json(value)
        if stored is not value:
            setattr(execution, name, stored)
            altered.append(name)
    for name in _STORABLE_TEXT_FIELDS:
        value = getattr(execution, name)
        if value is None:
            continue
        if type(value) is not str:  # TaskResult.failed(error=<an exception>)
            value = str(value)
            setattr(execution, name, value)
        stored = storable_text(value)
        if stored is not value:
            setattr(execution, name, stored)
            altered.append(name)
    if altered:
        message = _(
            "WARNING: NUL characters or lone surrogates, which the database cannot "
            "store, were replaced by “%(replacement)s” in: %(fields)s."
        ) % {"replacement": REPLACEMENT, "fields": _field_names(altered)}
        execution.log_output = _log_appended(run, execution.log_output, message)


_Recorded = tuple[set[int], list[tuple[Run, TaskExecution]]]
#: What `_record_ends` did: ids written, retries scheduled, the ids it could not
#: record at all, and the error that stopped them (raised once the rest is done).
_Ended = tuple[set[int], list[tuple[Run, TaskExecution]], set[int], Exception | None]


def _record_ends(runs: Sequence[Run], backend: LockBackend) -> _Ended:
    """Record the ends of runs in one transaction, or row by row when it fails.

    Whatever the batch broke on (a value, a constraint, a deadlock that would
    not go away), one row must not keep the others `running`: each is then
    written on its own, and a row that still cannot be is recorded failed
    without the value at fault (`_record_unstorable`). A transient error (the
    database away) is no fault of a row: it is retried, then raised as before,
    leaving the rows as they were. Returns the ids written, the retries
    scheduled, and the error that kept a row from being recorded at all (the
    caller finishes the written rows, then raises it).
    """
    try:
        written, retries = _retrying(functools.partial(_record_batch, runs, backend))
        return written, retries, set(), None
    except _TRANSIENT_ERRORS:
        raise
    except Exception as error:  # every row is tried on its own next
        batch_error = error
    if len(runs) > 1:
        logger.error(
            "Could not record the end of %d runs in one batch; recording them one by one",
            len(runs),
            exc_info=batch_error,
        )
    written: set[int] = set()
    retries: list[tuple[Run, TaskExecution]] = []
    broken: Exception | None = None
    unrecorded: set[int] = set()
    for index, run in enumerate(runs):
        try:
            try:
                if len(runs) == 1:  # the batch was this row: what it broke on is known
                    raise batch_error
                row_written, row_retries = _retrying(
                    functools.partial(_record_batch, [run], backend)
                )
            except _TRANSIENT_ERRORS:
                raise
            except Exception as error:  # recorded failed instead
                row_written, row_retries = _record_unstorable(run, backend, error)
        except _TRANSIENT_ERRORS as error:  # the database went away: the rest waits too
            logger.exception(
                "Could not record the end of execution %s", run.execution.pk
            )
            broken = broken or error
            unrecorded.update(later.execution.pk for later in runs[index:])
            break
        except Exception as error:  # the other rows still get theirs
            logger.exception(
                "Could not record the end of execution %s", run.execution.pk
            )
            broken = broken or error
            unrecorded.add(run.execution.pk)
            continue
        written |= row_written
        retries += row_retries
    return written, retries, unrecorded, broken


def _retrying(record: Callable[[], _Recorded]) -> _Recorded:
    """`record()`, again a moment later on a transient database error (up to 5 times)."""
    for attempt in range(5):
        try:
            return record()
        except _TRANSIENT_ERRORS:
            if attempt == 4:
                raise
            logger.warning("Could not record the end of runs; retrying", exc_info=True)
            close_old_connections()
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _record_batch(runs: Sequence[Run], backend: LockBackend) -> _Recorded:
    """Final rows, task counters, database lock releases and retries: one transaction."""
    with task_rows_lock, transaction.atomic():
        written = write_finals(executions=[run.execution for run in runs])
        ended = [run for run in runs if run.execution.pk in written]
        _add_counters(ended)
        if isinstance(backend, DatabaseLockBackend):
            backend.release_many(held_locks(runs))
        retries = [
            (run, _schedule_retry(run.execution, run.task, run.execution.finished_at))
            for run in ended
            if _wants_retry(run)
        ]
    return written, retries


#: What `_record_unstorable` leaves out of a row, in turn, until the row can be
#: written; the last try leaves out all of them. Values that stand for "none".
_UNSTORABLE_CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("result",),
    ("kwargs",),
    ("error_traceback",),
    ("log_output",),
    ("error_message",),
    ("progress_done", "progress_total"),
)
_EMPTY_VALUES: dict[str, Any] = {
    "result": None,
    "kwargs": {},
    "error_traceback": "",
    "log_output": "",
    "error_message": "",
    "progress_done": None,
    "progress_total": None,
}


def _record_unstorable(run: Run, backend: LockBackend, error: Exception) -> _Recorded:
    """Record failed a run whose end could not be written as it is.

    Leaves out one value after another (`_UNSTORABLE_CANDIDATES`) until the row
    can be written; the error names what was left out and why. Counters, lock
    and retry as for any failure; the caller sends `execution_failed`.
    """
    execution = run.execution
    kept = {name: getattr(execution, name) for name in _EMPTY_VALUES}
    ended = execution.get_status_display()
    reason = _error_text(error)
    attempts = [*_UNSTORABLE_CANDIDATES, tuple(_EMPTY_VALUES)]
    for number, left_out in enumerate(attempts, start=1):
        for name, value in kept.items():
            setattr(execution, name, _EMPTY_VALUES[name] if name in left_out else value)
        fields = _field_names(left_out)
        message = _(
            "The end of this run could not be stored (%(error)s), so it is recorded "
            "as failed without its %(fields)s. The run itself ended “%(status)s”."
        ) % {"error": reason, "fields": fields, "status": ended}
        if "error_message" not in left_out and kept["error_message"]:
            message = "%s\n%s" % (message, kept["error_message"])
        execution.status = Status.FAILED
        execution.failure_kind = FailureKind.ERROR
        execution.error_message = message
        run.unstorable = True
        try:
            if number < len(attempts):
                recorded = _record_batch([run], backend)
            else:
                recorded = _retrying(functools.partial(_record_batch, [run], backend))
        except _TRANSIENT_ERRORS:
            raise
        except Exception:  # the next try leaves out more
            if number == len(attempts):
                raise
            continue
        logger.error(
            "Execution %s of task %s could not be stored as it ended (%s); recorded "
            "as failed without its %s",
            execution.pk,
            run.task.name,
            reason,
            fields,
            exc_info=error,
        )
        return recorded
    raise AssertionError("unreachable")


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


def _add_counters(runs: Sequence[Run]) -> None:
    """Add the runs to their tasks' counters: one statement (`add_run_counts`)."""
    per_task: dict[int, list[Any]] = {}
    for run in runs:
        execution = run.execution
        if execution.status == Status.SKIPPED:
            continue
        counts = per_task.setdefault(execution.task_id, [0, 0, 0, execution.started_at])
        counts[0] += 1
        counts[1] += execution.status == Status.SUCCESS
        counts[2] += execution.status == Status.FAILED
        counts[3] = max(counts[3], execution.started_at)
    if per_task:
        add_run_counts(counts=per_task)


def _wants_retry(run: Run) -> bool:
    execution = run.execution
    return (
        execution.status == Status.FAILED
        and not run.unstorable
        and execution.trigger_type != TaskExecution.TriggerType.CLI
        and execution.attempt <= run.task.max_retries
    )


def _schedule_retry(
    execution: TaskExecution, task: ScheduledTask, now: dt.datetime
) -> TaskExecution:
    delay = task.retry_delay_seconds
    if task.retry_backoff:
        delay *= 2 ** (execution.attempt - 1)
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


def execution_run(
    execution: TaskExecution,
    *,
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
    runs_finish(runs)
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
    execution: TaskExecution, *, now: dt.datetime | None = None
) -> TaskExecution:
    """Cancel a pending execution at once, or ask a running one to stop.

    A pending one is withdrawn from its executor too (`pending_cancel_hooks`). A
    running async handler is cancelled on its loop; a sync handler is stopped at
    its next task_log/task_progress call, or recorded cancelled and left to finish
    unobserved once the executor sees the request (within about a second).
    """
    now = now or timezone.now()
    if TaskExecution.objects.filter(pk=execution.pk, status=Status.PENDING).update(
        status=Status.CANCELLED,
        finished_at=now,
        error_message=_("Cancelled before it started."),
    ):
        transaction.on_commit(functools.partial(_withdraw_pending, execution.pk))
        execution.refresh_from_db()
        return execution
    execution.refresh_from_db()
    if execution.status != Status.RUNNING:
        raise InvalidTransition(
            _(
                "Execution #%(id)s is already %(status)s; only pending or running runs "
                "can be cancelled."
            )
            % {"id": execution.pk, "status": execution.get_status_display()}
        )
    request_cancel(execution.pk)
    execution.cancel_requested = True
    return execution


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
            message=lambda _execution, text=message: text,
            now=now,
        )
        count = len(ended)
        if count:
            logger.warning(
                "Marked %d execution(s) of gone instance %s as abandoned", count, gone
            )
        recovered += count
    return recovered


def executions_cleanup(
    *, days: int | None = None, batch_size: int = 1000, now: dt.datetime | None = None
) -> int:
    """Delete finished executions older than `days` (SCHEDULER_HISTORY_DAYS), in batches.

    Each batch is its own short statement so a large backlog never holds a long
    write lock (which SQLite would feel as "database is locked" elsewhere).
    """
    days = app_settings.SCHEDULER_HISTORY_DAYS if days is None else days
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    old = TaskExecution.objects.older_than(cutoff).filter(
        status__in=TaskExecution.FINISHED_STATUSES
    )
    deleted = 0
    while True:
        batch = list(old.order_by().values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        deleted += TaskExecution.objects.filter(pk__in=batch).delete()[0]


def executions_create_scheduled(
    fires: Sequence[tuple[ScheduledTask, dt.datetime]],
    *,
    now: dt.datetime | None = None,
) -> list[TaskExecution]:
    """Record fires as pending executions; returns the ones recorded here.

    A fire another scheduler instance already recorded (same task and fire time) is
    left out by the `exec_one_per_fire` constraint, so every fire runs exactly once
    however many instances fire it. Fires to come (staged ahead) get `run_after` =
    their time, so nothing starts them early. Each execution comes back with its
    task attached, so the execution path does not fetch it again.
    """
    if not fires:
        return []
    now = now or timezone.now()
    prototype = TaskExecution(
        status=Status.PENDING,
        trigger_type=TaskExecution.TriggerType.SCHEDULED,
        created_at=now,
    )
    rows = [
        _copy_row(
            prototype,
            task=task,
            scheduled_for=scheduled_for,
            run_after=scheduled_for if scheduled_for > now else None,
        )
        for task, scheduled_for in fires
    ]
    try:
        with transaction.atomic():
            insert_fires(rows=rows)
    except _TRANSIENT_ERRORS:
        # The database is away: nothing was recorded, and the engine stages these
        # fires again on its next pass (recording one failed would lose it).
        raise
    except Exception as error:  # one bad fire must not lose the others
        # A task deleted since the scheduler loaded it (IntegrityError), or any
        # other row the statement broke on: one by one, leaving out what fails.
        if not isinstance(error, IntegrityError):
            logger.error(
                "Could not record %d fire(s) in one statement; recording them one by one",
                len(rows),
                exc_info=True,
            )
        for row in rows:
            row.pk = None
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except _TRANSIENT_ERRORS:
                raise
            except IntegrityError:
                logger.warning(
                    "Fire of task %s at %s not recorded: the task is gone, or the fire "
                    "was recorded already",
                    row.task_id,
                    row.scheduled_for,
                )
                row.pk = None
            except Exception as row_error:  # recorded failed instead
                row.pk = None
                _fire_failed(row, row_error, now=now)
        return [row for row in rows if row.pk is not None]
    for row in rows:
        if row.pk is None:
            logger.warning(
                "Fire of task %s at %s was already recorded; not firing it twice",
                row.task_id,
                row.scheduled_for,
            )
    return [row for row in rows if row.pk is not None]


def _count_failure(
    execution: TaskExecution, task: ScheduledTask, *, now: dt.datetime
) -> None:
    """The task's counters and retry for a failure recorded without a run (in a transaction)."""
    run = Run(execution=execution, task=task, run_log=RunLog(max_lines=1))
    _add_counters([run])
    if _wants_retry(run):
        _schedule_retry(execution, task, now)


def _fire_failed(row: TaskExecution, error: Exception, *, now: dt.datetime) -> None:
    """Record as a failed execution a fire that cannot be recorded pending.

    Counters, retry and signal as for any failure; when even that cannot be
    written, the fire is left out and the error logged.
    """
    reason = _error_text(error)
    logger.error(
        "Fire of task %s at %s could not be recorded (%s); recording it as failed",
        row.task_id,
        row.scheduled_for,
        reason,
        exc_info=error,
    )
    task = row.task
    failed = _copy_row(
        row,
        task=task,
        status=Status.FAILED,
        failure_kind=FailureKind.ERROR,
        run_after=None,
        started_at=now,
        finished_at=now,
        duration_ms=0,
        error_message=_("This fire could not be recorded as a pending run (%(error)s).")
        % {"error": reason},
    )
    try:
        with task_rows_lock, transaction.atomic():
            failed.save(force_insert=True)
            _count_failure(failed, task, now=now)
    except Exception:  # nothing more can be done for this fire
        logger.exception(
            "Fire of task %s at %s is lost", row.task_id, row.scheduled_for
        )
        return
    _send(signals.execution_failed, task, failed)


def _copy_row(
    prototype: TaskExecution, *, task: ScheduledTask, **values: Any
) -> TaskExecution:
    """A new unsaved execution like `prototype`, for `task`, with `values` set.

    Model.__init__ (every field's default, the foreign key's descriptor) took
    20 µs a row, the most of staging a fire; this copies the prototype's field
    values (its dicts and lists fresh, as their defaults would be) in 1 µs.
    """
    row = TaskExecution.__new__(TaskExecution)
    state = prototype.__dict__
    fields = row.__dict__
    for name, value in state.items():
        if name != "_state":
            fields[name] = value.copy() if isinstance(value, (dict, list)) else value
    fields.update(values, task_id=task.pk)
    row._state = ModelState()
    row._state.fields_cache["task"] = task
    return row


def executions_unstage(execution_ids: Sequence[int]) -> set[int]:
    """Withdraw staged fires that have not started; returns the task ids they were of."""
    if not execution_ids:
        return set()
    staged = TaskExecution.objects.filter(
        pk__in=list(execution_ids), status=Status.PENDING
    )
    task_ids = set(staged.values_list("task_id", flat=True))
    staged.delete()
    return task_ids


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
