"""Change and run-now notifications to running schedulers: Redis pub/sub when configured.

Without Redis, publishing does nothing and schedulers notice changes by their cheap
database version check instead (within a second). With Redis a scheduler wakes as
soon as the message arrives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from django.db import transaction

from .conf import app_settings
from .outages import Outage, redis_address
from .redis_client import get_redis
from .runtime import threads

logger = logging.getLogger(__name__)

#: Task definitions changed (create, edit, pause, resume, delete).
TASKS_CHANGED = "tasks"
#: A pending execution was requested (run-now, API, Python API, a retry).
RUN_REQUESTED = "run"
#: Sent by the listener itself each time its subscription is (again) in place:
#: whatever was published while it was not may have been missed.
SUBSCRIBED = "subscribed"


def channel() -> str:
    return app_settings.SCHEDULER_REDIS_PREFIX + "events"


def _client() -> redis.Redis:
    return get_redis(app_settings.redis_url)


def publish(event: str) -> None:
    """Tell running schedulers about `event` once the current transaction commits."""
    if not app_settings.redis_url:
        return

    def send() -> None:
        try:
            _client().publish(channel(), event)
        except Exception:
            # A lost notification only costs latency: the version check still sees it.
            logger.warning("Could not publish %r to Redis", event, exc_info=True)

    transaction.on_commit(send)


class Listener:
    """A daemon thread that calls `callback(event)` for every notification received.

    `live` is True while the subscription is in place (Redis confirmed it): as
    long as it is, nothing published is missed, and the scheduler can poll the
    database less. Each time it becomes live the callback gets SUBSCRIBED.
    """

    def __init__(self, callback: Callable[[str], None]) -> None:
        self._callback = callback
        self._stop = threading.Event()
        self._thread = threads.NOTIFY.new(self._run)
        self.live = False
        #: One log line when the subscription is lost, one when it is back.
        self.outage = Outage(
            "Redis (notifications)",
            redis_address(app_settings.redis_url),
            meanwhile="Changes and run-now requests are seen through the database "
            "meanwhile (within a second).",
            log=logger,
        )

    def start(self) -> None:
        if app_settings.redis_url:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.live = False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = _client().pubsub()
                pubsub.subscribe(channel())
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.outage.succeeded()
                        self.live = True
                        self._callback(SUBSCRIBED)
                    elif message["type"] == "message":
                        self._callback(str(message["data"]))
                pubsub.close()
            except Exception as exc:
                # Changes are still seen through the database version check meanwhile.
                self.live = False
                self._stop.wait(self.outage.failed(exc))
        self.live = False
