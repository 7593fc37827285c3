"""The fixtures of the end-to-end tests: runscheduler processes and their scripts."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.engine.e2e import (
    HEARTBEAT_INTERVAL,
    INSTANCE_STALE_SECONDS,
    LEADER_LOCK_REFRESH_INTERVAL,
    LEADER_LOCK_TTL,
    PROBE_SCRIPT,
    SHUTDOWN_GRACE_SECONDS,
    SLEEPER_SCRIPT,
    TICK_SCRIPT,
)
from tests.processes import Processes, SchedulerProcess, child_env


@pytest.fixture
def start_scheduler(
    processes: Processes, tmp_path: Path
) -> Callable[..., SchedulerProcess]:
    """Start runscheduler processes on the test database; all stop at teardown."""
    suffix = uuid.uuid4().hex[:8]
    defaults = {
        "SCHEDULER_REDIS_PREFIX": "e2e-%s:" % suffix,
        "SCHEDULER_LEADER_LOCK_KEY": "e2e-leader-%s" % suffix,
    }

    def start(
        *,
        redis_url: str = "",
        redis_prefix: str = "",
        extra_env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> SchedulerProcess:
        env = child_env(
            REDIS_URL=redis_url,
            SCHEDULER_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL),
            SCHEDULER_INSTANCE_STALE_SECONDS=str(INSTANCE_STALE_SECONDS),
            SCHEDULER_LEADER_LOCK_TTL=str(LEADER_LOCK_TTL),
            SCHEDULER_LEADER_LOCK_REFRESH_INTERVAL=str(LEADER_LOCK_REFRESH_INTERVAL),
            SCHEDULER_SHUTDOWN_GRACE_SECONDS=str(SHUTDOWN_GRACE_SECONDS),
            **defaults,
        )
        if redis_prefix:
            env["SCHEDULER_REDIS_PREFIX"] = redis_prefix
        env.update(extra_env or {})
        name = "ABCDEFGH"[len(processes.started)]
        log_path = tmp_path / ("runscheduler-%s.log" % name)
        return processes.start(SchedulerProcess(name, env, log_path, args))

    return start


@pytest.fixture
def scripts_dir(tmp_path: Path, settings: Any) -> Path:
    """A scripts folder with `sleeper` and `tick`, shared with the schedulers."""
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "sleeper.py").write_text(SLEEPER_SCRIPT)
    (folder / "tick.py").write_text(TICK_SCRIPT)
    (folder / "probe.py").write_text(PROBE_SCRIPT)
    settings.SCHEDULER_SCRIPTS_PATH = str(folder)
    return folder
