"""Outages of the database or Redis: one line when they go, one when back, backoff."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
import redis
from django.db import OperationalError

from scheduler_app.engine.leader import Leadership
from scheduler_app.locks import get_lock_backend
from scheduler_app.models import SchedulerInstance
from scheduler_app.outages import (
    RETRY_AT_MOST_SECONDS,
    Outage,
    database_address,
    redis_address,
)
from tests.engine.test_engine import make_engine

pytestmark = pytest.mark.django_db(transaction=True)

START = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_a_database_outage_is_one_line_down_one_line_back_with_backoff(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine()
    now = START
    engine.tick(now)
    real_heartbeat = engine.heartbeat_if_due

    def failing_heartbeat(now: dt.datetime) -> None:
        raise OperationalError("connection to server at 127.0.0.1 refused")

    monkeypatch.setattr(engine, "heartbeat_if_due", failing_heartbeat)
    delays = []
    with caplog.at_level(logging.DEBUG, logger="scheduler_app"):
        for _ in range(8):
            now += dt.timedelta(seconds=engine.tick(now) or 0.25)
            delays.append(engine.tick(now))
            now += dt.timedelta(seconds=delays[-1])
        (reason,) = engine.degraded()
        assert reason.startswith(
            "The database at %s is unreachable since 2026-03-02T12:00"
            % database_address()
        )
        monkeypatch.setattr(engine, "heartbeat_if_due", real_heartbeat)
        for _ in range(3):
            now += dt.timedelta(seconds=engine.tick(now))

    down = lines(caplog, "is unreachable")
    assert len(down) == 1 and down[0].levelno == logging.WARNING
    assert database_address() in down[0].getMessage()
    assert "OperationalError: connection to server" in down[0].getMessage()
    assert "Nothing fires or starts meanwhile" in down[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and r.exc_info]
    back = lines(caplog, "is back after")
    assert len(back) == 1 and back[0].levelno == logging.INFO
    # Retries less and less often, up to a bound; a tick between two waits nothing.
    waits = [delay for delay in delays if delay > 0.25]
    assert waits == sorted(waits) and max(waits) == RETRY_AT_MOST_SECONDS
    assert engine.degraded() == []


def test_a_redis_outage_of_the_leader_lease_is_one_line_down_one_back(
    caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    settings.SCHEDULER_LEADER_LOCK_REFRESH_INTERVAL = 1
    backend = get_lock_backend()
    broken = {"now": False}

    class FlakyBackend:
        def __getattr__(self, name: str) -> Any:
            if broken["now"]:
                raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390.")
            return getattr(backend, name)

    leader = Leadership(
        owner="o",
        enabled=True,
        ttl_seconds=30,
        backend=lambda: FlakyBackend(),  # type: ignore[arg-type,return-value]
    )
    engine = make_engine(leadership=leader)
    now = START
    engine.tick(now)
    assert leader.is_leader

    with caplog.at_level(logging.INFO, logger="scheduler_app"):
        broken["now"] = True
        for _ in range(12):
            now += dt.timedelta(seconds=max(engine.tick(now), 0.25))
        assert [reason.split(" at ")[0] for reason in engine.degraded()] == ["Redis"]
        row = SchedulerInstance.objects.get(instance_id=engine.instance)
        recorded = [row.degraded_reason]
        broken["now"] = False
        for _ in range(3):
            now += dt.timedelta(seconds=max(engine.tick(now), 0.25))

    down = lines(caplog, "is unreachable")
    assert [r.getMessage().split(" at ")[0] for r in down] == ["Redis"]
    # The heartbeat said why while it lasted, and says nothing once it is over.
    assert recorded and recorded[0].startswith("Redis at ")
    row = SchedulerInstance.objects.get(instance_id=engine.instance)
    assert row.degraded_reason == ""
    assert "ConnectionError: Error 111" in down[0].getMessage()
    assert "leader lease" in down[0].getMessage()
    assert len(lines(caplog, "Redis at")) == 2  # down, then back
    assert engine.degraded() == [] and leader.is_leader


def test_addresses_leave_passwords_out() -> None:
    assert (
        redis_address("redis://user:secret@cache.example:6380/2")
        == "redis://user:***@cache.example:6380/2"
    )
    assert redis_address("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_an_outage_says_how_long_it_lasted(caplog: pytest.LogCaptureFixture) -> None:
    clock = {"now": 100.0}
    outage = Outage("Redis", "redis://x", meanwhile="M.", clock=lambda: clock["now"])

    with caplog.at_level(logging.INFO, logger="scheduler_app"):
        assert outage.failed(ConnectionError("refused")) == 1
        assert outage.failed(ConnectionError("refused")) == 2
        clock["now"] = 142.0
        outage.succeeded()
        outage.succeeded()

    assert [r.getMessage() for r in caplog.records][-1] == (
        "Redis at redis://x is back after 42 s; the scheduler works as usual again."
    )
    assert len(caplog.records) == 2 and not outage.down
