"""The claim of pending executions: pending -> running, in one statement for a batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import connections, router

from ..models import TaskExecution
from .texts import text_for

Status = TaskExecution.Status

#: pending -> running for the ids of a batch, returning the ids this statement claimed.
#: The same text on SQLite and PostgreSQL. `{ids}` is one placeholder per id, so the
#: parameters are positional (the drivers take no mix of named and positional):
#: running, instance, now, now, *ids, pending.
#: A run claimed ahead of its time (a staged fire) never says it started before it
#: was due: started_at is then its run_after.
CLAIM_PENDING = (
    "UPDATE {executions}"
    " SET status = %s,"
    " instance_id = %s,"
    " started_at = CASE WHEN run_after > %s THEN run_after ELSE %s END"
    " WHERE id IN ({ids}) AND status = %s"
    " RETURNING id"
)


def _names(connection: Any) -> dict[str, str]:
    # {ids} stays a placeholder: its length is the batch's.
    return {
        "executions": connection.ops.quote_name(TaskExecution._meta.db_table),
        "ids": "{ids}",
    }


def claim_pending(*, ids: Sequence[int], instance: str, now: dt.datetime) -> set[int]:
    """pending -> running for `ids`, for `instance`; returns the ids this call claimed.

    `now` is the claim's time, written as started_at (the run stage writes the
    real start with the final state).
    """
    connection = connections[router.db_for_write(TaskExecution)]
    sql = text_for(connection, CLAIM_PENDING, _names).format(
        ids=", ".join(["%s"] * len(ids))
    )
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(sql, [Status.RUNNING, instance, at, at, *ids, Status.PENDING])
        return {row[0] for row in cursor.fetchall()}
