"""The Celery worker side: who a worker process is, its heartbeat, and the runs it lost.

Connected when a worker imports `scheduler_app.celery.entry_points` (config/celery.py has it
find it):

- `celeryd_after_setup` (main process): the worker's processes are `worker`
  instances named after its node (`celery@host:pid:random`);
- `worker_process_init` (each prefork pool process) and `worker_ready` (the main
  process of a pool that runs tasks in it: solo, threads): heartbeat, so runs count
  as alive while their process lives, and as abandoned once its heartbeat is stale;
- `worker_process_shutdown`, `worker_shutdown`: stop heartbeating, mark stopped.

`ExecutionRequest` runs in the main process and records the runs a pool process
could not finish: it died (`WorkerLostError`, e.g. `kill -9` or out of memory), or
the hard time limit killed it (`TimeLimitExceeded`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from celery import Task
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.exceptions import TimeLimitExceeded, WorkerLostError
from celery.signals import (
    celeryd_after_setup,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from celery.worker.request import Request
from django.db import DatabaseError, close_old_connections

from ..services.instances import instance_heartbeating, instance_id, instance_set_worker
from ..services.workers import (
    execution_record_hard_timeout,
    execution_record_worker_lost,
)

logger = logging.getLogger(__name__)

# The heartbeat of this process, by pid: a forked pool process starts its own.
_heartbeats: dict[int, ExitStack] = {}
_heartbeats_lock = threading.Lock()


def heartbeat_ensure() -> None:
    """Heartbeat this process as a worker instance unless it already does."""
    pid = os.getpid()
    with _heartbeats_lock:
        if pid in _heartbeats:
            return
        stack = ExitStack()
        try:
            stack.enter_context(instance_heartbeating())
        except DatabaseError:
            # Runs check again: a process that never beats has its runs abandoned.
            logger.warning(
                "Worker process %s could not record its heartbeat; retrying at its "
                "next run",
                instance_id(),
                exc_info=True,
            )
            return
        _heartbeats[pid] = stack


def heartbeat_stop() -> None:
    """Stop this process's heartbeat and mark its instance stopped."""
    with _heartbeats_lock:
        stack = _heartbeats.pop(os.getpid(), None)
    if stack is None:
        return
    try:
        stack.close()
    except DatabaseError:
        logger.warning(
            "Worker process %s could not record its stop", instance_id(), exc_info=True
        )


@celeryd_after_setup.connect
def _name_worker_processes(sender: str, **kwargs: Any) -> None:
    instance_set_worker(node_name=sender)


@worker_process_init.connect
def _pool_process_started(**kwargs: Any) -> None:
    heartbeat_ensure()


@worker_process_shutdown.connect
def _pool_process_stopping(**kwargs: Any) -> None:
    heartbeat_stop()


@worker_ready.connect
def _worker_ready(sender: Any = None, **kwargs: Any) -> None:
    if not isinstance(getattr(sender, "pool", None), PreforkPool):
        heartbeat_ensure()  # this process runs the tasks itself
    logger.info("Celery worker %s ready to run executions", instance_id())


@worker_shutdown.connect
def _worker_stopping(**kwargs: Any) -> None:
    heartbeat_stop()


def _record(request: Request, record: Callable[[int], bool]) -> None:
    """Record the end of the execution a message was about (in the main process)."""
    try:
        execution_id = int(request.args[0])
    except (IndexError, TypeError, ValueError):
        logger.error("Message %s names no execution: %r", request.id, request.args)
        return
    close_old_connections()
    try:
        record(execution_id)
    except DatabaseError:
        logger.exception(
            "Could not record the end of execution %s; it is marked abandoned once the "
            "heartbeat of the process that ran it is stale",
            execution_id,
        )
    finally:
        close_old_connections()


def _kill_pool_process(request: Request) -> None:
    """End the pool process that ran `request` now, before its run is recorded.

    Celery kills it after the record (on_failure, then its own kill); but a
    handler past its hard limit may hold the database (an open transaction, a
    row lock, SQLite's write lock taken by another thread of its process that
    never got the GIL back), and the record would wait for it: for SQLite's busy
    timeout, with the worker's event loop stopped meanwhile. Once the process is
    gone, the database lets go at once.
    """
    pid = request.worker_pid
    if pid and pid != os.getpid():  # a prefork pool process, never this one
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class ExecutionRequest(Request):
    """A run_execution message in the worker's main process."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if not soft:
            _kill_pool_process(self)
            _record(
                self,
                lambda pk: execution_record_hard_timeout(pk, limit_seconds=timeout),
            )

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, TimeLimitExceeded):
            limit = exc.args[0] if exc.args else (self.time_limits[1] or 0)
            _kill_pool_process(self)
            _record(
                self, lambda pk: execution_record_hard_timeout(pk, limit_seconds=limit)
            )
        elif isinstance(exc, (WorkerLostError, SystemExit, KeyboardInterrupt)):
            # The pool process is gone: a run it had claimed can never finish. The
            # message goes back to the queue (reject_on_worker_lost), and its next
            # delivery finds the run no longer pending, so it never runs twice; a
            # run it had not claimed yet is still pending and runs then.
            error = "%s: %s" % (type(exc).__name__, exc)
            _record(self, lambda pk: execution_record_worker_lost(pk, error=error))
        super().on_failure(
            exc_info, send_failed_event=send_failed_event, return_ok=return_ok
        )


class ExecutionTask(Task):
    """Base of run_execution: acked when the run ended, requeued if its process died."""

    Request = ExecutionRequest
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
