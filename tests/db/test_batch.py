"""Values written through the batch SQL come back exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from scheduler_app.db.batch import row_datetime, rows_table
from scheduler_app.models import TaskExecution
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db


def test_datetimes_of_a_batch_are_stored_as_the_instants_they_are() -> None:
    task = make_task(name="t", task_type="manual", interval_seconds=None)
    when = [
        dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 29, 3, 30, 0, 5, tzinfo=ZoneInfo("Europe/Paris")),
        dt.datetime(
            2026, 11, 1, 1, 30, 59, 999999, tzinfo=ZoneInfo("America/New_York")
        ),
        None,
    ]
    rows = [
        make_execution(task, run_after=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        for _ in when
    ]
    meta = TaskExecution._meta
    adapt = row_datetime(connection)
    source, params = rows_table(
        connection,
        [("id", meta.pk), ("at", meta.get_field("run_after"))],
        [(row.pk, adapt(value)) for row, value in zip(rows, when, strict=False)],
    )
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            source
            + f"UPDATE {table} SET run_after = v.at FROM v WHERE {table}.id = v.id",
            params,
        )

    stored = dict(TaskExecution.objects.values_list("pk", "run_after"))
    # Instants compared (an ambiguous local time never equals another zone's).
    instant = lambda value: value and value.timestamp()  # noqa: E731
    assert [instant(stored[row.pk]) for row in rows] == [
        instant(value) for value in when
    ]
