"""The one execution path (`execution_run`) and the other execution use cases."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime as dt
import functools
import inspect
import json
import logging
import os
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    models,
    router,
    transaction,
)
from django.db.models.base import ModelState
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import livelog, notify, signals
from ..conf import app_settings
from ..db.batch import row_datetime, rows_table, task_rows_lock, typed_param
from ..exceptions import ExecutionCancelled, InvalidTransition, SchedulerError
from ..handlers.registry import resolve_handler
from ..handlers.results import json_safe, outcome_from_return
from ..locks import (
    DatabaseLockBackend,
    LockBackend,
    get_lock_backend,
    lock_key,
    task_lock_key,
)
from ..models import ScheduledTask, SchedulerInstance, SchedulerLock, TaskExecution
from ..storable import REPLACEMENT, storable_json, storable_text
from ..tasklog import LogSnapshot, RunLog, bind
from .instances import instance_id, instances_alive_ids
from .params import parameters_evaluate, task_local_now

logger = logging.getLogger(__name__)

Status = TaskExecution.Status
FailureKind = TaskExecution.FailureKind

#: How long a `replace` run waits for the run it cancels to let go of the lock.
REPLACE_GRACE_SECONDS = 5.0
#: How often a running execution looks for a cancel request made elsewhere.
CANCEL_POLL_SECONDS = 1.0

#: Errors worth the same statement again a moment later: a lost connection, a busy
#: SQLite, a deadlock. Others (a value, a constraint) fail the same way every time.
_TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@dataclass
class _Result:
    status: str
    result: Any = None
    error_message: str = ""
    error_traceback: str = ""
    failure_kind: str = ""


class _SharedLoop:
    """One event loop per process, in its own thread, for every async handler.

    Async handlers of all runs share it (cheap: no thread or loop per run); each
    run's context (its task_log binding) travels with the task it submits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # After a fork (Celery prefork) the parent's loop thread does not exist here.
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever,
                    name="scheduler-async-handlers",
                    daemon=True,
                ).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_shared_loop = _SharedLoop()


class _Invocation:
    """One call of a handler.

    An async handler runs on the shared loop. A sync handler runs in the calling
    thread (a thread of the executor's pool, or a Celery worker's), or, when the
    task has a timeout to enforce, in a thread of its own, so the run can be
    ended at the deadline whatever the handler does (its late result is ignored).
    """

    def __init__(self, func: Callable[..., Any], kwargs: dict[str, Any]):
        self.func = func
        self.kwargs = kwargs
        #: The handler returned or raised.
        self.done = threading.Event()
        #: `done`, or a cancel the waiting thread must look at.
        self.settled = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self._future: concurrent.futures.Future[Any] | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def start_async(self) -> None:
        try:
            coroutine = self.func(**self.kwargs)
        except BaseException as exc:  # bad arguments, raised before the first await
            self.error = exc
            self._finish()
            return
        self._future = asyncio.run_coroutine_threadsafe(coroutine, _shared_loop.get())
        self._future.add_done_callback(self._collect)

    def start_thread(self) -> None:
        """Call a sync handler in a thread of its own, with the caller's context."""

        def target() -> None:
            try:
                self._call()
            finally:
                connections.close_all()  # the handler's queries ran on this thread's connection

        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(target,), name="scheduler-handler", daemon=True
        ).start()

    def call_here(self) -> None:
        """Call a sync handler in this thread; returns when it has."""
        self._call()

    def _call(self) -> None:
        try:
            value = self.func(**self.kwargs)
            if inspect.isawaitable(value):
                self._future = asyncio.run_coroutine_threadsafe(
                    _awaited(value), _shared_loop.get()
                )
                value = self._future.result()
            self.value = value
        except BaseException as exc:  # the handler boundary: everything is recorded
            self.error = exc
        finally:
            self._finish()

    def _collect(self, future: concurrent.futures.Future[Any]) -> None:
        try:
            self.value = future.result()
        except BaseException as exc:  # the handler boundary: everything is recorded
            self.error = exc
        self._finish()

    def _finish(self) -> None:
        self.done.set()
        self.settled.set()

    def cancel(self) -> None:
        """Cancel an async handler on its loop and wake whoever waits for the call."""
        if self._future is not None:
            self._future.cancel()
        self.settled.set()


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


