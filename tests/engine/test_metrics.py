"""The scheduler process's own figures (engine/metrics.py), at each measuring point.

The figures live in one registry for the process, so each test reads them before
and after what it does and asserts the difference.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from scheduler_app.engine import metrics
from scheduler_app.engine.executor import InlineExecutor
from scheduler_app.models import TaskExecution
from scheduler_app.services import task_request_run
from scheduler_app.services.metrics import PROCESS_METRICS
from tests.engine.test_engine import create, make_engine
from tests.engine.test_executor import due_in, statuses
from tests.factories import make_sample_task as make
from tests.helpers import wait_until
from tests.sample_handlers import runs

Status = TaskExecution.Status
Trigger = TaskExecution.TriggerType
T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def value(name: str, **labels: str) -> float:
    """A sample of the process's registry now (0 when it has none yet)."""
    found = metrics.REGISTRY.get_sample_value(name, labels)
    return found or 0.0


class Figures:
    """The samples of a few figures at one moment, and the change since."""

    NAMES = (
        ("scheduler_fire_lateness_seconds_count", {}),
        ("scheduler_fire_lateness_seconds_sum", {}),
        ("scheduler_fire_lateness_seconds_bucket", {"le": "0.005"}),
        ("scheduler_fire_lateness_seconds_bucket", {"le": "0.0025"}),
        ("scheduler_claim_to_start_seconds_count", {}),
        ("scheduler_claim_to_start_seconds_sum", {}),
        ("scheduler_claim_to_start_seconds_bucket", {"le": "0.25"}),
        ("scheduler_claim_to_start_seconds_bucket", {"le": "0.1"}),
        ("scheduler_fires_total", {}),
        ("scheduler_claims_total", {}),
        ("scheduler_loop_tick_delay_seconds_count", {}),
        ("scheduler_loop_tick_delay_seconds_sum", {}),
    )

    def __init__(self) -> None:
        self.before = self._read()

    @classmethod
    def _read(cls) -> dict[str, float]:
        return {
            cls._key(name, labels): value(name, **labels) for name, labels in cls.NAMES
        }

    @staticmethod
    def _key(name: str, labels: dict[str, str]) -> str:
        return name + "".join("{le=%s}" % le for le in labels.values())

    def change(self) -> dict[str, float]:
        """Every figure that changed since, by how much."""
        now = self._read()
        return {
            key: round(now[key] - self.before[key], 6)
            for key in now
            if now[key] != self.before[key]
        }


def started(
    *,
    trigger: str,
    claimed_at: dt.datetime | None,
    started_at: dt.datetime,
    scheduled_for: dt.datetime | None = None,
    run_after: dt.datetime | None = None,
) -> None:
    """metrics.run_started for a run of these times (the hook run_claimed calls)."""
    execution = TaskExecution(
        trigger_type=trigger,
        scheduled_for=scheduled_for,
        run_after=run_after,
        started_at=started_at,
    )
    run: Any = SimpleNamespace(execution=execution)
    metrics.run_started(run, claimed_at)


# -- the histograms of a run's start ----------------------------------------------------


def test_a_scheduled_fire_claimed_ahead_counts_its_lateness_from_its_fire_time() -> (
    None
):
    figures = Figures()
    # A staged fire: claimed 0.15 s before its time, started 3 ms after it.
    started(
        trigger=Trigger.SCHEDULED,
        scheduled_for=T0,
        run_after=T0,
        claimed_at=T0 - dt.timedelta(milliseconds=150),
        started_at=T0 + dt.timedelta(milliseconds=3),
    )

    assert figures.change() == {
        "scheduler_fire_lateness_seconds_count": 1,
        "scheduler_fire_lateness_seconds_sum": 0.003,
        "scheduler_fire_lateness_seconds_bucket{le=0.005}": 1,
        # Waiting for its time after the claim is no delay: 3 ms, not 153.
        "scheduler_claim_to_start_seconds_count": 1,
        "scheduler_claim_to_start_seconds_sum": 0.003,
        "scheduler_claim_to_start_seconds_bucket{le=0.25}": 1,
        "scheduler_claim_to_start_seconds_bucket{le=0.1}": 1,
    }


