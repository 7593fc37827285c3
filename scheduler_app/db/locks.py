"""The database lock backend's batch statements: take and free the locks of a batch.

`locks.DatabaseLockBackend` does the rest with the ORM (one lock at a time); these
two are the execution path's, one statement for every lock of a batch of runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections, router

from ..models import SchedulerLock
from .texts import text_for

#: Inserts a row per free key, takes over the expired rows of the others and leaves
#: live ones alone, atomically per row; returns the keys taken. `{rows}` is one
#: "(%s, %s, %s, %s, %s)" per lock, so the parameters are positional: key, token,
#: owner, acquired_at, expires_at for each lock, then acquired_at (the time before
#: which a row has expired). The same text on SQLite (3.35+) and PostgreSQL.
ACQUIRE_MANY = (
    'INSERT INTO {locks} ("key", token, owner, acquired_at, expires_at)'
    " VALUES {rows}"
    ' ON CONFLICT ("key") DO UPDATE SET'
    " token = excluded.token,"
    " owner = excluded.owner,"
    " acquired_at = excluded.acquired_at,"
    " expires_at = excluded.expires_at"
    " WHERE {locks}.expires_at <= %s"
    ' RETURNING "key"'
)

#: Frees the lock on a key if the token holds it, expired or not; run once per
#: (key, token) pair in one executemany. The same text on SQLite and PostgreSQL.
RELEASE = 'DELETE FROM {locks} WHERE "key" = %s AND token = %s'

_ROW = "(%s, %s, %s, %s, %s)"


def _names(connection: Any) -> dict[str, str]:
    # {rows} stays a placeholder: its length is the batch's.
    return {
        "locks": connection.ops.quote_name(SchedulerLock._meta.db_table),
        "rows": "{rows}",
    }


def acquire_many(
    *,
    locks: Sequence[tuple[str, str, str]],
    acquired_at: dt.datetime,
    expires_at: dt.datetime,
) -> set[str]:
    """Take each (key, token, owner) of `locks` that is free or expired; the keys taken.

    In the order given (callers sort the keys, so that two batches never wait for
    each other's rows), in one statement, inside the caller's transaction if any.
    """
    if not locks:
        return set()
    connection = connections[router.db_for_write(SchedulerLock)]
    adapt = connection.ops.adapt_datetimefield_value
    acquired, expires = adapt(acquired_at), adapt(expires_at)
    params: list[Any] = []
    for key, token, owner in locks:
        params += [key, token, owner, acquired, expires]
    params.append(acquired)
    sql = text_for(connection, ACQUIRE_MANY, _names).format(
        rows=", ".join([_ROW] * len(locks))
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def release_many(*, held: Iterable[tuple[str, str]]) -> None:
    """Delete the rows that the (key, token) pairs of `held` hold, expired or not."""
    pairs = list(held)
    if not pairs:
        return
    connection = connections[router.db_for_write(SchedulerLock)]
    with connection.cursor() as cursor:
        cursor.executemany(text_for(connection, RELEASE, _names), pairs)
