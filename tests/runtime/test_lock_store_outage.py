"""Task lock extensions during a lock store outage: one line for all runs, one back."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis

from scheduler_app.runtime import leases
from scheduler_app.runtime.leases import RunLock
from scheduler_app.runtime.run import Run
from scheduler_app.tasklog import RunLog
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db


class FlakyRedisBackend:
    """A lock store that refuses connections while `down`."""

    def __init__(self) -> None:
        self.down = False

    def extend(self, key: str, token: str, ttl_seconds: float) -> bool:
        if self.down:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6391.")
        return True


def test_extensions_failing_for_many_runs_log_one_line_then_one_when_back(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leases, "_lock_stores", {})
    backend: Any = FlakyRedisBackend()
    task = make_task()
    runs = [
        Run(
            execution=make_execution(task),
            task=task,
            run_log=RunLog(max_lines=10),
            lock=RunLock(backend, "task:%d" % task.pk, "token-%d" % n, 30),
        )
        for n in range(3)
    ]

    with caplog.at_level(logging.INFO, logger="scheduler_app"):
        backend.down = True
        held = [run.extend_lock() for _ in range(5) for run in runs]
        backend.down = False
        extended = [run.extend_lock() for run in runs]

    assert all(held) and all(extended)  # an outage does not make a lock lost
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("The task lock store (Redis) at ")
    assert "ConnectionError: Error 111" in messages[0]
    assert "is back after" in messages[1]
