"""The background threads a process of the app starts: all of them, in one list.

Every thread of `scheduler_app` starts through one of these entries, so this list
is what a thread dump of the scheduler, a Celery worker or `run_task` can show.
Each entry says what it runs (`target`, "module:qualified name") and who starts it.
All are daemon threads: none may keep a stopping process alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class BackgroundThread:
    """One kind of thread: its name, what it runs, and why it exists."""

    name: str
    target: str
    purpose: str
    daemon: bool = True

    def new(
        self,
        target: Callable[..., object],
        *,
        args: Sequence[Any] = (),
        suffix: str = "",
    ) -> threading.Thread:
        """A thread of this kind running `target(*args)`, not started yet."""
        return threading.Thread(
            target=target,
            args=tuple(args),
            name=self.name + suffix,
            daemon=self.daemon,
        )

    def start(
        self,
        target: Callable[..., object],
        *,
        args: Sequence[Any] = (),
        suffix: str = "",
    ) -> threading.Thread:
        """Start a thread of this kind running `target(*args)`; returns it."""
        thread = self.new(target, args=args, suffix=suffix)
        thread.start()
        return thread

    def call(self, function: Callable[[], T]) -> T:
        """`function()` on a thread of this kind, waited for: its value, or its error."""
        outcome: list[Any] = []

        def target() -> None:
            try:
                outcome.append((True, function()))
            except BaseException as error:  # handed to the waiting caller
                outcome.append((False, error))

        self.start(target).join()
        succeeded, value = outcome[0]
        if not succeeded:
            raise value
        return value


# -- the engine (runscheduler) ------------------------------------------------------

ENGINE_BOOKKEEPER = BackgroundThread(
    "scheduler-bookkeeper",
    "scheduler_app.engine.executor:InlineExecutor._bookkeep",
    "The inline executor: claims the executions handed over, records ended runs.",
)
ENGINE_TIMER = BackgroundThread(
    "scheduler-timer",
    "scheduler_app.engine.executor:InlineExecutor._time",
    "The inline executor: gives each claimed staged fire to the pool at its time.",
)
ENGINE_RUN = BackgroundThread(
    "scheduler-run-",
    "scheduler_app.engine.executor:InlineExecutor._work_loop",
    "The inline executor's pool (SCHEDULER_THREAD_POOL_SIZE of them, numbered; "
    "SCHEDULER_WORKER_PROCESSES with SCHEDULER_ISOLATION=process, each driving "
    "its handler process): each calls one handler at a time.",
)
ENGINE_HEALTH = BackgroundThread(
    "scheduler-health",
    "scheduler_app.engine.watch:Watch._check_loop",
    "The leader's health check: every task's health, and the alerts it calls for.",
)
ENGINE_ALERTS = BackgroundThread(
    "scheduler-alerts",
    "scheduler_app.engine.watch:Watch._send_loop",
    "The leader's alert sender (the outbox), and its dead man's switch ping.",
)
ENGINE_METRICS = BackgroundThread(
    "scheduler-metrics",
    "prometheus_client.exposition:ThreadingWSGIServer.serve_forever",
    "With --metrics-port: serves the process's Prometheus figures (engine/metrics.py; "
    "started by prometheus_client.start_http_server, named after this entry).",
)
NOTIFY = BackgroundThread(
    "scheduler-notify",
    "scheduler_app.notify:Listener._run",
    "With Redis: receives change and run-request notifications for the engine.",
)

# -- a handler process (SCHEDULER_ISOLATION=process) ---------------------------------

CHILD_READER = BackgroundThread(
    "scheduler-child-reader",
    "scheduler_app.runtime.child:Child._read",
    "In a handler process: receives runs, cancels and replies from the scheduler.",
)

# -- any process that runs executions (scheduler, Celery worker, run_task) -----------

WATCHDOG = BackgroundThread(
    "scheduler-watchdog",
    "scheduler_app.runtime.leases:Watchdog._loop",
    "Extends the task locks of long runs; delivers cancels made in other processes.",
)
LOCK_WRITE = BackgroundThread(
    "scheduler-lock",
    "scheduler_app.runtime.leases:committed_at_once",
    "One database lock write on a connection of its own, so it commits at once "
    "inside a handler's transaction (short-lived, waited for).",
)
HANDLER = BackgroundThread(
    "scheduler-handler",
    "scheduler_app.runtime.invocation:Invocation._call",
    "A handler in thread isolation: an async one (on an event loop of its own), or "
    "a sync one with a timeout to enforce (one per such run, ends with it).",
)
LOG_PUBLISHER = BackgroundThread(
    "scheduler-log-publisher",
    "scheduler_app.tasklog:LogPublisher._loop",
    "Publishes running executions' logs and progress (row, Redis) while they run.",
)
HEARTBEAT = BackgroundThread(
    "scheduler-heartbeat",
    "scheduler_app.services.instances:instance_heartbeating",
    "Heartbeats a process that runs executions without the engine's loop "
    "(run_task, a worker, a scheduler in its shutdown grace).",
)

#: Every thread the app starts.
THREADS: tuple[BackgroundThread, ...] = (
    ENGINE_BOOKKEEPER,
    ENGINE_TIMER,
    ENGINE_RUN,
    ENGINE_HEALTH,
    ENGINE_ALERTS,
    ENGINE_METRICS,
    NOTIFY,
    CHILD_READER,
    WATCHDOG,
    LOCK_WRITE,
    HANDLER,
    LOG_PUBLISHER,
    HEARTBEAT,
)