def test_a_fire_claimed_late_counts_its_wait_for_a_thread_from_the_claim() -> None:
    figures = Figures()
    # Left pending (a leader died): claimed 2 s after its time, started 0.2 s later.
    started(
        trigger=Trigger.SCHEDULED,
        scheduled_for=T0,
        run_after=T0,
        claimed_at=T0 + dt.timedelta(seconds=2),
        started_at=T0 + dt.timedelta(seconds=2.2),
    )

    change = figures.change()
    assert change["scheduler_fire_lateness_seconds_count"] == 1
    assert change["scheduler_fire_lateness_seconds_sum"] == 2.2
    assert change["scheduler_claim_to_start_seconds_count"] == 1
    assert change["scheduler_claim_to_start_seconds_sum"] == 0.2
    assert "scheduler_claim_to_start_seconds_bucket{le=0.1}" not in change


@pytest.mark.parametrize("trigger", [Trigger.MANUAL, Trigger.RETRY, Trigger.CLI])
def test_runs_of_no_fire_count_their_claim_to_start_only(trigger: str) -> None:
    figures = Figures()
    # A retry keeps the fire time it serves; its delay is no lateness of a fire.
    started(
        trigger=trigger,
        scheduled_for=T0 if trigger == Trigger.RETRY else None,
        run_after=T0 + dt.timedelta(seconds=30) if trigger == Trigger.RETRY else None,
        claimed_at=T0 + dt.timedelta(seconds=31),
        started_at=T0 + dt.timedelta(seconds=31.002),
    )

    assert figures.change() == {
        "scheduler_claim_to_start_seconds_count": 1,
        "scheduler_claim_to_start_seconds_sum": 0.002,
        "scheduler_claim_to_start_seconds_bucket{le=0.25}": 1,
        "scheduler_claim_to_start_seconds_bucket{le=0.1}": 1,
    }


# -- the loop's wake-ups ----------------------------------------------------------------


class FakeMonotonic:
    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def __call__(self) -> float:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


@pytest.mark.django_db
def test_a_sleep_that_ran_its_course_counts_how_late_the_loop_woke() -> None:
    engine = make_engine()
    engine.monotonic = FakeMonotonic(100.0, 100.25)
    figures = Figures()

    engine.sleep(0.0)  # meant to wake at 100.0; woke at 100.25

    assert figures.change() == {
        "scheduler_loop_tick_delay_seconds_count": 1,
        "scheduler_loop_tick_delay_seconds_sum": 0.25,
    }


@pytest.mark.django_db
def test_a_wake_up_by_a_notification_is_not_counted() -> None:
    engine = make_engine()
    engine.monotonic = FakeMonotonic(100.0, 100.0)
    figures = Figures()

    engine.wake.set()  # a notification, or a stop
    engine.sleep(5.0)

    assert figures.change() == {}
    assert not engine.wake.is_set()


# -- fires handed over --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fires_count_the_staged_fires_handed_to_the_executor_at_their_time() -> None:
    start = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
    create(
        start,
        name="every 10 s",
        task_type="interval",
        cron_expression="",
        interval_seconds=10,
    )  # first fire at start + 10 s
    engine = make_engine()
    figures = Figures()

    engine.tick(start)  # loads and stages nothing yet (10 s away)
    engine.tick(start + dt.timedelta(seconds=9.5))  # stages the fire at +10 s
    assert figures.change() == {}
    engine.tick(start + dt.timedelta(seconds=10))  # hands it over
    engine.tick(start + dt.timedelta(seconds=10.1))  # nothing more

    assert len(engine.executor.submitted) == 1
    assert figures.change() == {"scheduler_fires_total": 1}


# -- claims and starts in the inline executor ---------------------------------------------


@pytest.fixture
def executor() -> Iterator[InlineExecutor]:
    runs.reset()
    made = InlineExecutor(max_workers=2)
    yield made
    runs.release.set()
    made.shutdown(grace_seconds=5)


