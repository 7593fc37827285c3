"""ADD_RUN_COUNTS: a batch's runs added to their tasks' counters in one statement."""

from __future__ import annotations

import datetime as dt

import pytest
from pytest_django import DjangoAssertNumQueries

from scheduler_app.db.counters import add_run_counts
from scheduler_app.models import ScheduledTask
from tests.factories import make_task

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def counters(task: ScheduledTask) -> tuple[object, ...]:
    task.refresh_from_db()
    return (
        task.run_count,
        task.success_count,
        task.fail_count,
        task.last_run_at,
        task.duration_count,
        task.duration_total_ms,
    )


def test_counts_and_durations_are_added_and_last_run_at_stays_the_latest() -> None:
    never = make_task()
    later_stored = make_task(
        run_count=10,
        success_count=7,
        fail_count=3,
        last_run_at=T0,
        duration_count=10,
        duration_total_ms=5000,
    )
    earlier_stored = make_task(
        run_count=1, success_count=1, last_run_at=T0 - dt.timedelta(days=1)
    )
    untouched = make_task(run_count=5, last_run_at=T0)

    add_run_counts(
        counts={
            earlier_stored.pk: (3, 1, 2, T0, 3, 300, 0, 0, 0, 0, 0),
            never.pk: (
                2,
                2,
                0,
                T0 + dt.timedelta(microseconds=1),
                1,
                2**40,
                0,
                0,
                0,
                0,
                0,
            ),
            later_stored.pk: (1, 0, 1, T0 - dt.timedelta(hours=1), 0, 0, 0, 0, 0, 0, 0),
        }
    )

    assert counters(never) == (2, 2, 0, T0 + dt.timedelta(microseconds=1), 1, 2**40)
    assert counters(later_stored) == (11, 7, 4, T0, 10, 5000)
    assert counters(earlier_stored) == (4, 2, 2, T0, 3, 300)
    assert counters(untouched) == (5, 0, 0, T0, 0, 0)


def streaks(task: ScheduledTask) -> tuple[int, int]:
    task.refresh_from_db()
    return (task.fail_streak, task.success_streak)


@pytest.mark.parametrize(
    ("stored", "tail", "expected"),
    [
        # (fail, success) stored; (tail, tail_failed, mixed); (fail, success) after
        pytest.param((2, 0), (3, 1, 0), (5, 0), id="failures-extend-failures"),
        pytest.param((0, 4), (2, 1, 0), (2, 0), id="failures-end-successes"),
        pytest.param((3, 0), (1, 0, 1), (0, 1), id="mixed-batch-ends-with-success"),
        pytest.param((0, 2), (2, 1, 1), (2, 0), id="mixed-batch-ends-with-failures"),
        pytest.param((0, 2), (1, 0, 0), (0, 3), id="success-extends-successes"),
        pytest.param((2, 0), (0, 0, 0), (2, 0), id="only-cancelled-runs-keep-both"),
    ],
)
def test_streaks_count_the_outcomes_at_the_end_of_the_history(
    stored: tuple[int, int], tail: tuple[int, int, int], expected: tuple[int, int]
) -> None:
    task = make_task(fail_streak=stored[0], success_streak=stored[1])

    add_run_counts(counts={task.pk: (1, 0, 0, T0, 0, 0, *tail, 0, 0)})

    assert streaks(task) == expected


def test_skipped_and_cancelled_runs_add_to_their_counts_and_a_skip_to_nothing_else() -> (
    None
):
    task = make_task(last_run_at=T0, run_count=5)

    add_run_counts(
        counts={task.pk: (0, 0, 0, None, 0, 0, 0, 0, 0, 3, 0)}  # skips alone
    )
    add_run_counts(counts={task.pk: (1, 0, 0, T0, 0, 0, 0, 0, 0, 0, 1)})

    task.refresh_from_db()
    assert (task.skipped_count, task.cancelled_count) == (3, 1)
    assert (task.run_count, task.last_run_at) == (6, T0)  # a skip is no run


def test_no_counts_send_no_statement(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    with django_assert_num_queries(0):
        add_run_counts(counts={})
