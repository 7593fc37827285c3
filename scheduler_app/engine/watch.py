"""The leader's watch: tasks' health, the alerts' delivery and the dead man's switch.

Two threads of runscheduler, doing their work only while it leads (a standby
neither decides nor sends, so nothing goes out twice):

- the health thread runs `health_check` every SCHEDULER_HEALTH_CHECK_SECONDS and
  wakes the sender when it decided an alert; it starts once the loop has led one
  housekeeping round (`may_check`): before the new leader staged the fires a
  restart left behind, every one of them would look late;
- the sender thread delivers the outbox (`alerts_deliver`) every second or when
  woken, and pings SCHEDULER_HEARTBEAT_PING_URL every
  SCHEDULER_HEARTBEAT_PING_SECONDS ("/fail" while this instance is degraded).

Neither touches the loop's state: a slow mail server or webhook delays other
alerts at most, never a fire or a run. A database outage is logged once when it
starts and once when it ends (`Outage`); each pass tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections, connections

from ..conf import app_settings
from ..outages import Outage, database_address
from ..runtime import threads
from ..services import alerts_deliver, health_check, heartbeat_ping

logger = logging.getLogger(__name__)

#: The sender looks at the outbox at least this often (seconds): retries whose
#: time has come, and alerts decided by another process (a test alert).
SEND_EVERY_SECONDS = 1.0


class Watch:
    """The health and sender threads of one scheduler instance."""

    def __init__(
        self,
        *,
        is_leader: Callable[[], bool],
        may_check: Callable[[], bool],
        degraded: Callable[[], list[str]],
    ) -> None:
        self._is_leader = is_leader
        self._may_check = may_check
        self._degraded = degraded
        self._stop = threading.Event()
        self._send_now = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_ping = 0.0

    def start(self) -> None:
        self._threads = [
            threads.ENGINE_HEALTH.start(self._check_loop),
            threads.ENGINE_ALERTS.start(self._send_loop),
        ]

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop both threads (a delivery under way ends by its own timeout)."""
        self._stop.set()
        self._send_now.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _check_loop(self) -> None:
        try:
            self._check_until_stopped()
        finally:
            connections.close_all()  # this thread's connections

    def _send_loop(self) -> None:
        try:
            self._send_until_stopped()
        finally:
            connections.close_all()

    def _check_until_stopped(self) -> None:
        database = _outage("The health check")
        while not self._stop.wait(app_settings.SCHEDULER_HEALTH_CHECK_SECONDS):
            if not (self._is_leader() and self._may_check()):
                continue
            try:
                changes = health_check()
            except DatabaseError as error:
                database.failed(error)
            except Exception:  # a bug: logged, and the next pass tries again
                logger.exception("The health check failed")
            else:
                database.succeeded()
                if any(change.alert is not None for change in changes):
                    self._send_now.set()
            finally:
                close_old_connections()  # this thread's own connection

    def _send_until_stopped(self) -> None:
        database = _outage("The alert sender")
        while not self._stop.is_set():
            self._send_now.wait(SEND_EVERY_SECONDS)
            self._send_now.clear()
            if self._stop.is_set() or not self._is_leader():
                continue
            try:
                alerts_deliver()
            except DatabaseError as error:
                database.failed(error)
            except Exception:
                logger.exception("The alert sender failed")
            else:
                database.succeeded()
            finally:
                close_old_connections()
            self._ping_if_due()

    def _ping_if_due(self) -> None:
        if not app_settings.SCHEDULER_HEARTBEAT_PING_URL:
            return
        now = time.monotonic()
        if now < self._next_ping:
            return
        self._next_ping = now + app_settings.SCHEDULER_HEARTBEAT_PING_SECONDS
        heartbeat_ping(degraded=bool(self._degraded()))


def _outage(who: str) -> Outage:
    return Outage(
        "The database",
        database_address(),
        meanwhile="%s waits meanwhile: alerts are decided and sent once it is back."
        % who,
        log=logger,
    )
