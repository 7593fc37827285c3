"""The engine's next fire times, written for a batch of tasks in one UPDATE ... FROM."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any

from django.db import connections, router

from ..models import ScheduledTask
from .batch import row_datetime, rows_table
from .texts import text_for

#: The rows (`v`, see `rows_table`): (id, next_run_at) per task. Leaves updated_at
#: alone: the scheduler's own bookkeeping must not look like an edit to the change
#: detection. No parameters but the rows'. The same text on SQLite and PostgreSQL.
RECORD_NEXT_RUNS = (
    "UPDATE {tasks} SET next_run_at = v.next_run_at FROM v WHERE {tasks}.id = v.id"
)


def _names(connection: Any) -> dict[str, str]:
    return {"tasks": connection.ops.quote_name(ScheduledTask._meta.db_table)}


@functools.cache
def _columns() -> tuple[tuple[str, Any], ...]:
    meta = ScheduledTask._meta
    return (("id", meta.pk), ("next_run_at", meta.get_field("next_run_at")))


def record_next_runs(*, next_runs: Mapping[int, dt.datetime | None]) -> None:
    """Set each task's next_run_at (task id -> time, or None) in one statement.

    The tasks in id order, as every bulk writer of task rows takes them; the
    caller holds `task_rows_lock` and the transaction.
    """
    if not next_runs:
        return
    connection = connections[router.db_for_write(ScheduledTask)]
    sql = text_for(connection, RECORD_NEXT_RUNS, _names)
    adapt = row_datetime(connection)
    source, params = rows_table(
        connection,
        _columns(),
        [(pk, adapt(when)) for pk, when in sorted(next_runs.items())],
    )
    with connection.cursor() as cursor:
        cursor.execute(source + sql, params)
