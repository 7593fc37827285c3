"""JOB_STATES: django-apscheduler's job rows, read when its table is there."""

from __future__ import annotations

import pytest
from django.db import connection
from pytest_django import DjangoAssertNumQueries

from scheduler_app.db.apscheduler_jobs import job_states, jobs_table_exists

pytestmark = pytest.mark.django_db


def test_the_jobs_are_read_by_id_with_their_states_as_stored(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    assert not jobs_table_exists()
    blob = "bytea" if connection.vendor == "postgresql" else "blob"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE django_apscheduler_djangojob "
            "(id varchar(255) PRIMARY KEY, next_run_time timestamp NULL, job_state %s)"
            % blob
        )
        for job_id, state in [("b", b"\x80\x04two"), ("a", b"\x00one\xff")]:
            cursor.execute(
                "INSERT INTO django_apscheduler_djangojob "
                "(id, next_run_time, job_state) VALUES (%s, NULL, %s)",
                [job_id, state],
            )
    assert jobs_table_exists()

    with django_assert_num_queries(1):
        rows = job_states()

    assert [(job_id, bytes(state)) for job_id, state in rows] == [
        ("a", b"\x00one\xff"),
        ("b", b"\x80\x04two"),
    ]
