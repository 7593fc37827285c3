"""The database server's clock: locks hold whatever this machine's clock says (issue 20, item 9)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.utils import timezone

from scheduler_app.db import clock
from scheduler_app.locks import DatabaseLockBackend
from scheduler_app.services import instances

pytestmark = pytest.mark.django_db(transaction=True)

real_now = timezone.now


@pytest.fixture(autouse=True)
def _fresh_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "_offset", 0.0)
    monkeypatch.setattr(instances, "_clock_skewed", False)


def run_ahead(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """This machine's clock, from now on, `seconds` ahead of the server's."""
    monkeypatch.setattr(
        timezone, "now", lambda: real_now() + dt.timedelta(seconds=seconds)
    )


def test_an_instance_whose_clock_runs_ahead_does_not_take_a_live_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = DatabaseLockBackend()
    assert backend.acquire("leader:", owner="healthy", ttl_seconds=6)

    run_ahead(monkeypatch, 25)
    offset = clock.measure_offset()

    assert offset == pytest.approx(-25, abs=1)
    assert backend.acquire("leader:", owner="ahead", ttl_seconds=6) is None
    assert backend.get("leader:").owner == "healthy"


def test_the_measured_offset_is_about_zero_on_one_clock() -> None:
    assert clock.measure_offset() == pytest.approx(0, abs=0.5)
    assert abs((clock.database_now() - real_now()).total_seconds()) < 0.5


def test_a_skewed_clock_is_warned_about_once_and_once_more_when_it_is_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=instances.__name__):
        instances.clock_check()  # in sync: nothing to say
        run_ahead(monkeypatch, 25)
        instances.clock_check()
        instances.clock_check()
        monkeypatch.setattr(timezone, "now", real_now)
        instances.clock_check()

    lines = [r.getMessage() for r in caplog.records if r.name == instances.__name__]
    assert len(lines) == 2
    assert lines[0].startswith("This machine's clock is 25.")
    assert "ahead of the database server's" in lines[0]
    assert "fires follow this one and happen 25." in lines[0] and "early" in lines[0]
    assert "within" in lines[1] and "again" in lines[1]
