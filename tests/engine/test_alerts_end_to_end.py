"""End to end: health and alerts from real runscheduler processes to a webhook on loopback.

The schedulers post to a webhook receiver in this test process (tests/receivers.py), as
they would to any webhook; what it received is what people would have been told.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from scheduler_app.choices import AlertKind, HealthState
from scheduler_app.models import (
    Alert,
    AlertAttempt,
    AlertDelivery,
    ScheduledTask,
    TaskExecution,
)
from scheduler_app.services import task_create, task_pause, task_request_run
from tests.engine.e2e import ENDED, Status, make_manual, row_of
from tests.factories import make_user
from tests.helpers import readme_section
from tests.processes import STARTUP_TIMEOUT, SchedulerProcess, reports, wait_for
from tests.receivers import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: Fails on its first `failures` runs (counted in a file), then succeeds.
FLAKY_SCRIPT = '''"""Fails its first runs, then works: a job with a bad night."""


def run(path: str = "", failures: int = 2) -> dict:
    with open(path, "a+") as file:
        file.seek(0)
        done = len(file.read().splitlines())
        file.write("run\\n")
    if done < failures:
        raise RuntimeError("bad night, run %d" % (done + 1))
    return {"run": done + 1}
'''

#: The health check and the sender at test pace.
ALERT_ENV = {
    "SCHEDULER_HEALTH_CHECK_SECONDS": "0.5",
    "SCHEDULER_ALERT_RETRY_SECONDS": "1",
}


@pytest.fixture
def alert_env(scripts_dir: Path, webhook_receiver: WebhookReceiver) -> dict[str, str]:
    (scripts_dir / "flaky.py").write_text(FLAKY_SCRIPT)
    return {
        **ALERT_ENV,
        "SCHEDULER_SCRIPTS_PATH": str(scripts_dir),
        "SCHEDULER_ALERT_WEBHOOK_URLS": webhook_receiver.url(),
        "SCHEDULER_ALERT_WEBHOOK_SECRET": "e2e-secret",
    }


def lease_options(request: pytest.FixtureRequest, settings: Any) -> dict[str, str]:
    """Redis for the lease on PostgreSQL (as in production), the database on SQLite."""
    if connection.vendor == "postgresql":
        return {
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": settings.SCHEDULER_REDIS_PREFIX,
        }
    settings.REDIS_URL = ""
    return {}


def posted(
    webhook_receiver: WebhookReceiver, kind: str, task: str | None = None
) -> list[Any]:
    """The alerts of `kind` (of `task`) the webhook_receiver got, summaries unfolded.

    Each is the alert's JSON with `_at`, the wall time the webhook_receiver got it.
    """
    found = []
    for received in webhook_receiver.requests:
        if received.path != "/hook":
            continue  # a ping
        body = received.json()
        at = time.time() - (time.monotonic() - received.at)
        for alert in body.get("alerts", [body]):
            named = (alert.get("task") or {}).get("name")
            if alert.get("kind") == kind and (task is None or named == task):
                found.append({**alert, "_at": at})
    return found


def signed(webhook_receiver: WebhookReceiver, secret: str) -> bool:
    """Whether every request carries the HMAC-SHA256 of its body with `secret`."""
    return all(
        hmac.compare_digest(
            received.header("X-Scheduler-Signature") or "",
            "sha256=" + hmac.new(secret.encode(), received.body, "sha256").hexdigest(),
        )
        for received in webhook_receiver.requests
        if received.path == "/hook"
    )


def test_two_failures_then_a_success_tell_failing_once_and_recovered_once_once_each(
    start_scheduler: Callable[..., SchedulerProcess],
    alert_env: dict[str, str],
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    settings: Any,
) -> None:
    """A leader and a standby both watch; each alert reaches the webhook once."""
    options = lease_options(request, settings)
    leader = start_scheduler(extra_env=alert_env, **options)
    wait_for(leader.is_leader, STARTUP_TIMEOUT, leader)
    standby = start_scheduler(extra_env=alert_env, **options)
    both = (leader, standby)
    wait_for(standby.instance_row, STARTUP_TIMEOUT, *both)
    flaky = make_manual(
        "e2e flaky",
        handler="scripts:flaky",
        handler_kwargs={"path": repr(str(tmp_path / "runs.txt"))},
    )

    first = task_request_run(task=flaky)
    first_row = wait_for(row_of(first, **ENDED), 15, *both)
    assert first_row.status == Status.FAILED, reports(*both)
    failing = wait_for(lambda: posted(webhook_receiver, AlertKind.FAILING), 10, *both)
    told_after = failing[0]["_at"] - first_row.finished_at.timestamp()
    assert told_after < 5, (told_after, reports(*both))
    assert failing[0]["task"]["name"] == "e2e flaky"
    assert "bad night, run 1" in failing[0]["error"]
    assert failing[0]["execution"]["id"] == first.pk

    second = task_request_run(task=flaky)
    wait_for(row_of(second, status=Status.FAILED), 15, *both)
    third = task_request_run(task=flaky)
    wait_for(row_of(third, status=Status.SUCCESS), 15, *both)
    wait_for(lambda: posted(webhook_receiver, AlertKind.RECOVERED), 10, *both)
    # Two more checks' time: nothing else comes.
    time.sleep(1.5)

    # The README's example payload has exactly the fields the webhook got.
    section = readme_section("Health and alerts")
    documented = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    (got,) = [
        received.json()
        for received in webhook_receiver.requests
        if received.json()["kind"] == AlertKind.FAILING
    ]
    assert set(got) == set(documented), (sorted(got), sorted(documented))
    assert set(got["task"]) == set(documented["task"])
    assert set(got["execution"]) == set(documented["execution"])
    assert webhook_receiver.requests[0].header("X-Scheduler-Event") == "alert"
    bodies = [received.json() for received in webhook_receiver.requests]
    assert len(posted(webhook_receiver, AlertKind.FAILING)) == 1, bodies
    assert len(posted(webhook_receiver, AlertKind.RECOVERED)) == 1, bodies
    assert signed(webhook_receiver, "e2e-secret")
    flaky.refresh_from_db()
    assert flaky.health == HealthState.UP


def test_a_scheduler_killed_for_a_minute_tells_one_missed_alert_and_a_system_alert(
    start_scheduler: Callable[..., SchedulerProcess],
    alert_env: dict[str, str],
    webhook_receiver: WebhookReceiver,
    settings: Any,
) -> None:
    settings.REDIS_URL = ""
    every5s = task_create(
        task=ScheduledTask(
            name="e2e every 5 s",
            task_type="interval",
            interval_seconds=5,
            handler_path="scripts:tick",
        )
    )
    first = start_scheduler(extra_env=alert_env)
    wait_for(
        lambda: every5s.executions.filter(status=Status.SUCCESS).exists(), 15, first
    )
    first.kill_all()  # kill -9: no goodbye, its lease and heartbeat just stop

    time.sleep(60)
    second = start_scheduler(extra_env=alert_env)

    missed = wait_for(lambda: posted(webhook_receiver, AlertKind.MISSED), 20, second)
    wait_for(lambda: posted(webhook_receiver, AlertKind.SCHEDULER_DOWN), 10, second)
    wait_for(
        lambda: posted(webhook_receiver, AlertKind.RECOVERED, "e2e every 5 s"),
        15,
        second,
    )
    time.sleep(6)  # a fire or two more: nothing more to tell

    assert len(missed) == 1 and missed[0]["task"]["name"] == "e2e every 5 s"
    assert posted(webhook_receiver, AlertKind.LATE) == []  # the restart staged first
    assert len(posted(webhook_receiver, AlertKind.MISSED)) == 1, [
        received.json() for received in webhook_receiver.requests
    ]
    (down,) = posted(webhook_receiver, AlertKind.SCHEDULER_DOWN)
    assert down["task"] is None
    assert down["details"]["seconds_without_scheduler"] >= 55


def test_running_long_is_told_while_the_run_goes_on_and_a_paused_task_tells_nothing(
    start_scheduler: Callable[..., SchedulerProcess],
    alert_env: dict[str, str],
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
    settings: Any,
) -> None:
    settings.REDIS_URL = ""
    sleeper = make_manual(
        "e2e slow",
        handler="scripts:sleeper",
        handler_kwargs={"seconds": 8},
        max_run_seconds=1,
    )
    paused = make_manual(
        "e2e paused flaky",
        handler="scripts:flaky",
        handler_kwargs={"path": repr(str(tmp_path / "paused.txt")), "failures": 9},
    )
    ping = {
        "SCHEDULER_HEARTBEAT_PING_URL": webhook_receiver.url("/ping"),
        "SCHEDULER_HEARTBEAT_PING_SECONDS": "1",
    }
    scheduler = start_scheduler(extra_env={**alert_env, **ping})
    failed = task_request_run(task=paused)
    wait_for(row_of(failed, status=Status.FAILED), 15, scheduler)
    wait_for(
        lambda: posted(webhook_receiver, AlertKind.FAILING, "e2e paused flaky"), 10
    )
    task_pause(task=paused)
    wait_for(
        lambda: ScheduledTask.objects.filter(pk=paused.pk, health="paused").first(),
        10,
        scheduler,
    )
    # Run now works on a paused task; its failure tells nothing.
    again = task_request_run(task=paused)
    wait_for(row_of(again, status=Status.FAILED), 15, scheduler)

    long_run = task_request_run(task=sleeper)
    wait_for(row_of(long_run, status=Status.RUNNING), 15, scheduler)
    (alert,) = wait_for(
        lambda: posted(webhook_receiver, AlertKind.RUNNING_LONG, "e2e slow"),
        10,
        scheduler,
    )

    still = TaskExecution.objects.get(pk=long_run.pk)
    assert still.status == Status.RUNNING, reports(scheduler)
    assert alert["execution"]["id"] == long_run.pk
    paused.refresh_from_db()
    assert paused.health == HealthState.PAUSED
    told = [
        alert
        for received in webhook_receiver.requests
        if received.path == "/hook"
        for alert in received.json().get("alerts", [received.json()])
        if (alert.get("task") or {}).get("name") == "e2e paused flaky"
    ]
    assert [alert["kind"] for alert in told] == [AlertKind.FAILING]
    # The dead man's switch: the leader pings it (GET) every second.
    pings = [each for each in webhook_receiver.requests if each.path == "/ping"]
    assert pings and {each.method for each in pings} == {"GET"}


def test_a_webhook_down_for_30_s_gets_the_alert_once_it_is_back_and_the_admin_shows_the_failures(
    start_scheduler: Callable[..., SchedulerProcess],
    alert_env: dict[str, str],
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
    settings: Any,
) -> None:
    settings.REDIS_URL = ""
    flaky = make_manual(
        "e2e down hook",
        handler="scripts:flaky",
        handler_kwargs={"path": repr(str(tmp_path / "runs.txt"))},
    )
    scheduler = start_scheduler(extra_env=alert_env)
    webhook_receiver.stop()
    down_at = time.monotonic()
    run = task_request_run(task=flaky)
    wait_for(row_of(run, status=Status.FAILED), 15, scheduler)
    delivery = wait_for(
        lambda: AlertDelivery.objects.filter(
            alert__kind=AlertKind.FAILING, attempts__gte=2
        ).first(),
        15,
        scheduler,
    )
    time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
    webhook_receiver.start()

    wait_for(lambda: posted(webhook_receiver, AlertKind.FAILING), 40, scheduler)
    # The receiver answers before the sender records it: poll the row.
    wait_for(
        lambda: AlertDelivery.objects.filter(
            pk=delivery.pk, status=AlertDelivery.Status.SENT
        ).first(),
        10,
        scheduler,
    )
    failures = AlertAttempt.objects.filter(delivery=delivery, ok=False)
    assert failures.count() >= 2
    admin = Client()
    admin.force_login(make_user("ops", superuser=True))
    page = admin.get(
        "/admin/scheduler_app/alert/%d/change/" % delivery.alert_id
    ).content.decode()
    assert failures.first().error in page  # type: ignore[union-attr]
    assert len(posted(webhook_receiver, AlertKind.FAILING)) == 1
    assert Alert.objects.filter(kind=AlertKind.FAILING).count() == 1
