"""Executors: where the engine's executions run (inline thread pool; Celery comes later)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import close_old_connections

from ..models import TaskExecution
from ..services import execution_run

logger = logging.getLogger(__name__)


class InlineExecutor:
    """Runs executions in a bounded pool of threads inside the scheduler process.

    Each thread calls the one execution path; async handlers inside it run on the
    process's shared event loop, sync ones in their own thread under the timeout.
    """

    def __init__(self, max_workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="scheduler-run")
        self._lock = threading.Lock()
        self._inflight: dict[int, Future[None]] = {}

    def submit(self, executions: Iterable[TaskExecution]) -> None:
        for execution in executions:
            with self._lock:
                if execution.pk in self._inflight:
                    continue
                self._inflight[execution.pk] = self._pool.submit(self._run, execution)

    def inflight(self) -> set[int]:
        with self._lock:
            return set(self._inflight)

    def _run(self, execution: TaskExecution) -> None:
        close_old_connections()
        try:
            execution_run(execution)
        except Exception:  # the job boundary: execution_run records what it can
            logger.exception("Execution %s could not be run", execution.pk)
        finally:
            close_old_connections()
            with self._lock:
                self._inflight.pop(execution.pk, None)

    def shutdown(self, *, grace_seconds: float) -> set[int]:
        """Start nothing new; wait up to the grace period; return the ids still running.

        Executions still queued (not started) stay pending in the database, so the
        next scheduler to run starts them: nothing is lost.
        """
        with self._lock:
            for future in self._inflight.values():
                future.cancel()
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            with self._lock:
                running = {pk for pk, future in self._inflight.items() if not future.cancelled()}
            if not running:
                break
            time.sleep(0.05)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            return {pk for pk, future in self._inflight.items() if not future.cancelled()}
