"""Lock behaviour, run against both backends (database and Redis)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.utils import timezone

from scheduler_app.exceptions import TaskLocked
from scheduler_app.locks import (
    TASK_LOCK_BUSY_MESSAGE,
    DatabaseLockBackend,
    LockBackend,
    RedisLockBackend,
    get_lock_backend,
    lock_key,
    task_lock_context,
    task_lock_key,
)
from scheduler_app.models import SchedulerLock
from tests.helpers import wait_until

KEY = "task:1"


def _backend_for(request: pytest.FixtureRequest) -> LockBackend:
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    backend = get_lock_backend()
    assert backend.name == request.param
    return backend


# The database params carry django_db marks (not getfixturevalue("db")) so that
# pytest-django sees at collection time that the test database must be created.
@pytest.fixture(params=[pytest.param("database", marks=pytest.mark.django_db), "redis"])
def backend(request: pytest.FixtureRequest) -> LockBackend:
    """The backend get_lock_backend() picks for each configuration."""
    return _backend_for(request)


@pytest.fixture(
    params=[
        pytest.param("database", marks=pytest.mark.django_db(transaction=True)),
        "redis",
    ]
)
def threaded_backend(request: pytest.FixtureRequest) -> LockBackend:
    """Like `backend`, with real commits so other threads' connections see rows."""
    return _backend_for(request)


def expire(backend: LockBackend, key: str) -> None:
    """Make the lock on `key` expire now, without waiting out its TTL."""
    if isinstance(backend, DatabaseLockBackend):
        past = timezone.now() - dt.timedelta(seconds=1)
        assert SchedulerLock.objects.filter(key=key).update(expires_at=past) == 1
    else:
        assert isinstance(backend, RedisLockBackend)
        assert backend.client.pexpire(backend.redis_key(key), 1)
        wait_until(lambda: not backend.client.exists(backend.redis_key(key)))
    assert backend.get(key) is None


def race(count: int, attempt: Callable[[], str | None]) -> list[str | None]:
    """Run `attempt` in `count` threads released together; return their results."""
    barrier = threading.Barrier(count)
    results: list[str | None] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            result = attempt()
            with guard:
                results.append(result)
        except BaseException as exc:  # reported by the assertion below
            with guard:
                errors.append(exc)
        finally:
            # Each thread has its own connection; a leaked one would block the
            # PostgreSQL test database's teardown.
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert len(results) == count
    return results


# Acquire and release


def test_second_acquire_is_refused_while_held(backend: LockBackend) -> None:
    token = backend.acquire(KEY, owner="a", ttl_seconds=30)

    assert token
    assert backend.acquire(KEY, owner="b", ttl_seconds=30) is None
    assert backend.get(KEY).token == token


def test_each_acquire_gets_a_new_token(backend: LockBackend) -> None:
    first = backend.acquire(KEY, owner="a", ttl_seconds=30)
    assert backend.release(KEY, first)

    second = backend.acquire(KEY, owner="a", ttl_seconds=30)

    assert second and second != first


def test_release_by_owner_frees_the_key(backend: LockBackend) -> None:
    token = backend.acquire(KEY, owner="a", ttl_seconds=30)

    assert backend.release(KEY, token) is True

    assert backend.get(KEY) is None
    assert backend.acquire(KEY, owner="b", ttl_seconds=30)


def test_release_with_wrong_token_is_refused_and_lock_kept(
    backend: LockBackend,
) -> None:
    token = backend.acquire(KEY, owner="a", ttl_seconds=30)

    assert backend.release(KEY, "not-the-token") is False

    assert backend.get(KEY).token == token
    assert backend.acquire(KEY, owner="b", ttl_seconds=30) is None


def test_release_of_a_free_key_returns_false(backend: LockBackend) -> None:
    assert backend.release("task:missing", "any") is False


def test_locks_on_different_keys_are_independent(backend: LockBackend) -> None:
    assert backend.acquire("task:1", owner="a", ttl_seconds=30)
    assert backend.acquire("task:2", owner="a", ttl_seconds=30)


def test_ttl_must_be_positive(backend: LockBackend) -> None:
    with pytest.raises(ValueError, match="TTL must be positive"):
        backend.acquire(KEY, owner="a", ttl_seconds=0)
    token = backend.acquire(KEY, owner="a", ttl_seconds=30)
    with pytest.raises(ValueError, match="TTL must be positive"):
        backend.extend(KEY, token, -1)


# Extend


def test_extend_by_owner_resets_the_ttl(backend: LockBackend) -> None:
    token = backend.acquire(KEY, owner="a", ttl_seconds=5)

    assert backend.extend(KEY, token, 300) is True
    assert 250 < backend.get(KEY).ttl_seconds <= 300

    # A reset, not an addition: a shorter TTL shortens the lock.
    assert backend.extend(KEY, token, 2) is True
    assert 0 < backend.get(KEY).ttl_seconds <= 2


