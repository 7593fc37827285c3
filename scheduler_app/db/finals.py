"""The final state of ended runs: one conditional UPDATE ... FROM the batch's rows."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, models, router
from django.utils import timezone

from ..models import TaskExecution
from .batch import row_datetime, rows_table
from .texts import text_for

Status = TaskExecution.Status

#: What the end of a run writes on its execution row.
FINAL_FIELDS = (
    "status",
    "started_at",
    "finished_at",
    "duration_ms",
    "result",
    "error_message",
    "error_traceback",
    "failure_kind",
    "log_output",
    "progress_done",
    "progress_total",
    "kwargs",
)

#: Runs per statement (12 parameters each, well under SQLite's limit).
FINALS_PER_STATEMENT = 400

#: The rows (`v`, see `rows_table`) are the id and the FINAL_FIELDS of each run;
#: only rows still running are written. One parameter after the rows': running.
#: The same text on SQLite and PostgreSQL.
WRITE_FINALS = (
    "UPDATE {executions} SET {assignments} FROM v"
    " WHERE {executions}.id = v.id AND {executions}.status = %s"
    " RETURNING {executions}.id"
)


def _names(connection: Any) -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "executions": quote(TaskExecution._meta.db_table),
        "assignments": ", ".join(
            "%s = v.%s" % (quote(f.column), quote(f.column)) for f in _fields()
        ),
    }


@functools.cache
def _fields() -> tuple[Any, ...]:
    meta = TaskExecution._meta
    return tuple(meta.get_field(name) for name in FINAL_FIELDS)


@functools.cache
def _columns() -> tuple[tuple[str, Any], ...]:
    meta = TaskExecution._meta
    return ((meta.pk.column, meta.pk), *((f.column, f) for f in _fields()))


def write_finals(*, executions: Sequence[TaskExecution]) -> set[int]:
    """Write the FINAL_FIELDS of `executions` still running; returns the ids written.

    One statement per FINALS_PER_STATEMENT rows, not one per run: on PostgreSQL a
    round trip each was what bounded a batch.
    """
    connection = connections[router.db_for_write(TaskExecution)]
    sql = text_for(connection, WRITE_FINALS, _names)
    columns = _columns()
    preps = [(f.attname, _db_prep(f, connection)) for f in _fields()]
    written: set[int] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(executions), FINALS_PER_STATEMENT):
            rows = [
                [
                    execution.pk,
                    *(prep(getattr(execution, name)) for name, prep in preps),
                ]
                for execution in executions[start : start + FINALS_PER_STATEMENT]
            ]
            source, params = rows_table(connection, columns, rows)
            cursor.execute(source + sql, [*params, Status.RUNNING])
            written.update(row[0] for row in cursor.fetchall())
    return written


def _db_prep(field: Any, connection: Any) -> Callable[[Any], Any]:
    """`field.get_db_prep_save`, short-cut for the values it would return unchanged.

    Field.get_db_prep_save for every value of every ended run was a third of
    recording them: text, integers, aware datetimes and JSON without a custom
    encoder (both as `rows_table` takes them) skip it.
    """
    slow = functools.partial(field.get_db_prep_save, connection=connection)
    if isinstance(field, models.DateTimeField):
        adapt = row_datetime(connection)
        return lambda value: (
            adapt(value) if value is None or timezone.is_aware(value) else slow(value)
        )
    if isinstance(field, models.JSONField) and field.encoder is None:
        # What Django's adapt_json_value sends, as text: SQL NULL stays None.
        return lambda value: value if value is None else json.dumps(value)
    if isinstance(field, (models.CharField, models.TextField)):
        kind: type = str
    elif isinstance(field, models.IntegerField):
        kind = int
    else:
        return slow
    return lambda value: value if value is None or type(value) is kind else slow(value)
