"""instance_heartbeating through a database outage: one line down, one back."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError

from scheduler_app.models import SchedulerInstance
from scheduler_app.services import instance_heartbeating, instance_id
from scheduler_app.services import instances as module
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_database_outage_is_one_warning_and_one_line_when_back(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = module.instance_heartbeat
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] <= 6:  # the first beat and five more fail
            raise OperationalError("connection refused")
        real()

    monkeypatch.setattr(module, "instance_heartbeat", flaky)
    with (
        caplog.at_level(logging.INFO, logger="scheduler_app"),
        instance_heartbeating(interval=0.02, mark_stopped=False),
    ):
        wait_until(lambda: calls["n"] >= 9, timeout=10)

    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "is unreachable (OperationalError: connection refused)" in messages[0]
    assert "cannot heartbeat meanwhile" in messages[0]
    assert "is back after" in messages[1]
    assert SchedulerInstance.objects.filter(instance_id=instance_id()).exists()