def _format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


class _RunLock:
    """The lock a run holds, kept alive by the watchdog while the run lives."""

    def __init__(self, backend: LockBackend, key: str, token: str, ttl: float):
        self.backend = backend
        self.key = key
        self.token = token
        self.ttl = ttl
        self.lost = False
        self.next_extend = time.monotonic() + ttl / 3
        # The watchdog and the handler (task_extend_lock) may extend at once.
        self._mutex = threading.Lock()

    def extend(
        self, seconds: float | None = None, *, on_lost: Callable[[], None] | None = None
    ) -> bool:
        """Make the lock expire `seconds` (default: its TTL) from now; False once lost.

        The watchdog's next extension falls due when two thirds of the TTL are
        left, so it never shortens a longer explicit one. `on_lost` is called
        once, by the caller that finds the lock lost.
        """
        ttl = self.ttl if seconds is None else seconds
        with self._mutex:
            if self.lost:
                return False
            if not self.backend.extend(self.key, self.token, ttl):
                self.lost = True
                if on_lost is not None:
                    on_lost()
                return False
            self.next_extend = time.monotonic() + ttl - self.ttl * 2 / 3
            return True


@dataclass(eq=False)
class Run:
    """A claimed execution on its way through the path: claimed, run, recorded.

    `runs_claim` makes them (pending -> running, locks taken), `run_claimed` calls
    the handler and sets `result`, `runs_finish` records them. `execution_run` is
    the three for one execution; the inline executor batches the first and last.
    """

    execution: TaskExecution
    task: ScheduledTask
    run_log: RunLog
    cancel_event: threading.Event = field(default_factory=threading.Event)
    lock: _RunLock | None = None
    #: A lock still to take when the handler's turn comes: "slot" (allow with
    #: max_instances) or "replace" (cancel the run holding the task lock first).
    lock_wanted: str = ""
    #: Set by the run stage; a run refused its lock at claim time has it already.
    result: _Result | None = None
    invocation: _Invocation | None = None
    since: float = field(default_factory=time.monotonic)
    #: Record the log and progress the row has (the run's process is gone), not run_log's.
    keep_log: bool = False
    #: When the run stage ended: the record (often batched, later) says so.
    ended_at: dt.datetime | None = None
    #: Fields whose values were made storable before the record (see `_make_storable`).
    altered: list[str] = field(default_factory=list)
    #: Recorded failed only because its end could not be stored (`_record_unstorable`):
    #: its handler did run, so no retry runs it again.
    unstorable: bool = False

    def __post_init__(self) -> None:
        # The handler's task_extend_lock() finds the run through its bound log.
        # Through a weak reference: a cycle (run -> log -> run) would leave every
        # ended run to the garbage collector's full passes, which stop all threads.
        run = weakref.ref(self)

        def extend(seconds: float | None) -> bool:
            alive = run()
            return alive.extend_lock(seconds) if alive is not None else False

        self.run_log.lock_extender = extend

    def cancel(self) -> None:
        """Stop the run: async handlers at once, sync ones at their next task_log."""
        self.cancel_event.set()
        self.run_log.cancelled = True
        if self.invocation is not None:
            self.invocation.cancel()

    def extend_lock(self, seconds: float | None = None) -> bool:
        """Extend the run's task lock now (the watchdog; a handler's task_extend_lock).

        True while the run holds its lock or holds none (`allow` without
        max_instances); False once it is lost, which the run's log says once. A
        lock backend error is logged and changes nothing: the watchdog tries again.
        """
        lock = self.lock
        if lock is None:
            return True
        try:
            return _committed_at_once(
                lock.backend,
                functools.partial(lock.extend, seconds, on_lost=self._lock_lost),
            )
        except Exception:  # Redis or the database away: not a reason to stop the run
            logger.warning(
                "Could not extend the task lock %s of execution %s",
                lock.key,
                self.execution.pk,
                exc_info=True,
            )
            return not lock.lost

    def _lock_lost(self) -> None:
        assert self.lock is not None
        self.run_log.write(
            _("WARNING: the task lock %(key)s was lost; another run may start.")
            % {"key": self.lock.key}
        )
        logger.warning(
            "Execution %s lost its task lock %s", self.execution.pk, self.lock.key
        )


