"""ACQUIRE_MANY and RELEASE: the database lock backend's batch statements."""

from __future__ import annotations

import datetime as dt

import pytest
from pytest_django import DjangoAssertNumQueries

from scheduler_app.db.locks import acquire_many, release_many
from scheduler_app.models import SchedulerLock

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def stored() -> dict[str, tuple[str, str, dt.datetime, dt.datetime]]:
    return {
        lock.key: (lock.token, lock.owner, lock.acquired_at, lock.expires_at)
        for lock in SchedulerLock.objects.all()
    }


def lock(key: str, *, token: str, expires_at: dt.datetime) -> None:
    SchedulerLock.objects.create(
        key=key,
        token=token,
        owner="old",
        acquired_at=T0 - dt.timedelta(minutes=1),
        expires_at=expires_at,
    )


def test_free_and_expired_keys_are_taken_and_live_ones_left_alone(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    lock("task:expired", token="t-expired", expires_at=T0)  # expired at T0 exactly
    lock("task:live", token="t-live", expires_at=T0 + dt.timedelta(microseconds=1))
    expires = T0 + dt.timedelta(seconds=30)

    with django_assert_num_queries(1):
        taken = acquire_many(
            locks=[
                ("task:expired", "new-1", "me"),
                ("task:free", "new-2", "me"),
                ("task:live", "new-3", "me"),
            ],
            acquired_at=T0,
            expires_at=expires,
        )

    assert taken == {"task:expired", "task:free"}
    assert stored() == {
        "task:expired": ("new-1", "me", T0, expires),
        "task:free": ("new-2", "me", T0, expires),
        "task:live": (
            "t-live",
            "old",
            T0 - dt.timedelta(minutes=1),
            T0 + dt.timedelta(microseconds=1),
        ),
    }


def test_no_locks_send_no_statement(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    with django_assert_num_queries(0):
        assert acquire_many(locks=[], acquired_at=T0, expires_at=T0) == set()
        release_many(held=[])


def test_release_deletes_the_rows_the_tokens_hold_expired_or_not(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    lock("task:a", token="ta", expires_at=T0 + dt.timedelta(days=1))
    lock("task:b", token="tb", expires_at=T0 - dt.timedelta(days=1))
    lock("task:c", token="tc", expires_at=T0 + dt.timedelta(days=1))

    with django_assert_num_queries(1):  # one executemany
        release_many(
            held=iter([("task:a", "ta"), ("task:b", "tb"), ("task:c", "not-tc")])
        )

    assert list(stored()) == ["task:c"]
