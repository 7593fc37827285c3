"""django-apscheduler's job table, read once by the import of its jobs as tasks.

The table is not ours (no model): it is read with hand-written SQL, only if it is
there.
"""

from __future__ import annotations

from django.db import connection

#: django-apscheduler's DjangoJobStore table: (id, next_run_time, job_state pickle).
DJANGO_APSCHEDULER_TABLE = "django_apscheduler_djangojob"

#: Every job's id and pickled state, by id. No parameters. The same text on SQLite
#: and PostgreSQL.
JOB_STATES = "SELECT id, job_state FROM {jobs} ORDER BY id"


def jobs_table_exists() -> bool:
    """Whether this database has django-apscheduler's job table."""
    return DJANGO_APSCHEDULER_TABLE in connection.introspection.table_names()


def job_states() -> list[tuple[str, bytes | memoryview]]:
    """(job id, pickled job state) for every job in the table, by id.

    The state as the driver gives it (bytes, or a memoryview): `bytes()` it.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            JOB_STATES.format(jobs=connection.ops.quote_name(DJANGO_APSCHEDULER_TABLE))
        )
        return cursor.fetchall()
