"""Alerts: decided once into the outbox, then delivered to their channels.

An alert is decided by the health check (`services/health.py`) or by the engine
(system events) in the transaction that records the change it tells of:
`alerts_record` writes the `Alert` and one `AlertDelivery` per channel. Nothing
is sent there: the sender in the leading scheduler (`alerts_deliver`) takes the
due deliveries, so neither firing nor runs wait for a mail server, and an alert
decided before a crash goes out after the restart.

Where an alert goes: the task's own channels when it names some, else the
default channels (`AlertChannel.is_default`) and the settings' addresses and
URLs (SCHEDULER_ALERT_EMAILS, SCHEDULER_ALERT_WEBHOOK_URLS). System alerts go to
the default channels and the settings' ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..choices import AlertKind, ChannelKind
from ..conf import app_settings
from ..models import Alert, AlertChannel, AlertDelivery, ScheduledTask, TaskExecution

#: The most of a run's error an alert carries (its page has the rest).
ALERT_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Destination:
    """One place an alert goes: a channel of the admin (`channel`), or of the settings."""

    kind: str
    target: str
    channel: AlertChannel | None = None


def settings_destinations() -> list[Destination]:
    """The channels of SCHEDULER_ALERT_EMAILS and SCHEDULER_ALERT_WEBHOOK_URLS."""
    found: list[Destination] = []
    emails = [each.strip() for each in app_settings.SCHEDULER_ALERT_EMAILS]
    emails = [each for each in emails if each]
    if emails:
        found.append(Destination(ChannelKind.EMAIL, ", ".join(emails)))
    for url in app_settings.SCHEDULER_ALERT_WEBHOOK_URLS:
        url = url.strip()
        if url:
            slack = urlsplit(url).hostname == "hooks.slack.com"
            kind = ChannelKind.SLACK if slack else ChannelKind.WEBHOOK
            found.append(Destination(kind, url))
    return found


def default_destinations() -> list[Destination]:
    """Where the alerts of a task that names no channel go, and system alerts."""
    channels = AlertChannel.objects.filter(enabled=True, is_default=True)
    return [
        Destination(channel.kind, channel.target, channel) for channel in channels
    ] + settings_destinations()


def task_destinations(
    task: ScheduledTask, *, defaults: Sequence[Destination] | None = None
) -> list[Destination]:
    """Where `task`'s alerts go: its own enabled channels, or the defaults."""
    own = list(task.alert_channels.all())
    if own:
        return [
            Destination(channel.kind, channel.target, channel)
            for channel in own
            if channel.enabled
        ]
    return list(default_destinations() if defaults is None else defaults)


def alerts_record(
    *,
    kind: str,
    message: str,
    task: ScheduledTask | None = None,
    state: str = "",
    previous_state: str = "",
    error: str = "",
    execution: TaskExecution | None = None,
    details: dict[str, Any] | None = None,
    destinations: Iterable[Destination] | None = None,
    now: dt.datetime | None = None,
) -> Alert:
    """Decide one alert: the outbox entry and a pending delivery per destination.

    `destinations` defaults to the task's (`task_destinations`), or for a system
    alert (no task) to the default ones. Call it in the transaction that records
    what the alert tells of, so the two are kept or lost together.
    """
    now = now or timezone.now()
    if destinations is None:
        destinations = (
            task_destinations(task) if task is not None else default_destinations()
        )
    with transaction.atomic():
        alert = Alert.objects.create(
            kind=kind,
            task=task,
            task_name=task.name if task is not None else "",
            state=state,
            previous_state=previous_state,
            message=message,
            error=error[:ALERT_ERROR_CHARS],
            execution=execution,
            details=details or {},
            created_at=now,
        )
        AlertDelivery.objects.bulk_create(
            AlertDelivery(
                alert=alert,
                channel=each.channel,
                channel_kind=each.kind,
                target=each.target,
                next_attempt_at=now,
                created_at=now,
            )
            for each in destinations
        )
    return alert


def alert_test(*, channel: AlertChannel, now: dt.datetime | None = None) -> Alert:
    """A test alert to `channel` alone (the admin's "Send a test alert")."""
    return alerts_record(
        kind=AlertKind.TEST,
        message=_("Test alert to the channel “%(name)s”: it reaches you.")
        % {"name": channel.name},
        destinations=[Destination(channel.kind, channel.target, channel)],
        now=now,
    )
