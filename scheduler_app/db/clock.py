"""The database server's clock, as this process reckons it.

Locks in the database (the database lock backend: task locks, and the leader
lease without Redis) are written by one machine and judged by others: each must
read one clock, the database server's, or an instance whose clock runs ahead
takes a healthy leader's lease at once. Asking the server in every lock statement
would cost a round trip more; instead each heartbeat measures the offset between
this machine's clock and the server's (`measure_offset`, one query), and
`database_now()` is this machine's clock corrected by it. Until the first
measure, the offset is 0: this machine's clock.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.db import connections, router
from django.utils import timezone

from ..models import SchedulerLock

#: The server's clock as seconds since the epoch, with at least milliseconds.
SERVER_EPOCH = {
    "postgresql": "SELECT EXTRACT(EPOCH FROM clock_timestamp())",
    "sqlite": "SELECT (julianday('now') - 2440587.5) * 86400.0",
    "mysql": "SELECT UNIX_TIMESTAMP(NOW(6))",
}

#: Seconds to add to this machine's clock to read the server's (last measure).
_offset = 0.0


def database_now() -> dt.datetime:
    """The database server's time now, as this process reckons it."""
    return timezone.now() + dt.timedelta(seconds=_offset)


def clock_offset() -> float:
    """The last measured offset: the server's clock minus this machine's, seconds."""
    return _offset


def measure_offset() -> float:
    """Measure the server's clock against this machine's; keep and return the offset.

    The server's reading is taken as simultaneous with the midpoint of the round
    trip, so the error is at most half of it. A database without a known clock
    query keeps the offset 0.
    """
    global _offset
    connection: Any = connections[router.db_for_write(SchedulerLock)]
    sql = SERVER_EPOCH.get(connection.vendor)
    if sql is None:
        return _offset
    with connection.cursor() as cursor:
        before = timezone.now().timestamp()
        sent = time.monotonic()
        cursor.execute(sql)
        server = float(cursor.fetchone()[0])
        midpoint = before + (time.monotonic() - sent) / 2
    _offset = server - midpoint
    return _offset