def _committed_at_once(backend: LockBackend, write: Callable[[], bool]) -> bool:
    """Call `write` (a lock backend write) so that it commits at once.

    A handler may call task_extend_lock() inside its own transaction.atomic(): a
    lock row updated there would commit only with the handler's work, and block
    the watchdog's extensions until then. That call runs on a thread (and
    database connection) of its own instead. Not on SQLite: there the handler's
    transaction holds the one write lock (BEGIN IMMEDIATE), so no other connection
    could write, nor take the task lock over, before it ends.
    """
    connection = connections[router.db_for_write(SchedulerLock)]
    if (
        not isinstance(backend, DatabaseLockBackend)
        or not connection.in_atomic_block
        or connection.vendor == "sqlite"
    ):
        return write()

    def on_own_connection() -> bool:
        try:
            return write()
        finally:
            connections.close_all()

    with concurrent.futures.ThreadPoolExecutor(
        1, thread_name_prefix="scheduler-lock"
    ) as pool:
        return pool.submit(on_own_connection).result()


class _Watchdog:
    """This process's live runs, and one thread that looks after them all.

    Every CANCEL_POLL_SECONDS it asks the database, in one query, which of the
    runs going for a while were asked to stop from elsewhere (another process,
    another machine), and it extends the task locks of long runs before they
    expire. A cancel made in this process reaches its run at once, without it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[int, Run] = {}
        self._wake = threading.Event()
        self._pid = 0

    def add(self, run: Run) -> None:
        with self._lock:
            self._runs[run.execution.pk] = run
            if self._pid != os.getpid():  # first use, or the first after a fork
                self._pid = os.getpid()
                threading.Thread(
                    target=self._loop, name="scheduler-watchdog", daemon=True
                ).start()
        self._wake.set()

    def remove(self, run: Run) -> None:
        with self._lock:
            if self._runs.get(run.execution.pk) is run:
                del self._runs[run.execution.pk]

    def get(self, execution_id: int) -> Run | None:
        with self._lock:
            return self._runs.get(execution_id)

    def runs(self) -> list[Run]:
        with self._lock:
            return list(self._runs.values())

    def _loop(self) -> None:
        while True:
            if not self.runs():
                connections.close_all()  # idle: hold no connection (nor a test database)
                self._wake.wait()
                self._wake.clear()
                continue
            time.sleep(CANCEL_POLL_SECONDS)
            try:
                self.check(self.runs())
            except Exception:  # the thread boundary: the next round tries again
                logger.exception("The run watchdog failed; trying again")
                close_old_connections()

    def check(self, runs: list[Run]) -> None:
        """Deliver cancel requests made elsewhere; extend the locks due for it."""
        now = time.monotonic()
        polled = {
            run.execution.pk: run
            for run in runs
            if not run.cancel_event.is_set() and now - run.since >= CANCEL_POLL_SECONDS
        }
        if polled:
            requested = TaskExecution.objects.filter(
                pk__in=list(polled), cancel_requested=True
            ).values_list("pk", flat=True)
            for pk in requested:
                polled[pk].cancel()
        for run in runs:
            lock = run.lock
            if lock is not None and not lock.lost and now >= lock.next_extend:
                run.extend_lock()


_watchdog = _Watchdog()


def _request_cancel(execution_id: int) -> None:
    TaskExecution.objects.filter(pk=execution_id).update(cancel_requested=True)
    run = _watchdog.get(execution_id)
    if run is not None:
        run.cancel()


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
        _take_task_locks(runs, backend)
    claimed = {run.execution.pk for run in runs} | not_claimed
    for run in runs:  # from now on its lock is kept alive and a cancel reaches it
        _watchdog.add(run)
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
        claimed = _claim_rows([e.pk for e in executions], me=me, started_at=started_at)
        runs = _make_runs(
            [execution for execution in executions if execution.pk in claimed],
            me=me,
            started_at=started_at,
            log_listener=log_listener,
            echo=echo,
        )
        if isinstance(backend, DatabaseLockBackend):
            _take_task_locks(runs, backend)
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


def _claim_rows(ids: list[int], *, me: str, started_at: dt.datetime) -> set[int]:
    """pending -> running for these ids, in one conditional UPDATE ... RETURNING.

    `started_at` is the claim, or the run's `run_after` when it is claimed ahead of
    its time (a staged fire): a row never says it started before it was due. The
    run stage writes the real start with the final state.
    """
    connection = connections[router.db_for_write(TaskExecution)]
    meta = TaskExecution._meta
    quote = connection.ops.quote_name
    column = {
        name: quote(meta.get_field(name).column)
        for name in ("status", "instance_id", "started_at", "run_after")
    }
    sql = (
        "UPDATE %s SET %s = %%s, %s = %%s, %s = CASE WHEN %s > %%s THEN %s ELSE %%s END "
        "WHERE %s IN (%s) AND %s = %%s RETURNING %s"
    ) % (
        quote(meta.db_table),
        column["status"],
        column["instance_id"],
        column["started_at"],
        column["run_after"],
        column["run_after"],
        quote(meta.pk.column),
        ", ".join(["%s"] * len(ids)),
        column["status"],
        quote(meta.pk.column),
    )
    now = connection.ops.adapt_datetimefield_value(started_at)
    params = [Status.RUNNING, me, now, now, *ids, Status.PENDING]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


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


def _lock_owner(execution: TaskExecution) -> str:
    return "%s exec:%s" % (execution.instance_id, execution.pk)


def _take_task_locks(runs: list[Run], backend: LockBackend) -> None:
    """Take the task lock of each `skip`/`replace` run (one call for the batch)."""
    ttl = float(app_settings.SCHEDULER_TASK_LOCK_TTL)
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        policy = run.task.overlap_policy
        if policy == ScheduledTask.OverlapPolicy.ALLOW:
            run.lock_wanted = "slot" if run.task.max_instances else ""
            continue
        by_key.setdefault(task_lock_key(run.task.pk), []).append(run)
    if not by_key:
        return
    tokens = backend.acquire_many(
        {key: _lock_owner(waiting[0].execution) for key, waiting in by_key.items()},
        ttl_seconds=ttl,
    )
    for key, waiting in by_key.items():
        token = tokens.get(key)
        holder = ""
        if token is not None:
            waiting[0].lock = _RunLock(backend, key, token, ttl)
            holder = _lock_owner(waiting[0].execution)
            waiting = waiting[
                1:
            ]  # two runs of one task in a batch: the first one has it
        for run in waiting:
            if run.task.overlap_policy == ScheduledTask.OverlapPolicy.REPLACE:
                run.lock_wanted = "replace"
                continue
            if not holder:
                info = backend.get(key)
                holder = info.owner if info else _("another run")
            message = _(
                "Skipped: the previous run is still going (held by %(holder)s)."
            ) % {"holder": holder}
            run.result = _Result(status=Status.SKIPPED, result={"message": message})
            run.run_log.write(message)


def _slot_key(task_id: int, slot: int) -> str:
    return lock_key("task-slot", "%s:%s" % (task_id, slot))


def _take_slot(run: Run) -> str:
    """Take one of the task's max_instances slots; why not, if none is free."""
    backend = get_lock_backend()
    ttl = float(app_settings.SCHEDULER_TASK_LOCK_TTL)
    task = run.task
    for slot in range(task.max_instances):
        key = _slot_key(task.pk, slot)
        token = backend.acquire(key, owner=_lock_owner(run.execution), ttl_seconds=ttl)
        if token:
            run.lock = _RunLock(backend, key, token, ttl)
            return ""
    return _(
        "Skipped: %(count)d runs of this task are already running (max concurrent runs)."
    ) % {"count": task.max_instances}


