"""The lock a run holds (`RunLock`) and the watchdog that keeps its runs' leases.

One watchdog thread per process looks after every live run: it extends the task
locks of long runs before they expire and delivers cancels requested from other
processes. `request_cancel` is how any cancel reaches a run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from django.db import DatabaseError, close_old_connections, connections, router

from ..conf import app_settings
from ..locks import DatabaseLockBackend, LockBackend
from ..models import SchedulerLock, TaskExecution
from ..outages import Outage, database_address, redis_address
from . import threads

if TYPE_CHECKING:
    from .run import Run

logger = logging.getLogger(__name__)

_lock_stores: dict[str, Outage] = {}
_lock_stores_mutex = threading.Lock()


def lock_store_outage(backend: LockBackend) -> Outage:
    """The outage log of the store the task locks of this process's runs live in.

    One per process and store, shared by every run: an outage is one line, not
    one traceback per run and second.
    """
    redis = not isinstance(backend, DatabaseLockBackend)
    key = "redis" if redis else "database"
    with _lock_stores_mutex:
        outage = _lock_stores.get(key)
        if outage is None:
            outage = _lock_stores[key] = Outage(
                "The task lock store (%s)" % ("Redis" if redis else "the database"),
                redis_address(app_settings.redis_url) if redis else database_address(),
                meanwhile="The task locks of the runs going here cannot be extended "
                "meanwhile; each is tried again every second, and a lock found "
                "expired once it is back is reported as lost in its run's log.",
                log=logger,
            )
        return outage


#: How often a running execution looks for a cancel request made elsewhere.
CANCEL_POLL_SECONDS = 1.0


class RunLock:
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


def held_locks(runs: Sequence[Run]) -> list[tuple[str, str]]:
    """(key, token) of each lock these runs still hold, to release them together."""
    return [
        (run.lock.key, run.lock.token) for run in runs if run.lock and not run.lock.lost
    ]


def committed_at_once(backend: LockBackend, write: Callable[[], bool]) -> bool:
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

    return threads.LOCK_WRITE.call(on_own_connection)


class Watchdog:
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
        self._database: Outage | None = None

    def _database_outage(self) -> Outage:
        if self._database is None:
            self._database = Outage(
                "The database",
                database_address(),
                meanwhile="Cancel requests made elsewhere reach the runs going here "
                "once it is back.",
                log=logger,
            )
        return self._database

    def add(self, run: Run) -> None:
        with self._lock:
            self._runs[run.execution.pk] = run
            if self._pid != os.getpid():  # first use, or the first after a fork
                self._pid = os.getpid()
                threads.WATCHDOG.start(self._loop)
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
            except DatabaseError as exc:  # one line per outage, not one a second
                self._database_outage().failed(exc)
                close_old_connections()
            except Exception:  # the thread boundary: the next round tries again
                logger.exception("The run watchdog failed; trying again")
                close_old_connections()
            else:
                if self._database is not None:
                    self._database.succeeded()

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


#: The watchdog of this process.
watchdog = Watchdog()


def request_cancel(execution_id: int) -> None:
    """Ask a running execution to stop: on its row, and at once if it runs here."""
    TaskExecution.objects.filter(pk=execution_id).update(cancel_requested=True)
    run = watchdog.get(execution_id)
    if run is not None:
        run.cancel()
