"""Querysets compiled once and run again with a fresh time: the scheduler's polls.

Without Redis, the scheduler asks the database four times a second whether tasks
changed and which runs wait to start. Django builds and compiles a queryset on
every evaluation (about a millisecond of Python for `startable()`); here the SQL is
compiled once and only the time parameter changes from call to call, so the
definition stays the queryset's and a poll costs little more than its round trip.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.db import connections, models, router
from django.db.models import QuerySet

#: Stands for the time while compiling; found again among the compiled parameters.
_PLACEHOLDER = dt.datetime(1970, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


class PreparedQuery:
    """`build(now, limit)`: a `values_list(<one field>, flat=True)` queryset of `model`.

    Compiled once per database and limit; calling it returns the list of values.
    Only for values that need no conversion from the database (ids, integers,
    text), and querysets whose only changing parameter is `now`.
    """

    def __init__(
        self,
        model: type[models.Model],
        build: Callable[[dt.datetime, int | None], QuerySet[Any, Any]],
    ) -> None:
        self._model = model
        self._build = build
        self._compiled: dict[
            tuple[str, int | None], tuple[str, tuple[Any, ...], list[int]]
        ] = {}

    def __call__(
        self, now: dt.datetime | None = None, *, limit: int | None = None
    ) -> list[Any]:
        alias = router.db_for_read(self._model)
        connection = connections[alias]
        compiled = self._compiled.get((alias, limit))
        if compiled is None:
            compiled = self._compiled[(alias, limit)] = self._compile(connection, limit)
        sql, constant, time_at = compiled
        params = list(constant)
        if time_at:
            if now is None:
                raise TypeError("this query needs `now`")
            adapted = connection.ops.adapt_datetimefield_value(now)
            for index in time_at:
                params[index] = adapted
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [row[0] for row in cursor.fetchall()]

    def _compile(
        self, connection: Any, limit: int | None
    ) -> tuple[str, tuple[Any, ...], list[int]]:
        queryset = self._build(_PLACEHOLDER, limit)
        sql, params = queryset.query.get_compiler(connection=connection).as_sql()
        placeholder = connection.ops.adapt_datetimefield_value(_PLACEHOLDER)
        time_at = [index for index, value in enumerate(params) if value == placeholder]
        return sql, tuple(params), time_at