def _replace_running(run: Run) -> None:
    """Cancel the task's running executions and take the task lock from them."""
    backend = get_lock_backend()
    ttl = float(app_settings.SCHEDULER_TASK_LOCK_TTL)
    task, execution = run.task, run.execution
    key, owner = task_lock_key(task.pk), _lock_owner(execution)
    running = TaskExecution.objects.filter(task=task, status=Status.RUNNING).exclude(
        pk=execution.pk
    )
    ids = list(running.values_list("pk", flat=True))
    for pk in ids:
        _request_cancel(pk)
    deadline = time.monotonic() + REPLACE_GRACE_SECONDS
    token = backend.acquire(key, owner=owner, ttl_seconds=ttl)
    while token is None and time.monotonic() < deadline:
        time.sleep(0.05)
        token = backend.acquire(key, owner=owner, ttl_seconds=ttl)
    if token is None:
        # The old run did not let go in time: end its record and take the lock over.
        TaskExecution.objects.filter(pk__in=ids, status=Status.RUNNING).update(
            status=Status.CANCELLED,
            finished_at=timezone.now(),
            error_message=_("Replaced by execution #%(id)s (overlap policy: replace).")
            % {"id": execution.pk},
        )
        backend.force_release(key)
        token = backend.acquire(key, owner=owner, ttl_seconds=ttl)
        if token is None:
            raise SchedulerError(
                _("Could not take over the task lock %(key)s.") % {"key": key}
            )
    run.lock = _RunLock(backend, key, token, ttl)


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
        refused = ""
        if run.lock_wanted == "slot":
            refused = _take_slot(run)
        elif run.lock_wanted == "replace":
            _replace_running(run)
        if refused:
            run.result = _Result(status=Status.SKIPPED, result={"message": refused})
            run.run_log.write(refused)
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
        run.result = _result_from_error(run, exc)
    except BaseException as exc:  # a Celery time limit raised while waiting
        if not is_soft_time_limit(exc):
            raise
        if run.invocation is not None:
            run.invocation.cancel()
        run.result = _result_from_error(run, exc)


