"""A step of the wall clock stops no housekeeping, and is logged once.

The engine runs with two injected clocks: the wall clock a test steps, and a
monotonic one that only moves forward with the (simulated) time.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from scheduler_app.engine.leader import Leadership
from scheduler_app.engine.loop import POLL_SECONDS, Engine
from scheduler_app.locks import LockBackend, get_lock_backend
from scheduler_app.models import ScheduledTask, SchedulerInstance
from scheduler_app.services import task_create, task_request_run
from tests.engine.test_engine import RecordingExecutor

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = dt.timedelta(hours=1)


class Clocks:
    """A wall clock and a monotonic clock that move together until stepped."""

    def __init__(self) -> None:
        self.wall = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += dt.timedelta(seconds=seconds)
        self.mono += seconds

    def step_wall(self, delta: dt.timedelta) -> None:
        self.wall += delta


class CountingBackend:
    """The real lock backend, counting the leader lease's extensions."""

    def __init__(self, backend: LockBackend) -> None:
        self._backend = backend
        self.extended = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def extend(self, key: str, token: str, ttl_seconds: float) -> bool:
        self.extended += 1
        return self._backend.extend(key, token, ttl_seconds)


@pytest.fixture
def short_intervals(settings: Any) -> None:
    settings.SCHEDULER_HEARTBEAT_INTERVAL = 1
    settings.SCHEDULER_LEADER_LOCK_REFRESH_INTERVAL = 2
    settings.SCHEDULER_LEADER_LOCK_TTL = 30


def make_engine(clocks: Clocks, backend: CountingBackend) -> Engine:
    leadership = Leadership(
        owner="clock-test",
        enabled=True,
        ttl_seconds=30,
        backend=lambda: backend,  # type: ignore[arg-type,return-value]
        clock=lambda: clocks.mono,
    )
    return Engine(
        executor=RecordingExecutor(),
        leadership=leadership,
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )


def run_for(engine: Engine, clocks: Clocks, seconds: float) -> list[float]:
    """Run the loop for `seconds` of simulated time; return what each tick slept."""
    slept = []
    end = clocks.mono + seconds
    while clocks.mono < end:
        sleep = engine.tick()
        slept.append(sleep)
        clocks.advance(max(sleep, 0.05))
    return slept


def heartbeat_at(engine: Engine) -> dt.datetime:
    row = SchedulerInstance.objects.get(instance_id=engine.instance)
    assert row.last_heartbeat_at is not None
    return row.last_heartbeat_at


def test_after_a_backward_step_housekeeping_goes_on_and_the_step_is_logged_once(
    short_intervals: None, caplog: pytest.LogCaptureFixture
) -> None:
    clocks = Clocks()
    backend = CountingBackend(get_lock_backend())
    engine = make_engine(clocks, backend)
    task = task_create(
        task=ScheduledTask(
            name="manual",
            task_type="manual",
            handler_path="scripts:example_task",
        ),
        now=clocks.wall,
    )
    run_for(engine, clocks, 3)
    assert engine.leadership.is_leader
    caplog.clear()

    with caplog.at_level(logging.WARNING, logger="scheduler_app.engine"):
        clocks.step_wall(-HOUR)
        stepped_at = clocks.wall
        extended_before = backend.extended
        slept = run_for(engine, clocks, 1.5)
        # A run-now request made after the step is started by the next housekeeping.
        requested = task_request_run(task=task, now=clocks.wall)
        slept += run_for(engine, clocks, POLL_SECONDS + 0.1)
        assert requested.pk in {e.pk for e in engine.executor.submitted}
        slept += run_for(engine, clocks, 3)

    # The heartbeat went on (at 1 s), with the wall-clock times it records.
    assert stepped_at <= heartbeat_at(engine) <= clocks.wall
    assert heartbeat_at(engine) >= clocks.wall - dt.timedelta(seconds=1.5)
    # The lease was extended every 2 s, and this instance still leads.
    assert backend.extended - extended_before >= 2
    assert engine.leadership.is_leader
    # The loop never slept for the step's size.
    assert max(slept) <= POLL_SECONDS
    steps = [r for r in caplog.records if "wall clock stepped" in r.getMessage()]
    assert len(steps) == 1
    message = steps[0].getMessage()
    assert "stepped back by 3600.0 s" in message
    assert "later than they would have" in message


def test_a_forward_step_is_logged_once_as_an_outage(
    short_intervals: None, caplog: pytest.LogCaptureFixture
) -> None:
    clocks = Clocks()
    engine = make_engine(clocks, CountingBackend(get_lock_backend()))
    run_for(engine, clocks, 1)

    with caplog.at_level(logging.WARNING, logger="scheduler_app.engine"):
        clocks.step_wall(dt.timedelta(minutes=10))
        run_for(engine, clocks, 2)

    steps = [r for r in caplog.records if "wall clock stepped" in r.getMessage()]
    assert [r.getMessage().split(" (")[0] for r in steps] == [
        "The wall clock stepped forward by 600.0 s"
    ]
    assert "misfire grace" in steps[0].getMessage()


def test_time_moving_evenly_is_no_step(
    short_intervals: None, caplog: pytest.LogCaptureFixture
) -> None:
    clocks = Clocks()
    engine = make_engine(clocks, CountingBackend(get_lock_backend()))

    with caplog.at_level(logging.WARNING, logger="scheduler_app.engine"):
        run_for(engine, clocks, 5)
        clocks.step_wall(dt.timedelta(seconds=1))  # a small correction: not a step
        run_for(engine, clocks, 1)

    assert not [r for r in caplog.records if "wall clock stepped" in r.getMessage()]
