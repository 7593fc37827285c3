"""Fires recorded as pending executions: INSERT ... ON CONFLICT DO NOTHING RETURNING."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from django.db import connections, router

from ..models import TaskExecution
from .batch import row_datetime, rows_table, typed_param
from .texts import text_for

#: Rows per statement (well under SQLite's 32766 parameters).
FIRES_PER_INSERT = 500

#: The fires' rows (`v`, see `rows_table`) are (task_id, scheduled_for, run_after);
#: every other column is the same for the batch, a parameter of the SELECT list
#: (after the rows'). A fire recorded already (the partial unique index
#: `exec_one_per_fire`) is left out. WHERE 1 = 1: SQLite's parser needs a WHERE
#: before an upsert's ON CONFLICT. The same text on SQLite and PostgreSQL.
INSERT_FIRES = (
    "INSERT INTO {executions} ({columns})"
    " SELECT {select_list} FROM v WHERE 1 = 1"
    " ON CONFLICT (task_id, scheduled_for) WHERE trigger_type = '{scheduled}'"
    " DO NOTHING"
    " RETURNING id, task_id, scheduled_for"
)

#: The columns that differ from fire to fire.
VARYING = ("task", "scheduled_for", "run_after")


@functools.cache
def _fields() -> tuple[list[Any], list[Any]]:
    """The columns written (all but the id), and those of them that vary."""
    meta = TaskExecution._meta
    return (
        [f for f in meta.concrete_fields if not f.primary_key],
        [meta.get_field(name) for name in VARYING],
    )


def _names(connection: Any) -> dict[str, str]:
    quote = connection.ops.quote_name
    fields, varying = _fields()
    return {
        "executions": quote(TaskExecution._meta.db_table),
        "columns": ", ".join(quote(f.column) for f in fields),
        "select_list": ", ".join(
            "v.%s" % quote(f.column) if f in varying else typed_param(connection, f)
            for f in fields
        ),
        "scheduled": TaskExecution.TriggerType.SCHEDULED,
    }


def insert_fires(*, rows: Sequence[TaskExecution]) -> None:
    """Insert scheduled fires; sets the pk of each row recorded (None: recorded already).

    The rows share every value but the VARYING ones with the first (the
    scheduler stages every fire through here, from one prototype row): those
    are sent once, not compiled value by value as bulk_create would.
    """
    connection = connections[router.db_for_write(TaskExecution)]
    sql = text_for(connection, INSERT_FIRES, _names)
    fields, varying = _fields()
    constants = [
        f.get_db_prep_save(getattr(rows[0], f.attname), connection)
        for f in fields
        if f not in varying
    ]
    columns = [(f.column, f) for f in varying]
    adapt = row_datetime(connection)
    by_key: dict[tuple[int, Any], TaskExecution] = {}
    for start in range(0, len(rows), FIRES_PER_INSERT):
        chunk = rows[start : start + FIRES_PER_INSERT]
        for row in chunk:
            by_key[(row.task_id, _instant(row.scheduled_for))] = row  # type: ignore[arg-type]
        table, params = rows_table(
            connection,
            columns,
            [
                (row.task_id, adapt(row.scheduled_for), adapt(row.run_after))
                for row in chunk
            ],
        )
        with connection.cursor() as cursor:
            cursor.execute(table + sql, [*params, *constants])
            for new_pk, row_task_id, row_scheduled_for in cursor.fetchall():
                recorded = by_key.get((row_task_id, _instant(row_scheduled_for)))
                if recorded is not None:
                    recorded.pk = new_pk
                    recorded._state.adding = False


def _instant(value: dt.datetime | str) -> int:
    """A fire time as UTC microseconds, however the database driver returned it."""
    if isinstance(value, str):  # SQLite without type detection
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:  # stored as UTC by Django (USE_TZ)
        value = value.replace(tzinfo=dt.UTC)
    return round(value.timestamp() * 1_000_000)