def test_extend_with_wrong_token_fails_and_keeps_the_ttl(backend: LockBackend) -> None:
    backend.acquire(KEY, owner="a", ttl_seconds=5)

    assert backend.extend(KEY, "not-the-token", 300) is False

    assert backend.get(KEY).ttl_seconds <= 5


def test_extend_after_expiry_returns_false(backend: LockBackend) -> None:
    token = backend.acquire(KEY, owner="a", ttl_seconds=30)
    expire(backend, KEY)

    assert backend.extend(KEY, token, 30) is False
    assert backend.get(KEY) is None


# Expiry and takeover


def test_expired_lock_can_be_taken_by_another_owner(backend: LockBackend) -> None:
    old = backend.acquire(KEY, owner="a", ttl_seconds=30)
    expire(backend, KEY)

    new = backend.acquire(KEY, owner="b", ttl_seconds=30)

    assert new and new != old
    info = backend.get(KEY)
    assert (info.owner, info.token) == ("b", new)


def test_old_owner_cannot_extend_or_release_after_takeover(
    backend: LockBackend,
) -> None:
    old = backend.acquire(KEY, owner="a", ttl_seconds=30)
    expire(backend, KEY)
    new = backend.acquire(KEY, owner="b", ttl_seconds=30)

    assert backend.extend(KEY, old, 30) is False
    assert backend.release(KEY, old) is False

    assert backend.get(KEY).token == new


def test_sub_second_ttl_expires_by_itself(backend: LockBackend) -> None:
    backend.acquire(KEY, owner="a", ttl_seconds=0.2)

    token = wait_until(lambda: backend.acquire(KEY, owner="b", ttl_seconds=30), 5)

    assert backend.get(KEY).token == token


# get / list


def test_get_reports_owner_token_times_and_ttl(backend: LockBackend) -> None:
    before = timezone.now()
    token = backend.acquire(KEY, owner="sched-1/exec 12", ttl_seconds=60)
    after = timezone.now()

    info = backend.get(KEY)

    assert (info.key, info.token, info.owner) == (KEY, token, "sched-1/exec 12")
    assert info.acquired_at.utcoffset() == dt.timedelta(0)
    assert info.expires_at.utcoffset() == dt.timedelta(0)
    assert before - dt.timedelta(milliseconds=1) <= info.acquired_at <= after
    assert info.acquired_at < info.expires_at
    assert 50 < info.ttl_seconds <= 60


def test_ttl_seconds_is_never_negative(backend: LockBackend) -> None:
    backend.acquire(KEY, owner="a", ttl_seconds=30)
    info = backend.get(KEY)
    past = info.expires_at - dt.timedelta(seconds=60)

    assert dataclasses.replace(info, expires_at=past).ttl_seconds == 0.0


def test_get_returns_none_for_free_and_expired_keys(backend: LockBackend) -> None:
    assert backend.get(KEY) is None
    backend.acquire(KEY, owner="a", ttl_seconds=30)
    expire(backend, KEY)

    assert backend.get(KEY) is None


def test_list_reports_live_locks_sorted_by_key(backend: LockBackend) -> None:
    for key in ["task:2", "task:10", "task-slot:5:0", "leader", "task:gone"]:
        assert backend.acquire(key, owner=f"owner of {key}", ttl_seconds=30)
    expire(backend, "task:gone")

    locks = backend.list()

    keys = [info.key for info in locks]
    assert keys == ["leader", "task-slot:5:0", "task:10", "task:2"]
    assert [info.owner for info in locks] == [f"owner of {key}" for key in keys]
    assert all(0 < info.ttl_seconds <= 30 for info in locks)


def test_list_filters_by_prefix(backend: LockBackend) -> None:
    for key in ["task:1", "task:2", "task-slot:1:0", "leader"]:
        backend.acquire(key, owner="a", ttl_seconds=30)

    assert [info.key for info in backend.list("task:")] == ["task:1", "task:2"]
    assert [info.key for info in backend.list("task-slot:")] == ["task-slot:1:0"]
    assert backend.list("nothing:") == []


def test_list_prefix_is_literal_not_a_pattern(backend: LockBackend) -> None:
    for key in ["odd*[x]?_%\\:1", "odd-other", "oddity"]:
        backend.acquire(key, owner="a", ttl_seconds=30)

    assert [info.key for info in backend.list("odd*[x]?_%\\")] == ["odd*[x]?_%\\:1"]
    assert [info.key for info in backend.list("odd_")] == []


# force_release