@pytest.mark.django_db(transaction=True)
def test_the_inline_executor_counts_its_claims_and_the_starts_of_their_handlers(
    executor: InlineExecutor,
) -> None:
    run_now = task_request_run(task=make("add", name="now", handler_kwargs={"a": "1"}))
    fire = task_request_run(task=make("add", name="fire", handler_kwargs={"a": "2"}))
    TaskExecution.objects.filter(pk=fire.pk).update(trigger_type=Trigger.SCHEDULED)
    fire.trigger_type = Trigger.SCHEDULED
    due = due_in(fire, 0.5)  # a staged fire, handed over ahead of its time
    figures = Figures()

    executor.submit([run_now, fire])

    assert wait_until(lambda: statuses([run_now, fire]) == [Status.SUCCESS] * 2)
    change = figures.change()
    assert change["scheduler_claims_total"] == 2
    assert change["scheduler_claim_to_start_seconds_count"] == 2
    assert change["scheduler_fire_lateness_seconds_count"] == 1  # the fire only
    fire.refresh_from_db()
    lateness = (fire.started_at - due).total_seconds()
    assert change["scheduler_fire_lateness_seconds_sum"] == pytest.approx(
        lateness, abs=1e-6
    )
    # The fire waited ~0.5 s for its time after its claim: not counted as delay.
    assert change["scheduler_claim_to_start_seconds_sum"] < 0.4
    assert "scheduler_fires_total" not in change  # the engine's, not the executor's


@pytest.mark.django_db(transaction=True)
def test_a_run_refused_its_lock_at_claim_is_claimed_but_never_starts(
    executor: InlineExecutor,
) -> None:
    task = make("log_then_block")
    first, second = task_request_run(task=task), task_request_run(task=task)
    figures = Figures()

    executor.submit([first, second])

    assert wait_until(lambda: statuses([second]) == [Status.SKIPPED])
    assert runs.started.wait(10)
    change = figures.change()
    assert change["scheduler_claims_total"] == 2
    assert change["scheduler_claim_to_start_seconds_count"] == 1  # the first only
    runs.release.set()
    assert wait_until(lambda: statuses([first]) == [Status.SUCCESS])


# -- the option ---------------------------------------------------------------------------


def test_runscheduler_stops_with_a_clear_error_when_the_metrics_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(CommandError) as raised:
            call_command("runscheduler", "--metrics-port", str(port))

    message = str(raised.value)
    assert "127.0.0.1 port %d" % port in message
    assert "--metrics-port" in message and "SCHEDULER_METRICS_PORT" in message
    assert "give each its own port, or stop what listens there" in message


def test_runscheduler_says_what_to_do_when_the_metrics_address_is_not_its_own() -> None:
    with pytest.raises(CommandError) as raised:
        # TEST-NET-1 (RFC 5737): an address no machine of the test has.
        call_command(
            "runscheduler", "--metrics-port", "9108", "--metrics-addr", "192.0.2.1"
        )

    message = str(raised.value)
    assert message.startswith("Cannot serve the metrics on 192.0.2.1 port 9108")
    assert "must be an address of this machine" in message


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_runscheduler_refuses_a_metrics_port_that_is_no_port(port: str) -> None:
    with pytest.raises(CommandError, match="must be a TCP port, 1 to 65535"):
        call_command("runscheduler", "--metrics-port", port)


def test_the_metrics_server_serves_the_registry_and_frees_its_port() -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = metrics.serve(port, "127.0.0.1")
    try:
        with urllib.request.urlopen(
            "http://127.0.0.1:%d/metrics" % port, timeout=10
        ) as response:
            text = response.read().decode()
    finally:
        server.close()
    families = {
        family.name: family.type
        for family in text_string_to_metric_families(text)
        if not family.name.endswith("_created")  # prometheus_client's start times
    }
    assert families == {
        "scheduler_fire_lateness_seconds": "histogram",
        "scheduler_claim_to_start_seconds": "histogram",
        "scheduler_fires": "counter",
        "scheduler_claims": "counter",
        "scheduler_loop_tick_delay_seconds": "histogram",
    }
    with socket.socket() as again:  # closed: the port is free again
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_the_registry_serves_the_product_s_list_of_the_process_s_metrics() -> None:
    # PROCESS_METRICS is what the README's "Metrics" and the Grafana dashboard are
    # checked against: the registry must serve those names, types and help texts.
    served = {
        family.name: (family.type, family.documentation)
        for family in metrics.REGISTRY.collect()
    }
    assert served == {
        spec.name.removesuffix("_total"): (spec.kind, spec.help)
        for spec in PROCESS_METRICS
    }
    for family in metrics.REGISTRY.collect():
        assert all(set(sample.labels) <= {"le"} for sample in family.samples), (
            family.name
        )
