"""The one execution path (`execution_run`) and the other execution use cases."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime as dt
import inspect
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    IntegrityError,
    close_old_connections,
    connections,
    transaction,
)
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import signals
from ..conf import app_settings
from ..exceptions import ExecutionCancelled, InvalidTransition, SchedulerError
from ..handlers.registry import get_handler, load_handler
from ..handlers.results import Outcome, json_safe, outcome_from_return
from ..locks import LockBackend, get_lock_backend, lock_key, task_lock_key
from ..models import ScheduledTask, SchedulerInstance, TaskExecution
from ..tasklog import LogSnapshot, RunLog, bind
from .instances import instance_id, instances_alive_ids
from .params import parameters_evaluate
from .tasks import task_local_now

logger = logging.getLogger(__name__)

Status = TaskExecution.Status
FailureKind = TaskExecution.FailureKind

#: How long a `replace` run waits for the run it cancels to let go of the lock.
REPLACE_GRACE_SECONDS = 5.0
#: How often a running execution looks for a cancel request made elsewhere.
CANCEL_POLL_SECONDS = 1.0


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
                    target=loop.run_forever, name="scheduler-async-handlers", daemon=True
                ).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_shared_loop = _SharedLoop()


class _Invocation:
    """One running handler: a sync one in its own thread, an async one on the shared loop.

    The execution path waits for it with a deadline, so a timeout or a cancel never
    depends on the handler's cooperation; a late result is simply ignored.
    """

    def __init__(self, func: Callable[..., Any], kwargs: dict[str, Any]):
        self.func = func
        self.kwargs = kwargs
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self._future: concurrent.futures.Future[Any] | None = None

    def start(self) -> None:
        """Start the handler; call it from the thread whose context the handler gets."""
        if inspect.iscoroutinefunction(self.func):
            try:
                coroutine = self.func(**self.kwargs)
            except BaseException as exc:  # bad arguments, raised before the first await
                self.error = exc
                self.done.set()
                return
            self._future = asyncio.run_coroutine_threadsafe(coroutine, _shared_loop.get())
            self._future.add_done_callback(self._collect)
            return
        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(self._run_sync,), name="scheduler-handler", daemon=True
        ).start()

    def _collect(self, future: concurrent.futures.Future[Any]) -> None:
        try:
            self.value = future.result()
        except BaseException as exc:  # the handler boundary: everything is recorded
            self.error = exc
        self.done.set()

    def _run_sync(self) -> None:
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
            # The handler's own queries ran on this thread's connection.
            connections.close_all()
            self.done.set()

    def cancel(self) -> None:
        """Cancel an async handler on its loop (sync handlers cannot be interrupted)."""
        if self._future is not None:
            self._future.cancel()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


# Runs of this process, so a cancel made here reaches them without a query.
_live_cancel_events: dict[int, threading.Event] = {}
_live_lock = threading.Lock()


def _send(signal: Any, task: ScheduledTask, execution: TaskExecution) -> None:
    for receiver, response in signal.send_robust(
        sender=ScheduledTask, task=task, execution=execution
    ):
        if isinstance(response, Exception):
            logger.error(
                "Signal receiver %r failed for execution %s: %r", receiver, execution.pk, response
            )


def _format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _result_from_outcome(outcome: Outcome) -> _Result:
    return _Result(
        status=outcome.status,
        result=outcome.result,
        error_message=outcome.error_message,
        failure_kind=FailureKind.ERROR if outcome.status == Status.FAILED else "",
    )


class _RunLock:
    """The lock(s) a run holds, kept alive while it lives."""

    def __init__(self, backend: LockBackend, key: str, token: str, ttl: float):
        self.backend = backend
        self.key = key
        self.token = token
        self.ttl = ttl
        self.lost = False

    def extend(self) -> bool:
        if not self.lost and not self.backend.extend(self.key, self.token, self.ttl):
            self.lost = True
        return not self.lost

    def release(self) -> None:
        if not self.lost:
            self.backend.release(self.key, self.token)


def _acquire_run_lock(
    task: ScheduledTask, execution: TaskExecution
) -> tuple[_RunLock | None, str]:
    """Take the lock the overlap policy needs. Returns (lock or None, why it was refused)."""
    backend = get_lock_backend()
    ttl = float(app_settings.SCHEDULER_TASK_LOCK_TTL)
    owner = "%s exec:%s" % (execution.instance_id, execution.pk)
    policy = task.overlap_policy
    if policy == ScheduledTask.OverlapPolicy.ALLOW:
        if not task.max_instances:
            return None, ""
        for slot in range(task.max_instances):
            key = lock_key("task-slot", "%s:%s" % (task.pk, slot))
            token = backend.acquire(key, owner=owner, ttl_seconds=ttl)
            if token:
                return _RunLock(backend, key, token, ttl), ""
        return None, _(
            "Skipped: %(count)d runs of this task are already running (max concurrent runs)."
        ) % {"count": task.max_instances}
    key = task_lock_key(task.pk)
    token = backend.acquire(key, owner=owner, ttl_seconds=ttl)
    if token:
        return _RunLock(backend, key, token, ttl), ""
    holder = backend.get(key)
    holder_text = holder.owner if holder else _("another run")
    if policy == ScheduledTask.OverlapPolicy.REPLACE:
        token = _replace_running(task, execution, backend, key, owner, ttl)
        return _RunLock(backend, key, token, ttl), ""
    return None, _("Skipped: the previous run is still going (held by %(holder)s).") % {
        "holder": holder_text
    }


def _replace_running(
    task: ScheduledTask,
    execution: TaskExecution,
    backend: LockBackend,
    key: str,
    owner: str,
    ttl: float,
) -> str:
    """Cancel the task's running executions and take the lock from them."""
    running = TaskExecution.objects.filter(task=task, status=Status.RUNNING).exclude(
        pk=execution.pk
    )
    ids = list(running.values_list("pk", flat=True))
    for pk in ids:
        _request_cancel(pk)
    deadline = time.monotonic() + REPLACE_GRACE_SECONDS
    while time.monotonic() < deadline:
        token = backend.acquire(key, owner=owner, ttl_seconds=ttl)
        if token:
            return token
        time.sleep(0.05)
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
        raise SchedulerError(_("Could not take over the task lock %(key)s.") % {"key": key})
    return token


