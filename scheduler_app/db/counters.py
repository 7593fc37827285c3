"""The tasks' run counters: added up for a batch of runs in one UPDATE ... FROM."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connections, router

from ..models import ScheduledTask
from .batch import row_datetime, rows_table
from .texts import text_for

#: The rows (`v`, see `rows_table`): (id, ran, ok, failed, latest, timed, took,
#: tail, tail_failed, mixed, skipped, cancelled) per task. last_run_at stays the
#: latest of the stored one and the batch's (a batch of skipped runs alone has
#: no latest: NULL keeps it); the duration totals (the average's terms) are two more
#: additions. The streaks: the batch ends with `tail` runs of one outcome (failed
#: when `tail_failed`); they add to the stored streak of that outcome unless the
#: batch also had the other one (`mixed`), and the other streak is 0; a batch
#: with neither outcome (cancelled runs) leaves both. No parameters but the rows'.
#: The same text on SQLite and PostgreSQL.
ADD_RUN_COUNTS = (
    "UPDATE {tasks}"
    " SET run_count = {tasks}.run_count + v.ran,"
    " success_count = {tasks}.success_count + v.ok,"
    " fail_count = {tasks}.fail_count + v.failed,"
    " skipped_count = {tasks}.skipped_count + v.skipped,"
    " cancelled_count = {tasks}.cancelled_count + v.cancelled,"
    " duration_count = {tasks}.duration_count + v.timed,"
    " duration_total_ms = {tasks}.duration_total_ms + v.took,"
    " fail_streak = CASE WHEN v.tail = 0 THEN {tasks}.fail_streak"
    " WHEN v.tail_failed = 0 THEN 0"
    " WHEN v.mixed = 1 THEN v.tail ELSE {tasks}.fail_streak + v.tail END,"
    " success_streak = CASE WHEN v.tail = 0 THEN {tasks}.success_streak"
    " WHEN v.tail_failed = 1 THEN 0"
    " WHEN v.mixed = 1 THEN v.tail ELSE {tasks}.success_streak + v.tail END,"
    " last_run_at = CASE WHEN v.latest IS NULL OR ({tasks}.last_run_at IS NOT NULL"
    " AND {tasks}.last_run_at > v.latest) THEN {tasks}.last_run_at ELSE v.latest END"
    " FROM v WHERE {tasks}.id = v.id"
)


def _names(connection: Any) -> dict[str, str]:
    return {"tasks": connection.ops.quote_name(ScheduledTask._meta.db_table)}


@functools.cache
def _columns() -> tuple[tuple[str, Any], ...]:
    meta = ScheduledTask._meta
    count = meta.get_field("run_count")
    return (
        ("id", meta.pk),
        ("ran", count),
        ("ok", count),
        ("failed", count),
        ("latest", meta.get_field("last_run_at")),
        ("timed", count),
        ("took", meta.get_field("duration_total_ms")),
        ("tail", count),
        ("tail_failed", count),
        ("mixed", count),
        ("skipped", count),
        ("cancelled", count),
    )


def add_run_counts(*, counts: Mapping[int, Sequence[Any]]) -> None:
    """Add runs to their tasks' counters.

    task id -> (ran, succeeded, failed, latest, timed, took, tail, tail_failed,
    mixed, skipped, cancelled): `latest` (a datetime, or None for skipped runs
    alone) is the latest start among them, `timed` how many have a duration that
    counts towards the average and `took` the sum of those durations (ms);
    tail, tail_failed and mixed are the streaks' terms (ADD_RUN_COUNTS);
    skipped and cancelled add to those counts. One statement for every task of
    a batch, not a query per task (which cost more than the runs themselves);
    the tasks in id order, as every bulk writer of task rows takes them.
    """
    if not counts:
        return
    connection = connections[router.db_for_write(ScheduledTask)]
    sql = text_for(connection, ADD_RUN_COUNTS, _names)
    adapt = row_datetime(connection)
    source, params = rows_table(
        connection,
        _columns(),
        [
            (task_id, *values[:3], adapt(values[3]), *values[4:])
            for task_id, values in sorted(counts.items())
        ],
    )
    with connection.cursor() as cursor:
        cursor.execute(source + sql, params)