def _evaluate_and_call(run: Run, *, inline: bool) -> _Result:
    execution, task = run.execution, run.task
    try:
        info, func = resolve_handler(task.handler_path)
        raw = {**task.handler_kwargs, **execution.kwargs_overrides}
        kwargs = parameters_evaluate(
            info, raw, now=task_local_now(task, now=execution.started_at)
        )
    except SchedulerError as exc:
        run.run_log.write(exc.message)
        return _Result(
            status=Status.FAILED,
            error_message=exc.message,
            failure_kind=FailureKind.ERROR,
        )
    evaluated = json_safe(kwargs)
    execution.kwargs = storable_json(evaluated)  # the live log's row updates carry it
    if execution.kwargs is not evaluated:
        run.altered.append("kwargs")
    invocation = run.invocation = _Invocation(func, kwargs)
    if run.cancel_event.is_set():
        return _Result(
            status=Status.CANCELLED, error_message=_("Cancelled on request.")
        )
    deadline = None
    if task.timeout_seconds and (invocation.is_async or not inline):
        deadline = time.monotonic() + task.timeout_seconds
    if invocation.is_async:
        invocation.start_async()
    elif deadline is None:
        invocation.call_here()
    else:
        invocation.start_thread()
    return _wait_for_handler(run, deadline)