def _request_cancel(execution_id: int) -> None:
    TaskExecution.objects.filter(pk=execution_id).update(cancel_requested=True)
    with _live_lock:
        event = _live_cancel_events.get(execution_id)
    if event is not None:
        event.set()


def _wait_for_handler(
    runner: _Invocation,
    execution: TaskExecution,
    task: ScheduledTask,
    run_log: RunLog,
    run_lock: _RunLock | None,
    cancel_event: threading.Event,
) -> _Result:
    """Wait for the handler while enforcing the timeout, cancels and the lock's lease."""
    started = time.monotonic()
    deadline = started + task.timeout_seconds if task.timeout_seconds else None
    next_extend = started + (run_lock.ttl / 3 if run_lock else 0)
    next_cancel_poll = started + CANCEL_POLL_SECONDS
    while True:
        now = time.monotonic()
        wait = min(next_cancel_poll, next_extend if run_lock else next_cancel_poll) - now
        if deadline is not None:
            wait = min(wait, deadline - now)
        if runner.done.wait(max(0.0, wait)):
            break
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            run_log.cancelled = True
            runner.cancel()
            runner.done.wait(1.0)
            return _Result(
                status=Status.FAILED,
                error_message=_("Timed out after %(seconds)s s (timeout_seconds).")
                % {"seconds": task.timeout_seconds},
                failure_kind=FailureKind.TIMEOUT,
            )
        if run_lock and now >= next_extend:
            if not run_lock.extend():
                run_log.write(
                    _("WARNING: the task lock %(key)s was lost; another run may start.")
                    % {"key": run_lock.key}
                )
                logger.warning("Execution %s lost its task lock %s", execution.pk, run_lock.key)
            next_extend = now + run_lock.ttl / 3
        if now >= next_cancel_poll:
            next_cancel_poll = now + CANCEL_POLL_SECONDS
            if not cancel_event.is_set() and TaskExecution.objects.filter(
                pk=execution.pk, cancel_requested=True
            ).exists():
                cancel_event.set()
        if cancel_event.is_set():
            run_log.cancelled = True
            runner.cancel()
            runner.done.wait(1.0)
            return _Result(status=Status.CANCELLED, error_message=_("Cancelled on request."))
    if runner.error is not None:
        error = runner.error
        if isinstance(error, ExecutionCancelled) or (
            isinstance(error, (asyncio.CancelledError, concurrent.futures.CancelledError))
            and cancel_event.is_set()
        ):
            return _Result(status=Status.CANCELLED, error_message=_("Cancelled on request."))
        return _Result(
            status=Status.FAILED,
            error_message="%s: %s" % (type(error).__name__, error),
            error_traceback=_format_traceback(error),
            failure_kind=FailureKind.ERROR,
        )
    return _result_from_outcome(outcome_from_return(runner.value))


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


