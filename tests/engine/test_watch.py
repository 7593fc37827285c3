"""The leader's watch (engine/watch.py): health and alerts only while it leads."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.utils import timezone

from scheduler_app.choices import HealthState
from scheduler_app.engine.watch import Watch
from scheduler_app.models import (
    AlertChannel,
    AlertDelivery,
    ScheduledTask,
    TaskExecution,
)
from scheduler_app.services import alert_test
from scheduler_app.services.records import add_counters
from tests.factories import make_execution, make_task
from tests.helpers import wait_until
from tests.receivers import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_standby_neither_checks_nor_sends_and_starts_both_once_it_leads(
    settings: Any, webhook_receiver: WebhookReceiver
) -> None:
    settings.SCHEDULER_HEALTH_CHECK_SECONDS = 0.05
    settings.SCHEDULER_ALERT_WEBHOOK_URLS = (webhook_receiver.url(),)
    channel = AlertChannel.objects.create(
        name="hook",
        kind="webhook",
        target=webhook_receiver.url("/test"),
        is_default=False,
    )
    alert_test(channel=channel)
    task = make_task(name="watched")
    failed = make_execution(
        task, status=TaskExecution.Status.FAILED, started_at=timezone.now()
    )
    add_counters([failed])
    leading = False
    watch = Watch(
        is_leader=lambda: leading, may_check=lambda: True, degraded=lambda: []
    )
    watch.start()
    try:
        time.sleep(1.5)  # a standby's passes: more than a second of them
        assert webhook_receiver.requests == []
        task.refresh_from_db()
        assert task.health == HealthState.NEW

        leading = True

        wait_until(
            lambda: ScheduledTask.objects.filter(
                pk=task.pk, health=HealthState.FAILING
            ).exists(),
            timeout=5,
        )
        wait_until(
            lambda: (
                not AlertDelivery.objects.exclude(
                    status=AlertDelivery.Status.SENT
                ).exists()
            ),
            timeout=5,
        )
    finally:
        watch.stop()
    paths = sorted(received.path for received in webhook_receiver.requests)
    assert paths == ["/hook", "/test"]