def _wait_for_handler(run: Run, deadline: float | None) -> _Result:
    """Wait for the call to end, for its deadline, or for a cancel."""
    invocation = run.invocation
    assert invocation is not None
    while not invocation.done.is_set():
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            run.run_log.cancelled = True
            invocation.cancel()
            invocation.done.wait(1.0)
            return _Result(
                status=Status.FAILED,
                error_message=_("Timed out after %(seconds)s s (timeout_seconds).")
                % {"seconds": run.task.timeout_seconds},
                failure_kind=FailureKind.TIMEOUT,
            )
        invocation.settled.wait(remaining)
        if run.cancel_event.is_set() and not invocation.done.is_set():
            invocation.done.wait(1.0)  # an async handler gets its CancelledError
            if not invocation.done.is_set():
                return _Result(
                    status=Status.CANCELLED, error_message=_("Cancelled on request.")
                )
    if invocation.error is not None:
        return _result_from_error(run, invocation.error)
    outcome = outcome_from_return(invocation.value)
    return _Result(
        status=outcome.status,
        result=outcome.result,
        error_message=outcome.error_message,
        failure_kind=FailureKind.ERROR if outcome.status == Status.FAILED else "",
    )


def is_soft_time_limit(error: BaseException) -> bool:
    """A Celery worker's soft time limit, raised inside the handler (issue: Celery)."""
    try:
        from celery.exceptions import SoftTimeLimitExceeded
    except ImportError:  # Celery is optional
        return False
    return isinstance(error, SoftTimeLimitExceeded)


def _result_from_error(run: Run, error: BaseException) -> _Result:
    if isinstance(error, ExecutionCancelled) or (
        isinstance(error, (asyncio.CancelledError, concurrent.futures.CancelledError))
        and run.cancel_event.is_set()
    ):
        return _Result(
            status=Status.CANCELLED, error_message=_("Cancelled on request.")
        )
    if is_soft_time_limit(error):
        return _Result(
            status=Status.FAILED,
            error_message=_(
                "Soft time limit reached after %(seconds)s s (timeout_seconds)."
            )
            % {"seconds": run.task.timeout_seconds},
            error_traceback=_format_traceback(error),
            failure_kind=FailureKind.TIMEOUT,
        )
    return _Result(
        status=Status.FAILED,
        error_message="%s: %s" % (type(error).__name__, error),
        error_traceback=_format_traceback(error),
        failure_kind=FailureKind.ERROR,
    )


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

#: What the end of a run writes on its execution row.
_FINAL_FIELDS = (
    "status",
    "started_at",
    "finished_at",
    "duration_ms",
    "result",
    "error_message",
    "error_traceback",
    "failure_kind",
    "log_output",
    "progress_done",
    "progress_total",
    "kwargs",
)


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
            _watchdog.remove(run)


