"""Stage 3 of the execution path: recording the end of runs (`runs_finish`).

Final states, task counters, lock releases and retries, for a batch of runs in
one transaction; row by row when the batch breaks on one; a row that cannot be
stored as it is recorded failed without the value at fault. Also what every
recording path shares: the signals sent, an error's text.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    transaction,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import signals
from ..caps import CAPS, capped_fields
from ..db.batch import task_rows_lock
from ..db.counters import add_run_counts
from ..db.finals import write_finals
from ..locks import DatabaseLockBackend, LockBackend, get_lock_backend
from ..models import ScheduledTask, TaskExecution
from ..runtime.leases import held_locks, watchdog
from ..runtime.run import Result, Run
from ..storable import REPLACEMENT, storable_json, storable_text
from .params import task_local_now
from .retries import retry_schedule, wants_retry

logger = logging.getLogger(__name__)

Status = TaskExecution.Status
FailureKind = TaskExecution.FailureKind

#: Errors worth the same statement again a moment later: a lost connection, a busy
#: SQLite, a deadlock. Others (a value, a constraint) fail the same way every time.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def send_signal(signal: Any, task: ScheduledTask, execution: TaskExecution) -> None:
    """Send an execution signal; a receiver that fails is logged, never raised."""
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


#: The longest error_text: it goes into a run's message beside its own error.
ERROR_TEXT_MAX_CHARS = 500


def error_text(error: BaseException) -> str:
    """An error as a record names it: storable, and short (a longer one is cut,
    and says how much was cut)."""
    text = storable_text("%s: %s" % (type(error).__name__, error))
    if len(text) <= ERROR_TEXT_MAX_CHARS:
        return text
    marker = " [... %d characters cut]" % (len(text) - ERROR_TEXT_MAX_CHARS)
    return text[:ERROR_TEXT_MAX_CHARS] + marker


#: The signal sent for a run recorded with each final status (none for the others).
_ENDED_SIGNALS: dict[str, Any] = {
    Status.SUCCESS: signals.execution_succeeded,
    Status.FAILED: signals.execution_failed,
    Status.SKIPPED: signals.execution_skipped,
}


class EndsNotRecorded(Exception):
    """The database is away: the ends of `runs` are not recorded, nothing of them is.

    Raised by runs_finish, from the database's error, once its own retries are
    spent. The runs are as they were; the caller keeps them and calls runs_finish
    with them again later, when the record says what really happened.
    """

    def __init__(self, runs: Sequence[Run]) -> None:
        super().__init__("%d run end(s) not recorded" % len(runs))
        self.runs = list(runs)


def runs_finish(runs: Sequence[Run], *, now: dt.datetime | None = None) -> set[int]:
    """Record the end of runs: final states, task counters, lock releases, retries.

    One transaction for the batch, retried on transient database errors (a lost
    connection, a busy SQLite) so no record is lost; when it still fails, row by
    row, so that a row the database refuses spoils no other run's record (that
    row is recorded failed, see `_record_ends`). Values bigger than their caps
    were cut first (`make_bounded`), and values no database can store replaced
    (`make_storable`). A run is recorded only if it is still `running` (nobody
    recovered, interrupted or replaced it meanwhile); otherwise
    that other ending stands and the late result is ignored. Returns the ids of
    the runs recorded here. When the database stays away, raises EndsNotRecorded
    with the runs still to record (the others are recorded).
    """
    if not runs:
        return set()
    try:
        return _finish(runs, now=now)
    finally:
        for run in runs:
            watchdog.remove(run)


#: While the database is away, runs_finish_when_back tries again after this long,
#: then twice as long each time, up to the maximum.
RECORD_RETRY_FIRST_SECONDS = 0.5
RECORD_RETRY_MAX_SECONDS = 30.0


def runs_finish_when_back(
    runs: Sequence[Run],
    *,
    keeping: Callable[[list[Run]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """runs_finish, tried again with backoff for as long as the database is away.

    The ends are recorded as they happened once it is back: a run that succeeded
    during an outage is recorded `success`, never left `running` (to be taken for
    abandoned). One line when the ends start waiting, one when they are recorded.
    `keeping` is told which runs wait after each failed try (the inline executor
    names them if it must stop meanwhile). Any other error is raised as usual.
    """
    kept = list(runs)
    delay = RECORD_RETRY_FIRST_SECONDS
    waited = False
    while kept:
        try:
            runs_finish(kept)
        except EndsNotRecorded as exc:  # runs_finish retried a moment already
            if not waited:
                logger.error(
                    "The database is away (%s): the ends of %d run(s) are kept and "
                    "recorded once it is back; trying again every %d s at most",
                    exc.__cause__,
                    len(exc.runs),
                    RECORD_RETRY_MAX_SECONDS,
                )
            waited = True
            kept = exc.runs
            if keeping is not None:
                keeping(kept)
            close_old_connections()
            sleep(delay)
            delay = min(delay * 2, RECORD_RETRY_MAX_SECONDS)
            continue
        if waited:
            logger.warning(
                "The database is back: the ends of %d run(s) kept meanwhile are "
                "recorded",
                len(kept),
            )
        kept = []


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
        make_bounded(run)
        make_storable(run)
    backend = get_lock_backend()
    try:
        written, retries, unrecorded, broken = _record_ends(runs, backend)
    except TRANSIENT_ERRORS as error:
        raise EndsNotRecorded(runs) from error
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
            try:
                execution.refresh_from_db()
            except TaskExecution.DoesNotExist:
                logger.warning(
                    "Execution %s of task %s was deleted (with its task, or by the "
                    "history cleanup) while it ran; its end (%s) is not recorded",
                    execution.pk,
                    run.task.name,
                    execution.status,
                )
                continue
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
        signal = _ENDED_SIGNALS.get(execution.status)
        if signal is not None:
            send_signal(signal, run.task, execution)
    if isinstance(broken, TRANSIENT_ERRORS):
        raise EndsNotRecorded(
            [run for run in runs if run.execution.pk in unrecorded]
        ) from broken
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
        str(TaskExecution._meta.get_field(name).verbose_name)  # type: ignore[union-attr]
        for name in seen
    )


def _log_appended(run: Run, text: str, message: str) -> str:
    """`text` with a line like the run log's own appended."""
    line = "[%s] %s" % (task_local_now(run.task).strftime("%H:%M:%S"), message)
    return "%s\n%s" % (text, line) if text else line


