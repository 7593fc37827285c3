"""The Celery executor: hands executions to Celery workers (SCHEDULER_EXECUTOR=celery).

One message per execution, carrying only its id, to the task's queue (or
SCHEDULER_DEFAULT_QUEUE). A worker runs it through the one execution path
(`scheduler_app.celery.entry_points.run_execution`), which claims it first: a message delivered
twice, or sent again, runs nothing twice. Its task id names the execution, so
cancelling a pending execution revokes its message (`execution_revoke`, which this
module registers with the services when it is imported: apps.py imports it when
SCHEDULER_EXECUTOR is "celery").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from celery import Celery, current_app
from kombu.exceptions import OperationalError

from ..choices import ExecutorName
from ..conf import app_settings
from ..models import ScheduledTask, TaskExecution
from ..services.runs import pending_cancel_hooks

logger = logging.getLogger(__name__)

#: The Celery task name of `scheduler_app.celery.entry_points.run_execution` (sent by name, so
#: the scheduler never imports the worker side).
RUN_EXECUTION = "scheduler_app.run_execution"


def execution_task_id(execution_id: int) -> str:
    """The Celery task id of an execution's messages: the same for every send of it."""
    return "execution-%d" % execution_id


def execution_revoke(execution_id: int, *, app: Celery | None = None) -> None:
    """Revoke the messages of a cancelled pending execution: workers drop them unrun.

    One of `pending_cancel_hooks`; does nothing unless SCHEDULER_EXECUTOR is
    "celery". Best effort: a broker error is logged, and a worker that gets the
    message anyway (one started after the revoke, which never heard of it) finds
    the execution cancelled and runs nothing.
    """
    if app_settings.SCHEDULER_EXECUTOR != ExecutorName.CELERY:
        return
    app = app or current_app._get_current_object()
    task_id = execution_task_id(execution_id)
    try:
        # One connection attempt: the cancel is done already, and the request that
        # made it must not wait on a broker that is down.
        with app.connection_for_write(
            transport_options={"max_retries": 0}
        ) as connection:
            app.control.revoke(task_id, connection=connection)
    except OperationalError as exc:
        logger.warning(
            "Could not revoke Celery message %s of cancelled execution %s (%s); a "
            "worker that gets it runs nothing",
            task_id,
            execution_id,
            exc,
        )
        return
    logger.info(
        "Revoked Celery message %s of cancelled execution %s", task_id, execution_id
    )


pending_cancel_hooks.append(execution_revoke)


def send_options(task: ScheduledTask) -> dict[str, Any]:
    """Queue and time limits of a task's messages.

    The soft limit (`timeout_seconds`) raises SoftTimeLimitExceeded in the handler;
    SCHEDULER_CELERY_HARD_LIMIT_GRACE_SECONDS later the worker process is killed.
    """
    options: dict[str, Any] = {
        "queue": task.queue or app_settings.SCHEDULER_DEFAULT_QUEUE
    }
    if task.timeout_seconds:
        options["soft_time_limit"] = task.timeout_seconds
        options["time_limit"] = (
            task.timeout_seconds
            + app_settings.SCHEDULER_CELERY_HARD_LIMIT_GRACE_SECONDS
        )
    return options


class CeleryExecutor:
    """Sends executions to Celery, and remembers what it sent until a worker claims it.

    The engine offers every pending execution not in `inflight()`. A sent one stays
    pending until a worker claims it, so it is remembered until it is no longer
    pending (one query every `check_seconds`), or for `resend_seconds` at most: then
    it is offered and sent again, in case the broker lost the message (a duplicate
    is harmless).
    """

    #: Fires are sent at their time: a worker starts what it receives.
    lead_seconds = 0.0
    #: How often the ids sent are checked against the database.
    check_seconds = 2.0
    #: A sent execution still pending after this long is sent again.
    resend_seconds = 3600.0
    #: Ids per query when checking what is still pending.
    check_batch = 2000

    def __init__(
        self, *, app: Celery | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._app = app
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[int, float] = {}  # execution id -> when it was sent
        self._next_check = 0.0

    @property
    def app(self) -> Celery:
        return self._app or current_app._get_current_object()

    # -- the Executor protocol -------------------------------------------------------

    def submit(self, executions: Iterable[TaskExecution]) -> None:
        """Send each execution not sent already; on a broker error the rest wait.

        Executions that could not be sent stay pending and are offered again at
        the next tick.
        """
        with self._lock:
            todo = [
                execution for execution in executions if execution.pk not in self._sent
            ]
        if not todo:
            return
        sent: list[int] = []
        try:
            with self.app.producer_or_acquire() as producer:
                for execution in todo:
                    self.app.send_task(
                        RUN_EXECUTION,
                        args=[execution.pk],
                        task_id=execution_task_id(execution.pk),
                        producer=producer,
                        **send_options(execution.task),
                    )
                    sent.append(execution.pk)
        except OperationalError as exc:
            logger.error(
                "Celery broker unreachable (%s): %d execution(s) stay pending and are "
                "sent again",
                exc,
                len(todo) - len(sent),
            )
        finally:
            now = self._clock()
            with self._lock:
                self._sent.update((pk, now) for pk in sent)
        logger.debug("Sent %d execution(s) to Celery", len(sent))

    def busy(self) -> bool:
        """Never: sending a message is all it does at a fire time."""
        return False

    def inflight(self) -> set[int]:
        """Ids sent and not yet claimed by a worker (as of the last check)."""
        if self._clock() >= self._next_check:
            self._forget_claimed()
        with self._lock:
            return set(self._sent)

    def shutdown(self, *, grace_seconds: float) -> set[int]:
        """Nothing runs in this process: messages sent stay with the broker."""
        with self._lock:
            self._sent.clear()
        return set()

    # -- bookkeeping -------------------------------------------------------------

    def _forget_claimed(self) -> None:
        now = self._clock()
        self._next_check = now + self.check_seconds
        with self._lock:
            sent = dict(self._sent)
        if not sent:
            return
        ids = list(sent)
        pending: set[int] = set()
        for start in range(0, len(ids), self.check_batch):
            pending.update(
                TaskExecution.objects.still_pending(
                    ids[start : start + self.check_batch]
                ).values_list("pk", flat=True)
            )
        expired = {pk for pk in pending if now - sent[pk] >= self.resend_seconds}
        if expired:
            logger.warning(
                "%d execution(s) sent to Celery %.0f s ago are still pending (no "
                "worker on their queue?); sending them again",
                len(expired),
                self.resend_seconds,
            )
        with self._lock:
            for pk in sent:
                if pk not in pending or pk in expired:
                    self._sent.pop(pk, None)