def test_force_release_frees_whoever_holds_it(backend: LockBackend) -> None:
    token = backend.acquire(KEY, owner="a", ttl_seconds=30)

    assert backend.force_release(KEY) is True

    assert backend.get(KEY) is None
    assert backend.release(KEY, token) is False
    assert backend.acquire(KEY, owner="b", ttl_seconds=30)


def test_force_release_of_a_free_or_expired_key_returns_false(
    backend: LockBackend,
) -> None:
    assert backend.force_release(KEY) is False
    backend.acquire(KEY, owner="a", ttl_seconds=30)
    expire(backend, KEY)

    assert backend.force_release(KEY) is False


# Concurrency


def test_acquire_many_takes_free_and_expired_keys_and_refuses_held_ones(
    backend: LockBackend,
) -> None:
    held = backend.acquire("task:held", owner="someone", ttl_seconds=30)
    backend.acquire("task:expired", owner="gone", ttl_seconds=30)
    expire(backend, "task:expired")

    tokens = backend.acquire_many(
        {"task:free": "run 1", "task:expired": "run 2", "task:held": "run 3"},
        ttl_seconds=30,
    )

    assert tokens["task:held"] is None
    assert backend.get("task:held").token == held
    for key, owner in (("task:free", "run 1"), ("task:expired", "run 2")):
        info = backend.get(key)
        assert tokens[key] and info.token == tokens[key] and info.owner == owner
        assert 25 < info.ttl_seconds <= 30


def test_release_many_frees_only_what_the_tokens_hold(backend: LockBackend) -> None:
    tokens = backend.acquire_many({"task:a": "x", "task:b": "x"}, ttl_seconds=30)
    other = backend.acquire("task:c", owner="other", ttl_seconds=30)

    backend.release_many([("task:a", tokens["task:a"]), ("task:c", "not-its-token")])

    assert backend.get("task:a") is None
    assert backend.get("task:b").token == tokens["task:b"]
    assert backend.get("task:c").token == other