def make_bounded(run: Run) -> None:
    """Cut a run's error message, traceback and result to their caps; say so in its log.

    Whichever executor ran the handler, its row then holds at most
    SCHEDULER_ERROR_MAX_BYTES, SCHEDULER_TRACEBACK_MAX_BYTES and
    SCHEDULER_RESULT_MAX_BYTES of them (`caps`), and the API and the admin serve
    what is kept. The run keeps its status: a success with a huge result is a
    success. A handler process cut them already (and its log says so): nothing
    is cut twice. Text fields are made `str` first, for the caps and for
    `make_storable`, which comes next.
    """
    execution = run.execution
    for name in _STORABLE_TEXT_FIELDS:
        value = getattr(execution, name)
        if value is not None and type(value) is not str:  # an exception, say
            setattr(execution, name, str(value))
    cut, notes = capped_fields({name: getattr(execution, name) for name in CAPS})
    for name, value in cut.items():
        setattr(execution, name, value)
    for note in notes:
        execution.log_output = _log_appended(run, execution.log_output, note)


def make_storable(run: Run) -> None:
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
        batch_written, batch_retries = _retrying(
            functools.partial(_record_batch, runs, backend)
        )
        return batch_written, batch_retries, set(), None
    except TRANSIENT_ERRORS:
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
            except TRANSIENT_ERRORS:
                raise
            except Exception as error:  # recorded failed instead
                row_written, row_retries = _record_unstorable(run, backend, error)
        except TRANSIENT_ERRORS as error:  # the database went away: the rest waits too
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
        except TRANSIENT_ERRORS:
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
        retried = [run for run in ended if wants_retry(run)]
        add_counters(
            [run.execution for run in ended],
            retried={run.execution.pk for run in retried},
        )
        if isinstance(backend, DatabaseLockBackend):
            backend.release_many(held_locks(runs))
        retries = [
            (
                run,
                retry_schedule(
                    execution=run.execution,
                    task=run.task,
                    now=run.execution.finished_at,  # type: ignore[arg-type]  # just set
                ),
            )
            for run in retried
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
    reason = error_text(error)
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
        except TRANSIENT_ERRORS:
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


def add_counters(
    executions: Sequence[TaskExecution], *, retried: Collection[int] = ()
) -> None:
    """Add ended runs to their tasks' counters (skipped runs only to the skipped
    count, cancelled ones to the cancelled count besides).

    Succeeded and failed runs with a duration also add to the duration totals
    that the average duration is read from (TaskExecution.TIMED_STATUSES), and
    the runs of each outcome at the end of the batch to the task's streak of
    that outcome (what its health reads: failing after N failures in a row). A
    failed attempt whose retry is to come (`retried`, execution ids) leaves the
    streaks as they are: a fire that succeeds on its retry did not fail.
    Run for every batch of runs, so it is one statement for the batch
    (`add_run_counts`), not a query per task.
    """
    per_task: dict[int, list[Any]] = {}
    for execution in sorted(executions, key=_end_order):
        # ran, ok, failed, latest, timed, took, tail, tail_failed, mixed,
        # skipped, cancelled
        counts = per_task.setdefault(
            execution.task_id, [0, 0, 0, None, 0, 0, 0, 0, 0, 0, 0]
        )
        if execution.status == Status.SKIPPED:
            counts[9] += 1  # and nothing else: a skip is no run
            continue
        counts[0] += 1
        counts[1] += execution.status == Status.SUCCESS
        counts[2] += execution.status == Status.FAILED
        counts[10] += execution.status == Status.CANCELLED
        if execution.started_at is not None:
            counts[3] = (
                execution.started_at
                if counts[3] is None
                else max(counts[3], execution.started_at)
            )
        if (
            execution.status in TaskExecution.TIMED_STATUSES
            and execution.duration_ms is not None
        ):
            counts[4] += 1
            counts[5] += execution.duration_ms
        if execution.status in (Status.SUCCESS, Status.FAILED) and (
            execution.pk not in retried
        ):
            failed = int(execution.status == Status.FAILED)
            if counts[6] and counts[7] != failed:
                counts[6], counts[8] = 0, 1  # the other outcome came before
            counts[6] += 1
            counts[7] = failed
    if per_task:
        add_run_counts(counts=per_task)


def _end_order(execution: TaskExecution) -> tuple[dt.datetime, int]:
    """Ended runs in the order they ended (the streaks count the last ones)."""
    when = execution.finished_at or execution.started_at or _EARLIEST
    return (when, execution.pk or 0)


_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
