"""The timeline's one read of the history: runs counted by task and time slot, by status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from django.db import NotSupportedError, connections
from django.db.models import Count, DateTimeField, Func, IntegerField, Max, Q
from django.db.models.functions import Coalesce

from ..choices import ExecutionStatus
from ..models import TaskExecution

#: A fire is recorded (staged) this long before its time at most: a run whose
#: fire time lies in the grid may have been created that much before it.
STAGED_AHEAD = dt.timedelta(hours=1)


#: The statuses runs_by_slot counts, in the order of its counts.
SLOT_STATUSES = tuple(ExecutionStatus.values)


class SlotOf(Func):
    """The slot of a grid (`start`, `step` seconds) a datetime expression falls in.

    For times at or after `start` (the caller filters): integer division of the
    whole seconds since `start`. PostgreSQL and SQLite, the databases the
    project runs on.
    """

    output_field = IntegerField()

    def __init__(self, expression: Any, *, start: dt.datetime, step: int) -> None:
        super().__init__(expression)
        self.start_ts = int(start.timestamp())
        self.step = int(step)

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra: Any) -> Any:
        raise NotSupportedError(
            "The timeline counts runs by time slot on PostgreSQL and SQLite only, "
            "not on %s." % connection.vendor
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            # date_part() is double precision; EXTRACT() numeric, three times slower.
            "FLOOR((date_part('epoch', %s) - %%s) / %%s)::integer" % sql,
            (*params, self.start_ts, self.step),
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        # The whole seconds only: strftime() rounds a fraction to milliseconds,
        # which puts 00:14:59.9999 in the slot of 00:15.
        return (
            "((CAST(strftime('%%%%s', substr(%s, 1, 19)) AS INTEGER) - %%s) / %%s)"
            % sql,
            (*params, self.start_ts, self.step),
        )


def runs_by_slot(
    *,
    task_ids: Collection[int],
    start: dt.datetime,
    end: dt.datetime,
    step: int,
) -> list[tuple[int, int, int, int, tuple[int, ...]]]:
    """(task id, slot, latest run id, runs of a fire, runs of each of
    SLOT_STATUSES) for each slot of `step` seconds from `start` that holds runs
    of `task_ids`, by fire time (a manual run's creation) in [start, end). Runs
    of a fire are those with a fire time: its own and its retries, not a run
    now. One statement, one row a slot that has runs; its cost follows the runs
    in the range."""
    if not task_ids:
        return []
    moment = Coalesce("scheduled_for", "created_at", output_field=DateTimeField())
    statuses = SLOT_STATUSES
    rows = (
        TaskExecution.objects.filter(
            task_id__in=list(task_ids),
            created_at__gte=start - STAGED_AHEAD,
            created_at__lt=end,
        )
        .annotate(moment=moment)
        .filter(moment__gte=start, moment__lt=end)
        .annotate(slot=SlotOf(moment, start=start, step=step))
        .order_by()
        .values_list("task_id", "slot")
        .annotate(
            latest=Max("id"),
            fired=Count("scheduled_for"),
            **{
                "runs_%s" % status: Count("id", filter=Q(status=status))
                for status in statuses
            },
        )
    )
    # Through a plain cursor: 100,000 rows of integers need none of the ORM's
    # per-row converters (a third of the time).
    sql, params = rows.query.sql_with_params()
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    return [(row[0], row[1], row[2], row[3], tuple(row[4:])) for row in fetched]
