"""SQL for batches: the rows of a batch as a table, the same statement for any size.

The scheduler writes hundreds of rows a second; one statement per batch, with a
short text the driver parses once, is what keeps that cheap on both SQLite and
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

#: Held by this process's writers of task rows in bulk (the engine's next_run_at,
#: the execution path's counters) around their transactions, so the two never
#: lock the same rows in different orders: no deadlock between them on PostgreSQL.
task_rows_lock = threading.Lock()


def rows_table(
    connection: Any, columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """`WITH v(<columns>) AS (...) `: literal rows as a table, and its parameters.

    PostgreSQL gets the whole batch as one JSON array of rows (`jsonb_array_elements`,
    each value cast to its column's type), so the statement is short and the same
    for any number of rows (psycopg parses a long query again on every call), and
    the parameter is one string: psycopg quoting array parameters element by
    element in Python was a quarter of the scheduler's time at 1000 fires/s.
    Datetimes go in as `row_datetime` makes them.
    SQLite gets the rows as VALUES.
    """
    if connection.vendor == "postgresql":
        source = _json_rows_sql(connection, tuple(columns))
        params: list[Any] = [json.dumps(rows, default=_json_literal, allow_nan=False)]
    else:
        row_sql = "(%s)" % ", ".join(["%s"] * len(columns))
        source = _with(
            connection, columns, "VALUES " + ", ".join([row_sql] * len(rows))
        )
        params = [value for row in rows for value in row]
    return source, params


def _with(connection: Any, columns: Sequence[tuple[str, Any]], source: str) -> str:
    names = ", ".join(connection.ops.quote_name(name) for name, _field in columns)
    return "WITH v (%s) AS (%s) " % (names, source)


#: SELECT texts of PostgreSQL's JSON rows, per (alias, columns): the callers use the
#: same few column lists batch after batch, so each text is built once.
_json_rows_sql_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = {}


def _json_rows_sql(connection: Any, columns: tuple[tuple[str, Any], ...]) -> str:
    key = (connection.alias, columns)
    sql = _json_rows_sql_cache.get(key)
    if sql is None:
        sql = _json_rows_sql_cache[key] = _with(
            connection,
            columns,
            "SELECT %s FROM jsonb_array_elements(%%s::jsonb) AS r"
            % ", ".join(
                "(r->>%d)::%s" % (index, field.db_type(connection))
                for index, (_name, field) in enumerate(columns)
            ),
        )
    return sql


def row_datetime(connection: Any) -> Callable[[dt.datetime | None], Any]:
    """An aware datetime (or None) as a `rows_table` value.

    ISO text for PostgreSQL's JSON rows, which have no datetime type (so no
    `default` hook call per value). SQLite stores the naive text in the
    connection's zone (UTC), as its adapt_datetimefield_value does, without that
    function's settings lookups (9 µs a value, the most of adding up counters).
    """
    if connection.vendor == "postgresql":
        return lambda value: None if value is None else value.isoformat()
    if connection.vendor == "sqlite" and connection.timezone is not None:
        zone = connection.timezone
        return lambda value: (
            None if value is None else str(value.astimezone(zone).replace(tzinfo=None))
        )
    return connection.ops.adapt_datetimefield_value


def typed_param(connection: Any, field: Any) -> str:
    """A placeholder for one value of `field` in a SELECT list, typed on PostgreSQL.

    (An untyped parameter there is text to PostgreSQL, which a jsonb or timestamp
    column does not take.)
    """
    if connection.vendor == "postgresql":
        return "%%s::%s" % field.db_type(connection)
    return "%s"


def _json_literal(value: Any) -> Any:
    """A value json.dumps cannot write, as the text PostgreSQL casts to its column's type.

    A JSON(B) parameter becomes its JSON text (cast back with `::jsonb`, so JSON
    null stays distinct from SQL NULL); dates and times their ISO form.
    """
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    from psycopg.types.json import Json, Jsonb  # only PostgreSQL gets here

    if isinstance(value, (Json, Jsonb)):
        return (value.dumps or json.dumps)(value.obj)
    return str(value)  # Decimal, UUID: their text is their SQL literal
