"""Dependencies that go away: one log line when they do, one when they are back.

During an outage of the database or Redis every attempt fails the same way; a
traceback a second says nothing new and buries what does. An `Outage` logs the
first failure as one warning (the address, the error, what the scheduler does
meanwhile), later ones at DEBUG, and one line when an attempt succeeds again; it
gives the delay before the next attempt, doubling up to RETRY_AT_MOST_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

logger = logging.getLogger(__name__)

#: The first retry after a failure, and the longest wait between two retries.
RETRY_FIRST_SECONDS = 1.0
RETRY_AT_MOST_SECONDS = 10.0


def database_address() -> str:
    """Where the default database is, without its password (a SQLite file's path)."""
    db = settings.DATABASES["default"]
    vendor = db["ENGINE"].rsplit(".", 1)[-1]
    if vendor == "sqlite3":
        return "sqlite3 %s" % db.get("NAME", "")
    host = db.get("HOST") or "localhost"
    port = db.get("PORT")
    return "%s %s%s/%s" % (
        vendor,
        host,
        ":%s" % port if port else "",
        db.get("NAME", ""),
    )


def redis_address(url: str) -> str:
    """A Redis URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = "%s:***@%s%s" % (
        parts.username or "",
        host,
        ":%d" % parts.port if parts.port else "",
    )
    return urlunsplit(parts._replace(netloc=netloc))


def describe(exc: BaseException) -> str:
    """The error in one line: its class and the first line of its message."""
    text = str(exc).strip().splitlines()
    return (
        "%s: %s" % (type(exc).__name__, text[0].rstrip("."))
        if text
        else type(exc).__name__
    )


class Outage:
    """One dependency as one user of it sees it: up, or down since when and why."""

    def __init__(
        self,
        name: str,
        address: str,
        *,
        meanwhile: str,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger = logger,
    ) -> None:
        #: What it is ("The database", "Redis") and where, for the log lines.
        self.name = name
        self.address = address
        #: What the scheduler does while it is away, said in the first line.
        self.meanwhile = meanwhile
        self._clock = clock
        self._log = log
        self._lock = threading.Lock()  # a thread of its own may report too
        self.down_since: float | None = None
        #: Why it is down (the first error), or "" while it is up.
        self.reason = ""
        self._delay = 0.0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, exc: BaseException) -> float:
        """An attempt failed: log it if it is the first; return the delay before the next."""
        with self._lock:
            if self.down_since is None:
                self.down_since = self._clock()
                self.reason = describe(exc)
                self._delay = RETRY_FIRST_SECONDS
                self._log.warning(
                    "%s at %s is unreachable (%s). %s Retrying in %.0f s, then less "
                    "and less often (every %.0f s at most); nothing more is logged "
                    "until it is back.",
                    self.name,
                    self.address,
                    self.reason,
                    self.meanwhile,
                    self._delay,
                    RETRY_AT_MOST_SECONDS,
                )
            else:
                self._delay = min(self._delay * 2, RETRY_AT_MOST_SECONDS)
                self._log.debug(
                    "%s at %s still unreachable; retrying in %.0f s",
                    self.name,
                    self.address,
                    self._delay,
                    exc_info=exc,
                )
            return self._delay

    def succeeded(self) -> None:
        """An attempt succeeded: if it was down, say it is back and for how long it was not."""
        with self._lock:
            if self.down_since is None:
                return
            lasted = self._clock() - self.down_since
            self.down_since = None
            self.reason = ""
            self._log.info(
                "%s at %s is back after %.0f s; the scheduler works as usual again.",
                self.name,
                self.address,
                lasted,
            )