def _write_final(
    execution: TaskExecution, task: ScheduledTask, fields: dict[str, Any]
) -> bool:
    """Store a run's final state and the task's counters in one transaction.

    Only if the run is still `running` here (nobody recovered or replaced it
    meanwhile). Retried on database errors (a lost connection, a busy SQLite), so
    the record is not lost.
    """
    status = fields["status"]
    for attempt in range(5):
        try:
            with transaction.atomic():
                written = TaskExecution.objects.filter(
                    pk=execution.pk, status=Status.RUNNING
                ).update(**fields)
                if written and status != Status.SKIPPED:
                    ScheduledTask.objects.filter(pk=task.pk).update(
                        run_count=F("run_count") + 1,
                        success_count=F("success_count") + int(status == Status.SUCCESS),
                        fail_count=F("fail_count") + int(status == Status.FAILED),
                        last_run_at=execution.started_at,
                    )
            return bool(written)
        except DatabaseError:
            if attempt == 4:
                raise
            logger.warning(
                "Could not record the end of execution %s; retrying", execution.pk, exc_info=True
            )
            close_old_connections()
            time.sleep(0.2 * (attempt + 1))
    return False


def _schedule_retry(execution: TaskExecution, task: ScheduledTask, now: dt.datetime) -> None:
    delay = task.retry_delay_seconds
    if task.retry_backoff:
        delay *= 2 ** (execution.attempt - 1)
    retry = TaskExecution.objects.create(
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
    logger.info(
        "Execution %s of task %s failed; retry %s/%s is execution %s in %s s",
        execution.pk,
        task.name,
        execution.attempt,
        task.max_retries,
        retry.pk,
        delay,
    )


def execution_run(
    execution: TaskExecution,
    *,
    log_listener: Callable[[str], None] | None = None,
    echo: bool | None = None,
) -> TaskExecution:
    """Run one pending execution to its end: the only code that runs a handler.

    Claims the execution (pending → running, by a conditional update, so a second
    delivery of the same execution does nothing), takes the lock its overlap policy
    needs (recording `skipped` when it cannot), evaluates the parameters, runs the
    handler under its timeout, records the outcome, updates the task's counters and
    schedules a retry when the task asks for one. Returns the execution as stored.
    """
    me = instance_id()
    started_at = timezone.now()
    claimed = TaskExecution.objects.filter(pk=execution.pk, status=Status.PENDING).update(
        status=Status.RUNNING, instance_id=me, started_at=started_at
    )
    if claimed != 1:
        execution.refresh_from_db()
        logger.warning(
            "Execution %s is %s, not pending: not running it again", execution.pk, execution.status
        )
        return execution
    execution.mark_running(instance_id=me, now=started_at)
    # The engine hands executions over with their task already loaded (one query
    # per batch); anyone else gets it fetched here.
    if TaskExecution.task.is_cached(execution):
        task = execution.task
    else:
        task = ScheduledTask.objects.get(pk=execution.task_id)
        execution.task = task
    run_log = RunLog(
        max_lines=app_settings.SCHEDULER_LOG_BUFFER_MAX_LINES,
        echo=settings.DEBUG if echo is None else echo,
        clock=lambda: task_local_now(task),
    )
    if log_listener is not None:
        run_log.add_listener(log_listener)
    cancel_event = threading.Event()
    with _live_lock:
        _live_cancel_events[execution.pk] = cancel_event
    run_lock: _RunLock | None = None
    result = _Result(
        status=Status.FAILED,
        error_message=_("The run stopped unexpectedly."),
        failure_kind=FailureKind.ERROR,
    )
    logger.info(
        "Execution %s of task %s started (trigger %s)", execution.pk, task.name, execution.trigger_type
    )
    try:
        run_lock, refused = _acquire_run_lock(task, execution)
        if refused:
            result = _Result(status=Status.SKIPPED, result={"message": refused})
            run_log.write(refused)
        else:
            _send(signals.execution_started, task, execution)
            with bind(
                run_log,
                sink=_live_sink(execution),
                interval=app_settings.SCHEDULER_LOG_PUBLISH_INTERVAL,
            ):
                result = _evaluate_and_call(execution, task, run_log, run_lock, cancel_event)
    except Exception as exc:  # the run boundary: whatever broke is recorded on the run
        logger.exception("Execution %s of task %s broke", execution.pk, task.name)
        result = _Result(
            status=Status.FAILED,
            error_message="%s: %s" % (type(exc).__name__, exc),
            error_traceback=_format_traceback(exc),
            failure_kind=FailureKind.ERROR,
        )
    finally:
        with _live_lock:
            _live_cancel_events.pop(execution.pk, None)
        if run_lock is not None:
            try:
                run_lock.release()
            except Exception:
                logger.exception("Could not release lock %s; it expires by itself", run_lock.key)
        _record(execution, task, run_log, result)
    return execution


def _evaluate_and_call(
    execution: TaskExecution,
    task: ScheduledTask,
    run_log: RunLog,
    run_lock: _RunLock | None,
    cancel_event: threading.Event,
) -> _Result:
    try:
        func = load_handler(task.handler_path)
        info = get_handler(task.handler_path)
        raw = {**task.handler_kwargs, **execution.kwargs_overrides}
        kwargs = parameters_evaluate(
            info, raw, now=task_local_now(task, now=execution.started_at)
        )
    except SchedulerError as exc:
        run_log.write(exc.message)
        return _Result(
            status=Status.FAILED, error_message=exc.message, failure_kind=FailureKind.ERROR
        )
    execution.kwargs = json_safe(kwargs)
    runner = _Invocation(func, kwargs)
    runner.start()
    return _wait_for_handler(runner, execution, task, run_log, run_lock, cancel_event)


def _record(
    execution: TaskExecution, task: ScheduledTask, run_log: RunLog, result: _Result
) -> None:
    """Write the run's final state, the task's counters, signals and any retry."""
    finished_at = timezone.now()
    snapshot = run_log.snapshot()
    execution.mark_finished(
        status=result.status,
        now=finished_at,
        result=result.result,
        error_message=result.error_message,
        error_traceback=result.error_traceback,
        failure_kind=result.failure_kind,
    )
    execution.log_output = snapshot.text
    execution.progress_done = snapshot.progress_done
    execution.progress_total = snapshot.progress_total
    written = _write_final(
        execution,
        task,
        {
            "status": execution.status,
            "finished_at": execution.finished_at,
            "duration_ms": execution.duration_ms,
            "result": execution.result,
            "error_message": execution.error_message,
            "error_traceback": execution.error_traceback,
            "failure_kind": execution.failure_kind,
            "log_output": execution.log_output,
            "progress_done": execution.progress_done,
            "progress_total": execution.progress_total,
            "kwargs": execution.kwargs,
        },
    )
    if not written:
        # Someone else ended this run meanwhile (replaced, recovered): theirs stands.
        execution.refresh_from_db()
        logger.warning(
            "Execution %s was ended elsewhere (%s); its late result is ignored",
            execution.pk,
            execution.status,
        )
        return
    logger.info(
        "Execution %s of task %s ended: %s in %s ms",
        execution.pk,
        task.name,
        execution.status,
        execution.duration_ms,
    )
    signal = {
        Status.SUCCESS: signals.execution_succeeded,
        Status.FAILED: signals.execution_failed,
        Status.SKIPPED: signals.execution_skipped,
    }.get(execution.status)
    if signal is not None:
        _send(signal, task, execution)
    if (
        execution.status == Status.FAILED
        and execution.trigger_type != TaskExecution.TriggerType.CLI
        and execution.attempt <= task.max_retries
    ):
        _schedule_retry(execution, task, finished_at)


def execution_cancel(execution: TaskExecution, *, now: dt.datetime | None = None) -> TaskExecution:
    """Cancel a pending execution at once, or ask a running one to stop.

    A running async handler is cancelled on its loop; a sync handler is stopped at
    its next task_log/task_progress call, or recorded cancelled and left to finish
    unobserved once the executor sees the request (within about a second).
    """
    now = now or timezone.now()
    if TaskExecution.objects.filter(pk=execution.pk, status=Status.PENDING).update(
        status=Status.CANCELLED,
        finished_at=now,
        error_message=_("Cancelled before it started."),
    ):
        execution.refresh_from_db()
        return execution
    execution.refresh_from_db()
    if execution.status != Status.RUNNING:
        raise InvalidTransition(
            _("Execution #%(id)s is already %(status)s; only pending or running runs can be cancelled.")
            % {"id": execution.pk, "status": execution.get_status_display()}
        )
    _request_cancel(execution.pk)
    execution.cancel_requested = True
    return execution


def executions_recover_abandoned(*, now: dt.datetime | None = None) -> int:
    """Mark as failed the runs left `running` by instances that are gone.

    "Gone" means no fresh heartbeat (SCHEDULER_INSTANCE_STALE_SECONDS). Runs that
    started within that window are left alone: their instance may not have beaten yet.
    """
    now = now or timezone.now()
    stale_before = now - dt.timedelta(seconds=app_settings.SCHEDULER_INSTANCE_STALE_SECONDS)
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
            ) % {"instance": gone, "heartbeat": timezone.localtime(last).strftime("%Y-%m-%d %H:%M:%S")}
        else:
            message = _(
                "Abandoned: instance “%(instance)s” stopped while this run was going."
            ) % {"instance": gone or "?"}
        count = TaskExecution.objects.running().filter(
            instance_id=gone, started_at__lt=stale_before
        ).update(
            status=Status.FAILED,
            failure_kind=FailureKind.ABANDONED,
            finished_at=now,
            error_message=message,
        )
        if count:
            logger.warning("Marked %d execution(s) of gone instance %s as abandoned", count, gone)
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
    old = TaskExecution.objects.older_than(cutoff).filter(status__in=TaskExecution.FINISHED_STATUSES)
    deleted = 0
    while True:
        batch = list(old.order_by().values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        deleted += TaskExecution.objects.filter(pk__in=batch).delete()[0]


def executions_create_scheduled(
    fires: list[tuple[int, dt.datetime]], *, now: dt.datetime | None = None
) -> list[TaskExecution]:
    """Record fires as pending executions, in one insert; returns the ones recorded here.

    A fire another scheduler instance already recorded (same task and fire time) is
    refused by the `exec_one_per_fire` constraint and left out, so every fire runs
    exactly once however many instances fire it.
    """
    if not fires:
        return []
    now = now or timezone.now()
    # Loaded once for the whole batch and attached, so execution_run does not
    # fetch each task again. A task deleted since it was loaded fires no more.
    tasks = ScheduledTask.objects.in_bulk({task_id for task_id, _when in fires})
    rows = [
        TaskExecution(
            task=tasks[task_id],
            status=Status.PENDING,
            trigger_type=TaskExecution.TriggerType.SCHEDULED,
            scheduled_for=scheduled_for,
            created_at=now,
        )
        for task_id, scheduled_for in fires
        if task_id in tasks
    ]
    try:
        with transaction.atomic():
            return TaskExecution.objects.bulk_create(rows)
    except IntegrityError:
        pass
    # Some fire was already recorded (a second instance, a restart): one by one.
    created = []
    for row in rows:
        try:
            with transaction.atomic():
                row.save(force_insert=True)
        except IntegrityError:
            logger.warning(
                "Fire of task %s at %s was already recorded; not firing it twice",
                row.task_id,
                row.scheduled_for,
            )
            continue
        created.append(row)
    return created


def executions_interrupt(*, instance: str, now: dt.datetime | None = None) -> int:
    """Mark the runs this instance still has going as failed ("interrupted").

    Called when the scheduler stops and the shutdown grace period is over. The
    runs of this process stop waiting for their handlers at once (their late
    results are ignored), so the process can exit.
    """
    count = TaskExecution.objects.running().filter(instance_id=instance).update(
        status=Status.FAILED,
        failure_kind=FailureKind.INTERRUPTED,
        finished_at=now or timezone.now(),
        error_message=_(
            "Interrupted: the scheduler instance “%(instance)s” stopped before the run "
            "finished."
        )
        % {"instance": instance},
    )
    with _live_lock:
        events = list(_live_cancel_events.values())
    for event in events:
        event.set()
    return count
