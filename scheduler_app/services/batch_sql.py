"""SQL for batches: the rows of a batch as a table, the same statement for any size.

The scheduler writes hundreds of rows a second; one statement per batch, with a
short text the driver parses once, is what keeps that cheap on both SQLite and
PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

#: Held by this process's writers of task rows in bulk (the engine's next_run_at,
#: the execution path's counters) around their transactions, so the two never
#: lock the same rows in different orders: no deadlock between them on PostgreSQL.
task_rows_lock = threading.Lock()


def rows_table(
    connection: Any, columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """`WITH v(<columns>) AS (...) `: literal rows as a table, and its parameters.

    PostgreSQL gets one array parameter per column (`unnest`), so the statement is
    short and the same for any number of rows (psycopg parses a long query again
    on every call: that was a quarter of the scheduler's time at 1000 fires/s);
    SQLite gets the rows as VALUES.
    """
    quote = connection.ops.quote_name
    names = ", ".join(quote(name) for name, _field in columns)
    if connection.vendor == "postgresql":
        source = "SELECT * FROM unnest(%s)" % ", ".join(
            "%%s::%s[]" % field.db_type(connection) for _name, field in columns
        )
        params = [list(values) for values in zip(*rows)]
    else:
        row_sql = "(%s)" % ", ".join(["%s"] * len(columns))
        source = "VALUES " + ", ".join([row_sql] * len(rows))
        params = [value for row in rows for value in row]
    return "WITH v (%s) AS (%s) " % (names, source), params