def _finish(runs: Sequence[Run], *, now: dt.datetime | None) -> set[int]:
    recorded_at = timezone.now()
    for run in runs:
        result = run.result or _Result(
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
        held = _held_locks([run for run in runs if run.execution.pk not in unrecorded])
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


def _held_locks(runs: Sequence[Run]) -> list[tuple[str, str]]:
    return [
        (run.lock.key, run.lock.token) for run in runs if run.lock and not run.lock.lost
    ]


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
        written = _write_finals(runs)
        ended = [run for run in runs if run.execution.pk in written]
        _add_counters(ended)
        if isinstance(backend, DatabaseLockBackend):
            backend.release_many(_held_locks(runs))
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
            result=_Result(
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
        if task.uses_lock:
            keys = [task_lock_key(task.pk)]
        else:
            keys = [_slot_key(task.pk, n) for n in range(task.max_instances)]
        owner = _lock_owner(execution)
        for key in keys:
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


#: Runs per final UPDATE statement (12 parameters each, well under SQLite's limit).
_FINALS_PER_STATEMENT = 400


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
        get_lock_backend().release_many(_held_locks(runs))
    finally:
        for run in runs:
            _watchdog.remove(run)
    logger.info("%d claimed run(s) not started yet are pending again", len(runs))


def _write_finals(runs: Sequence[Run]) -> set[int]:
    """The final state of every run in one conditional UPDATE ... FROM the batch's rows.

    Only rows still `running` are written; returns the ids that were. One
    statement for the batch, not one per run: on PostgreSQL a round trip each was
    what bounded a batch.
    """
    connection = connections[router.db_for_write(TaskExecution)]
    meta = TaskExecution._meta
    quote = connection.ops.quote_name
    fields = [meta.get_field(name) for name in _FINAL_FIELDS]
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    assignments = ", ".join(
        "%s = v.%s" % (quote(f.column), quote(f.column)) for f in fields
    )
    columns = [(meta.pk.column, meta.pk), *((f.column, f) for f in fields)]
    preps = [(f.attname, _db_prep(f, connection)) for f in fields]
    written: set[int] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(runs), _FINALS_PER_STATEMENT):
            rows = [
                [
                    run.execution.pk,
                    *(prep(getattr(run.execution, name)) for name, prep in preps),
                ]
                for run in runs[start : start + _FINALS_PER_STATEMENT]
            ]
            source, params = rows_table(connection, columns, rows)
            sql = (
                source
                + "UPDATE %s SET %s FROM v WHERE %s.%s = v.%s AND %s.%s = %%s RETURNING %s.%s"
                % (
                    table,
                    assignments,
                    table,
                    pk,
                    pk,
                    table,
                    quote(meta.get_field("status").column),
                    table,
                    pk,
                )
            )
            cursor.execute(sql, [*params, Status.RUNNING])
            written.update(row[0] for row in cursor.fetchall())
    return written


def _db_prep(field: Any, connection: Any) -> Callable[[Any], Any]:
    """`field.get_db_prep_save`, short-cut for the values it would return unchanged.

    Field.get_db_prep_save for every value of every ended run was a third of
    recording them: text, integers, aware datetimes and JSON without a custom
    encoder (both as `rows_table` takes them) skip it.
    """
    slow = functools.partial(field.get_db_prep_save, connection=connection)
    if isinstance(field, models.DateTimeField):
        adapt = row_datetime(connection)
        return lambda value: (
            adapt(value) if value is None or timezone.is_aware(value) else slow(value)
        )
    if isinstance(field, models.JSONField) and field.encoder is None:
        # What Django's adapt_json_value sends, as text: SQL NULL stays None.
        return lambda value: value if value is None else json.dumps(value)
    if isinstance(field, (models.CharField, models.TextField)):
        kind: type = str
    elif isinstance(field, models.IntegerField):
        kind = int
    else:
        return slow
    return lambda value: value if value is None or type(value) is kind else slow(value)


def _add_counters(runs: Sequence[Run]) -> None:
    """Add the runs to their tasks' counters, last_run_at kept the latest: one statement.

    Run for every batch of runs, so it is one UPDATE ... FROM the batch's rows,
    not a query per task (which cost more than the runs themselves).
    """
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
    if not per_task:
        return
    connection = connections[router.db_for_write(ScheduledTask)]
    meta = ScheduledTask._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    count = meta.get_field("run_count")
    last = meta.get_field("last_run_at")
    adapt = row_datetime(connection)
    source, params = rows_table(
        connection,
        [
            ("id", meta.pk),
            ("ran", count),
            ("ok", count),
            ("failed", count),
            ("latest", last),
        ],
        [
            (task_id, ran, succeeded, failed, adapt(latest))
            for task_id, (ran, succeeded, failed, latest) in sorted(per_task.items())
        ],
    )
    column = {
        name: quote(meta.get_field(name).column)
        for name in ("run_count", "success_count", "fail_count", "last_run_at")
    }
    sql = source + (
        "UPDATE {t} SET {runs} = {t}.{runs} + v.ran, {ok} = {t}.{ok} + v.ok, "
        "{failed} = {t}.{failed} + v.failed, {last} = CASE WHEN {t}.{last} IS NOT NULL "
        "AND {t}.{last} > v.latest THEN {t}.{last} ELSE v.latest END "
        "FROM v WHERE {t}.{pk} = v.id"
    ).format(
        t=table,
        runs=column["run_count"],
        ok=column["success_count"],
        failed=column["fail_count"],
        last=column["last_run_at"],
        pk=quote(meta.pk.column),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


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
    _request_cancel(execution.pk)
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
            _insert_fires(rows)
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


#: Rows per INSERT statement of `_insert_fires` (well under SQLite's 32766 parameters).
_FIRES_PER_INSERT = 500


def _instant(value: dt.datetime | str) -> int:
    """A fire time as UTC microseconds, however the database driver returned it."""
    if isinstance(value, str):  # SQLite without type detection
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:  # stored as UTC by Django (USE_TZ)
        value = value.replace(tzinfo=dt.UTC)
    return round(value.timestamp() * 1_000_000)


def _insert_fires(rows: list[TaskExecution]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING: sets the pk of each row recorded.

    The scheduler stages every fire through here, so the statement is built from
    one prepared prototype row rather than by bulk_create's per-value compiling.
    The conflict target names the partial unique index `exec_one_per_fire`.
    """
    connection = connections[router.db_for_write(TaskExecution)]
    meta = TaskExecution._meta
    quote = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    # Three columns differ from fire to fire; the rest are the same for all, and
    # are sent once, as parameters of the SELECT list.
    varying = [meta.get_field(name) for name in ("task", "scheduled_for", "run_after")]
    select_list = ", ".join(
        "v.%s" % quote(f.column) if f in varying else typed_param(connection, f)
        for f in fields
    )
    constants = [
        f.get_db_prep_save(getattr(rows[0], f.attname), connection)
        for f in fields
        if f not in varying
    ]
    adapt = row_datetime(connection)
    pk, task_id, scheduled_for = (
        quote(meta.pk.column),
        quote(meta.get_field("task").column),
        quote(meta.get_field("scheduled_for").column),
    )
    columns = ", ".join(quote(f.column) for f in fields)
    by_key: dict[tuple[int, Any], TaskExecution] = {}
    for start in range(0, len(rows), _FIRES_PER_INSERT):
        chunk = rows[start : start + _FIRES_PER_INSERT]
        for row in chunk:
            by_key[(row.task_id, _instant(row.scheduled_for))] = row
        table, params = rows_table(
            connection,
            [(f.column, f) for f in varying],
            [
                (row.task_id, adapt(row.scheduled_for), adapt(row.run_after))
                for row in chunk
            ],
        )
        # WHERE 1 = 1: SQLite's parser needs a WHERE before an upsert's ON CONFLICT.
        sql = table + (
            "INSERT INTO %s (%s) SELECT %s FROM v WHERE 1 = 1 ON CONFLICT (%s, %s) "
            "WHERE %s = '%s' DO NOTHING RETURNING %s, %s, %s"
            % (
                quote(meta.db_table),
                columns,
                select_list,
                task_id,
                scheduled_for,
                quote(meta.get_field("trigger_type").column),
                TaskExecution.TriggerType.SCHEDULED,
                pk,
                task_id,
                scheduled_for,
            )
        )
        params = [*params, *constants]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for new_pk, row_task_id, row_scheduled_for in cursor.fetchall():
                row = by_key.get((row_task_id, _instant(row_scheduled_for)))
                if row is not None:
                    row.pk = new_pk
                    row._state.adding = False


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
        run = _watchdog.get(execution.pk)
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
    for run in _watchdog.runs():
        run.cancel()
    return len(ended)