def test_racing_acquire_many_gives_each_key_to_one_caller(
    threaded_backend: LockBackend,
) -> None:
    keys = ["task:%d" % n for n in range(20)]
    results: list[dict[str, str | None]] = []
    barrier = threading.Barrier(4)

    def take() -> None:
        try:
            barrier.wait()
            results.append(
                threaded_backend.acquire_many(dict.fromkeys(keys, "me"), ttl_seconds=30)
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert len(results) == 4
    for key in keys:
        assert sum(1 for result in results if result[key]) == 1


def test_racing_threads_get_exactly_one_token(threaded_backend: LockBackend) -> None:
    results = race(
        8, lambda: threaded_backend.acquire(KEY, owner="racer", ttl_seconds=30)
    )

    winners = [token for token in results if token]
    assert len(winners) == 1
    assert threaded_backend.get(KEY).token == winners[0]


def test_racing_threads_take_over_an_expired_lock_once(
    threaded_backend: LockBackend,
) -> None:
    threaded_backend.acquire(KEY, owner="dead", ttl_seconds=30)
    expire(threaded_backend, KEY)

    results = race(
        8, lambda: threaded_backend.acquire(KEY, owner="racer", ttl_seconds=30)
    )

    winners = [token for token in results if token]
    assert len(winners) == 1
    assert threaded_backend.get(KEY).token == winners[0]


# Database specifics


@pytest.mark.django_db
def test_database_refusal_does_not_break_the_callers_transaction() -> None:
    backend = DatabaseLockBackend()
    with transaction.atomic():
        assert backend.acquire(KEY, owner="a", ttl_seconds=30)
        assert backend.acquire(KEY, owner="b", ttl_seconds=30) is None
        # Still usable: the failed insert was rolled back to its savepoint only.
        assert SchedulerLock.objects.filter(key=KEY).count() == 1


@pytest.mark.django_db
def test_database_release_clears_the_owners_expired_row() -> None:
    backend = DatabaseLockBackend()
    token = backend.acquire(KEY, owner="a", ttl_seconds=30)
    expire(backend, KEY)

    assert backend.release(KEY, token) is False

    assert not SchedulerLock.objects.filter(key=KEY).exists()


@pytest.mark.django_db
def test_database_rejects_a_key_longer_than_the_column() -> None:
    with pytest.raises(ValueError, match="over 255 characters"):
        DatabaseLockBackend().acquire("x" * 256, owner="a", ttl_seconds=30)


# Redis specifics


def test_redis_keys_use_the_configured_prefix_read_at_call_time(
    redis_url: str, settings: pytest.FixtureRequest
) -> None:
    backend = get_lock_backend()
    assert isinstance(backend, RedisLockBackend)
    prefix = settings.SCHEDULER_REDIS_PREFIX
    backend.acquire(KEY, owner="a", ttl_seconds=30)

    assert backend.client.exists(f"{prefix}lock:{KEY}")

    settings.SCHEDULER_REDIS_PREFIX = f"{prefix}other:"
    try:
        assert backend.get(KEY) is None
        assert backend.acquire(KEY, owner="b", ttl_seconds=30)
        assert backend.client.exists(f"{prefix}other:lock:{KEY}")
    finally:
        backend.force_release(KEY)
        settings.SCHEDULER_REDIS_PREFIX = prefix


def test_redis_list_skips_foreign_values_under_the_prefix(redis_url: str) -> None:
    backend = get_lock_backend()
    assert isinstance(backend, RedisLockBackend)
    backend.client.set(backend.redis_key("task:junk"), "not json", px=30_000)
    backend.acquire(KEY, owner="a", ttl_seconds=30)

    assert [info.key for info in backend.list()] == [KEY]


# Backend selection and keys


def test_database_backend_without_redis(settings: pytest.FixtureRequest) -> None:
    settings.REDIS_URL = ""

    assert isinstance(get_lock_backend(), DatabaseLockBackend)


def test_redis_backend_is_cached_per_url(redis_url: str) -> None:
    backend = get_lock_backend()

    assert isinstance(backend, RedisLockBackend)
    assert get_lock_backend() is backend


def test_lock_key_builds_every_key(settings: pytest.FixtureRequest) -> None:
    settings.SCHEDULER_LEADER_LOCK_KEY = "custom:leader"

    assert lock_key("task", 5) == "task:5"
    assert task_lock_key(5) == "task:5"
    assert lock_key("task-slot", "5:2") == "task-slot:5:2"
    assert lock_key("leader", "") == "custom:leader"


@pytest.mark.parametrize("kind", ["", "a:b"])
def test_lock_key_rejects_ambiguous_kinds(kind: str) -> None:
    with pytest.raises(ValueError, match="Lock kind"):
        lock_key(kind, 1)


def test_leader_key_takes_no_ident() -> None:
    with pytest.raises(ValueError, match="single key"):
        lock_key("leader", 1)


# task_lock_context


def test_task_lock_context_holds_the_lock_inside_and_releases_after(
    backend: LockBackend,
) -> None:
    with task_lock_context(KEY, owner="exec 1", ttl_seconds=30) as token:
        info = backend.get(KEY)
        assert (info.token, info.owner) == (token, "exec 1")

    assert backend.get(KEY) is None


def test_task_lock_context_uses_the_task_lock_ttl_setting(
    backend: LockBackend, settings: pytest.FixtureRequest
) -> None:
    settings.SCHEDULER_TASK_LOCK_TTL = 7

    with task_lock_context(KEY, owner="exec 1", backend=backend):
        assert 5 < backend.get(KEY).ttl_seconds <= 7


def test_task_lock_context_raises_task_locked_naming_key_and_holder(
    backend: LockBackend,
) -> None:
    backend.acquire(KEY, owner="sched-1/exec 12", ttl_seconds=30)

    with (
        pytest.raises(TaskLocked) as excinfo,
        task_lock_context(KEY, owner="exec 2", backend=backend),
    ):
        pytest.fail("the body must not run while the lock is held")

    message = str(excinfo.value)
    assert KEY in message
    assert "sched-1/exec 12" in message
    assert "Wait" in message and "release" in message
    assert excinfo.value.code == "task_locked"
    assert backend.get(KEY).owner == "sched-1/exec 12"


def test_task_lock_context_says_try_again_when_the_holder_just_left(
    backend: LockBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The holder releases between the refused acquire and the look-up of its name.
    monkeypatch.setattr(backend, "acquire", lambda *args, **kwargs: None)

    with (
        pytest.raises(TaskLocked) as excinfo,
        task_lock_context(KEY, owner="exec 2", backend=backend),
    ):
        pytest.fail("the body must not run without the lock")

    assert str(excinfo.value) == TASK_LOCK_BUSY_MESSAGE % {"key": KEY}


def test_task_lock_context_releases_when_the_body_raises(backend: LockBackend) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        task_lock_context(KEY, owner="exec 1", ttl_seconds=30, backend=backend),
    ):
        raise RuntimeError("boom")

    assert backend.get(KEY) is None


def test_task_lock_context_leaves_a_lock_taken_over_meanwhile(
    backend: LockBackend, caplog: pytest.LogCaptureFixture
) -> None:
    with task_lock_context(KEY, owner="exec 1", ttl_seconds=30, backend=backend):
        expire(backend, KEY)
        new = backend.acquire(KEY, owner="exec 2", ttl_seconds=30)

    assert backend.get(KEY).token == new
    assert "expired or changed hands" in caplog.text
