"""Each task's latest executions, for every task in one statement (the metrics' durations)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connections, router

from ..models import ScheduledTask, TaskExecution
from .texts import text_for

#: (task id, status, duration ms) of each task's latest `limit` executions:
#: per task, the first rows of exec_task_created_idx. PostgreSQL (and any
#: database with LATERAL); parameter: the limit.
LATEST_RUNS = (
    "SELECT t.id, r.status, r.duration_ms FROM {tasks} t CROSS JOIN LATERAL ("
    "SELECT u.status, u.duration_ms FROM {executions} u WHERE u.task_id = t.id"
    " ORDER BY u.created_at DESC LIMIT %s) r"
)
#: The same on SQLite, which has no LATERAL: the executions from the task's
#: `limit`-th latest on (ties at that time included), the cutoff one seek on
#: exec_task_created_idx (OFFSET limit - 1; a task with fewer runs takes them
#: all), the rows a range of the same index. CROSS JOIN keeps SQLite's planner
#: from scanning the whole history and looking up the cutoff per execution (its
#: choice for an inner join, lacking statistics). Parameters: the offset, then
#: the earliest time.
LATEST_RUNS_SQLITE = (
    "SELECT e.task_id, e.status, e.duration_ms"
    " FROM {tasks} t CROSS JOIN {executions} e"
    " WHERE e.task_id = t.id AND e.created_at >= COALESCE(("
    "SELECT u.created_at FROM {executions} u WHERE u.task_id = t.id"
    " ORDER BY u.created_at DESC LIMIT 1 OFFSET %s), %s)"
)

_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _names(connection: Any) -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "tasks": quote(ScheduledTask._meta.db_table),
        "executions": quote(TaskExecution._meta.db_table),
    }


def latest_runs(*, limit: int) -> list[tuple[int, str, int | None]]:
    """(task id, status, duration ms) of each task's latest `limit` executions.

    On SQLite, more than `limit` for a task whose `limit`-th latest shares its
    creation time with older ones. None for a task without executions. One
    statement, whose cost follows the number of tasks, not the history's size.
    """
    connection = connections[router.db_for_read(TaskExecution)]
    if connection.vendor == "sqlite":
        sql = text_for(connection, LATEST_RUNS_SQLITE, _names)
        params: list[Any] = [
            limit - 1,
            connection.ops.adapt_datetimefield_value(_EARLIEST),
        ]
    else:
        sql = text_for(connection, LATEST_RUNS, _names)
        params = [limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(row[0], row[1], row[2]) for row in cursor.fetchall()]
