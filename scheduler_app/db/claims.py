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
#: was due: started_at is then its run_after. A run made pending again (a stopping
#: scheduler gives back what it had not started) takes its place afresh.
CLAIM_PENDING = (
    "UPDATE {executions}"
    " SET status = %s,"
    " instance_id = %s,"
    " started_at = CASE WHEN run_after > %s THEN run_after ELSE %s END,"
    " run_slot = NULL"
    " WHERE id IN ({ids}) AND status = %s"
    " RETURNING id"
)

#: Run slot N for running executions of distinct tasks, each unless a running
#: execution of its task holds slot N: slot, *ids, running, running, slot.
#: Two transactions at once can both find the slot free; the unique constraint
#: exec_one_running_per_slot then refuses the second (IntegrityError).
TAKE_RUN_SLOT = (
    "UPDATE {executions}"
    " SET run_slot = %s"
    " WHERE id IN ({ids}) AND status = %s"
    " AND NOT EXISTS ("
    "SELECT 1 FROM {executions} holder"
    " WHERE holder.task_id = {executions}.task_id"
    " AND holder.status = %s AND holder.run_slot = %s)"
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


def take_run_slot(*, ids: Sequence[int], slot: int) -> set[int]:
    """Run slot `slot` for each of `ids` (running, of distinct tasks) whose task has
    no running execution in it; returns the ids that took it.

    Raises IntegrityError when a concurrent transaction took one of them first
    (the caller retries in a savepoint, then finds it taken).
    """
    connection = connections[router.db_for_write(TaskExecution)]
    sql = text_for(connection, TAKE_RUN_SLOT, _names).format(
        ids=", ".join(["%s"] * len(ids))
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [slot, *ids, Status.RUNNING, Status.RUNNING, slot])
        return {row[0] for row in cursor.fetchall()}
