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

Delivery (`alerts_deliver`): a sender claims each due delivery with a conditional
update (pending -> sending, with a lease), so two senders never send one; every
try is an `AlertAttempt`; a failed one is retried with a doubling wait, and given
up (`failed`) after SCHEDULER_ALERT_MAX_ATTEMPTS. A channel that fails an attempt
is not tried again in the same pass. Storm control: a channel gets at most
SCHEDULER_ALERT_SUMMARY_AFTER task alerts a rolling minute one by one; the rest go
out as one summary message, at most one summary a minute (later ones wait for
the next). System and test alerts always go on their own. The messages are made
in `services/alert_messages.py`, sent by `services/alert_transports.py`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.db import DatabaseError, transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from ..choices import AlertKind, ChannelKind, DeliveryStatus
from ..conf import app_settings
from ..models import (
    Alert,
    AlertAttempt,
    AlertChannel,
    AlertDelivery,
    ScheduledTask,
    TaskExecution,
)
from . import alert_messages as messages
from .alert_transports import Outcome, http_request, mail_send, shown_url

logger = logging.getLogger(__name__)

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


# Delivery ---------------------------------------------------------------------------

#: A sender holds a delivery it took for the attempt's timeout and this much more.
LEASE_MARGIN = dt.timedelta(seconds=30)
#: The rolling window of the storm control.
STORM_WINDOW = dt.timedelta(seconds=60)
#: The longest wait between two attempts at a delivery.
MAX_RETRY_SECONDS = 300.0
#: A heartbeat ping's timeout at most: a ping that slow is a failed one.
PING_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Route:
    """Where a channel's deliveries go now: its channel's current settings, or the settings'."""

    kind: str
    target: str
    secret: str
    timeout: float
    channel: AlertChannel | None = None


class _Clock:
    """The pass's time: `now` at its start, moving on with the real time."""

    def __init__(self, now: dt.datetime) -> None:
        self.start = now
        self.started = time.monotonic()

    def __call__(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=time.monotonic() - self.started)


def _due(now: dt.datetime) -> Q:
    """Deliveries a sender may take: pending and due, or taken by a sender that died."""
    return Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=DeliveryStatus.SENDING, lease_until__lt=now
    )


def retry_delay(attempts: int) -> dt.timedelta:
    """The wait after `attempts` failed attempts: SCHEDULER_ALERT_RETRY_SECONDS, doubled
    after each, at most MAX_RETRY_SECONDS."""
    doublings = min(max(attempts - 1, 0), 30)
    seconds = app_settings.SCHEDULER_ALERT_RETRY_SECONDS * 2**doublings
    return dt.timedelta(seconds=min(seconds, MAX_RETRY_SECONDS))


def _is_task_alert(alert: Alert) -> bool:
    """Counted by the storm control: an alert of a task (not a system or test one)."""
    return alert.kind != AlertKind.TEST and (
        alert.task_id is not None or bool(alert.task_name)
    )


def _channel_keys(due: QuerySet[AlertDelivery], limit: int) -> list[Q]:
    """One filter per channel with due deliveries: an admin channel, or (kind, target)."""
    channel_ids = (
        due.filter(channel__isnull=False)
        .order_by()
        .values_list("channel_id", flat=True)
        .distinct()[:limit]
    )
    pairs = (
        due.filter(channel__isnull=True)
        .order_by()
        .values_list("channel_kind", "target")
        .distinct()[:limit]
    )
    return [Q(channel_id=pk) for pk in channel_ids] + [
        Q(channel__isnull=True, channel_kind=kind, target=target)
        for kind, target in pairs
    ]


def _route(delivery: AlertDelivery) -> Route:
    default_timeout = app_settings.SCHEDULER_ALERT_TIMEOUT_SECONDS
    channel = delivery.channel
    if channel is not None:
        timeout = channel.timeout_seconds
        return Route(
            kind=channel.kind,
            target=channel.target,
            secret=channel.secret,
            timeout=timeout if timeout and timeout > 0 else default_timeout,
            channel=channel,
        )
    settings_urls = {url.strip() for url in app_settings.SCHEDULER_ALERT_WEBHOOK_URLS}
    signed = (
        delivery.channel_kind == ChannelKind.WEBHOOK
        and delivery.target in settings_urls
    )
    return Route(
        kind=delivery.channel_kind,
        target=delivery.target,
        secret=app_settings.SCHEDULER_ALERT_WEBHOOK_SECRET if signed else "",
        timeout=default_timeout,
    )


def alerts_deliver(*, now: dt.datetime | None = None, limit: int = 100) -> int:
    """One pass of the sender: send the due deliveries; return how many were delivered.

    Each delivery is taken by a conditional update before it is sent, so two
    senders never send one. A channel's failure (bad URL, refused connection, an
    answer not 2xx, a timeout, an SMTP error) is a failed `AlertAttempt` and a retry
    later, never an exception; database errors propagate. Each channel gets its
    share of `limit`, so one with a backlog does not hold up the others.
    """
    now = now or timezone.now()
    clock = _Clock(now)
    due = AlertDelivery.objects.filter(_due(now))
    keys = _channel_keys(due, limit)
    if not keys:
        return 0
    share = max(1, math.ceil(limit / len(keys)))
    delivered = 0
    for key in keys:
        rows = list(
            due.filter(key)
            .select_related("alert__execution", "channel")
            .order_by("next_attempt_at", "id")[:share]
        )
        if rows:
            delivered += _deliver_to_channel(key, rows, now=now, clock=clock)
    return delivered


def _deliver_to_channel(
    key: Q,
    rows: list[AlertDelivery],
    *,
    now: dt.datetime,
    clock: Callable[[], dt.datetime],
) -> int:
    """Send one channel's due deliveries: one by one up to the storm limit, then a summary."""
    route = _route(rows[0])
    if route.channel is None and (route.kind, route.target) not in {
        (each.kind, each.target) for each in settings_destinations()
    }:
        # Its channel was deleted (maybe for a wrong or leaked URL): send it nothing.
        _give_up(
            rows,
            _(
                "Its channel was deleted: not sent. Alerts go to the channels there "
                "are now."
            ),
            now=now,
        )
        return 0
    if route.channel is not None and not route.channel.enabled:
        # A channel switched off is not written to, but for the admin's test alert.
        refused = [each for each in rows if each.alert.kind != AlertKind.TEST]
        _give_up(
            refused,
            _("The channel “%(name)s” is disabled: not sent. Enable it to send again.")
            % {"name": route.channel.name},
            now=now,
        )
        rows = [each for each in rows if each.alert.kind == AlertKind.TEST]
    task_rows = [each for each in rows if _is_task_alert(each.alert)]
    recent = AlertDelivery.objects.filter(
        key, status=DeliveryStatus.SENT, sent_at__gt=clock() - STORM_WINDOW
    )
    sent_alone = (
        recent.filter(summary_size=0)
        .exclude(alert__kind=AlertKind.TEST)
        .filter(Q(alert__task__isnull=False) | ~Q(alert__task_name=""))
        .count()
        if task_rows
        else 0
    )
    allowance = max(0, app_settings.SCHEDULER_ALERT_SUMMARY_AFTER - sent_alone)
    summarised = {each.pk for each in task_rows[allowance:]}
    delivered = 0
    for delivery in rows:
        if delivery.pk in summarised or not _claim(delivery, route, now, clock()):
            continue
        outcome = _send(route, [delivery], summary=False)
        _record([delivery], outcome, route, at=clock(), summary_size=0)
        if not outcome.ok:
            # The channel is failing: its other deliveries wait for the next pass.
            return delivered
        delivered += 1
    rest = [each for each in task_rows if each.pk in summarised]
    if not rest:
        return delivered
    last_summary = recent.filter(summary_size__gt=0).aggregate(last=Max("sent_at"))
    if last_summary["last"] is not None:
        # One summary a window: the rest go in the next one.
        _postpone(rest, until=last_summary["last"] + STORM_WINDOW, now=now)
        return delivered
    # One summary for all of them: every task alert due to this channel, not only
    # this pass's share (an outage changes every task at once).
    rest += list(
        AlertDelivery.objects.filter(_due(now))
        .filter(key)
        .exclude(pk__in=[each.pk for each in rows])
        .exclude(alert__kind=AlertKind.TEST)
        .filter(Q(alert__task__isnull=False) | ~Q(alert__task_name=""))
        .select_related("alert__execution", "channel")
        .order_by("next_attempt_at", "id")
    )
    claimed = [each for each in rest if _claim(each, route, now, clock())]
    if not claimed:
        return delivered
    outcome = _send(route, claimed, summary=True)
    _record(claimed, outcome, route, at=clock(), summary_size=len(claimed))
    return delivered + (len(claimed) if outcome.ok else 0)


def _claim(
    delivery: AlertDelivery, route: Route, now: dt.datetime, at: dt.datetime
) -> bool:
    """Take `delivery` for this sender (-> sending, with a lease); False: another has it."""
    lease_until = at + dt.timedelta(seconds=route.timeout) + LEASE_MARGIN
    taken = (
        AlertDelivery.objects.filter(pk=delivery.pk)
        .filter(_due(now))
        .update(status=DeliveryStatus.SENDING, lease_until=lease_until)
    )
    return taken == 1


def _give_up(rows: Sequence[AlertDelivery], error: str, *, now: dt.datetime) -> None:
    if rows:
        AlertDelivery.objects.filter(pk__in=[each.pk for each in rows]).filter(
            _due(now)
        ).update(status=DeliveryStatus.FAILED, lease_until=None, last_error=error)


def _postpone(
    rows: Sequence[AlertDelivery], *, until: dt.datetime, now: dt.datetime
) -> None:
    AlertDelivery.objects.filter(pk__in=[each.pk for each in rows]).filter(
        _due(now)
    ).update(status=DeliveryStatus.PENDING, lease_until=None, next_attempt_at=until)


def _addresses(target: str) -> list[str]:
    return [each.strip() for each in target.split(",") if each.strip()]


def _send(
    route: Route, deliveries: Sequence[AlertDelivery], *, summary: bool
) -> Outcome:
    """One message to `route` for `deliveries`: each alert on its own, or a summary."""
    alerts = [each.alert for each in deliveries]
    event = "summary" if summary else "alert"
    ids = ",".join(str(each.pk) for each in deliveries)
    try:
        if route.kind == ChannelKind.EMAIL:
            subject, body = messages.email_message(alerts, summary=summary)
            return mail_send(
                subject=subject,
                body=body,
                to=_addresses(route.target),
                timeout=route.timeout,
                headers={
                    "Auto-Submitted": "auto-generated",
                    "X-Scheduler-Event": event,
                    "X-Scheduler-Delivery": ids,
                },
            )
        if route.kind == ChannelKind.SLACK:
            payload = messages.slack_payload(alerts, summary=summary)
            return _post(route, payload, event=event, ids=ids, secret="")
        if route.kind == ChannelKind.WEBHOOK:
            payload = messages.webhook_payload(alerts, summary=summary)
            return _post(route, payload, event=event, ids=ids, secret=route.secret)
        return Outcome(
            ok=False,
            error=_("Unknown channel kind “%(kind)s”: make it email, webhook or slack.")
            % {"kind": route.kind},
        )
    except DatabaseError:
        raise
    except Exception as exc:
        # The boundary of a channel: whatever its backend raises is a failed attempt.
        logger.exception("Sending alert deliveries %s to %s failed", ids, _shown(route))
        return Outcome(
            ok=False,
            error=_("Sending to %(target)s failed: %(error)s")
            % {"target": _shown(route), "error": "%s: %s" % (type(exc).__name__, exc)},
        )


def _shown(route: Route) -> str:
    if route.kind == ChannelKind.EMAIL:
        return route.target
    return shown_url(route.target, secret_path=route.kind == ChannelKind.SLACK)


def _post(
    route: Route, payload: dict[str, Any], *, event: str, ids: str, secret: str
) -> Outcome:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "X-Scheduler-Event": event,
        "X-Scheduler-Delivery": ids,
    }
    if secret:
        digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        headers["X-Scheduler-Signature"] = "sha256=" + digest
    return http_request(
        "POST",
        route.target,
        timeout=route.timeout,
        body=body,
        headers=headers,
        shown=_shown(route),
    )


def _record(
    deliveries: Sequence[AlertDelivery],
    outcome: Outcome,
    route: Route,
    *,
    at: dt.datetime,
    summary_size: int,
) -> None:
    """Write the attempt at each of `deliveries` and where each goes from there."""
    max_attempts = app_settings.SCHEDULER_ALERT_MAX_ATTEMPTS
    updates: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    for delivery in deliveries:
        attempts = delivery.attempts + 1
        fields: dict[str, Any] = {
            "attempts": attempts,
            "lease_until": None,
            "target": route.target,
        }
        if outcome.ok:
            fields.update(
                status=DeliveryStatus.SENT,
                sent_at=at,
                last_error="",
                summary_size=summary_size,
            )
        elif attempts >= max_attempts:
            fields.update(status=DeliveryStatus.FAILED, last_error=outcome.error)
        else:
            fields.update(
                status=DeliveryStatus.PENDING,
                next_attempt_at=at + retry_delay(attempts),
                last_error=outcome.error,
            )
        updates.setdefault(tuple(sorted(fields.items())), []).append(delivery.pk)
    with transaction.atomic():
        AlertAttempt.objects.bulk_create(
            AlertAttempt(
                delivery=delivery,
                at=at,
                ok=outcome.ok,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
            for delivery in deliveries
        )
        for items, pks in updates.items():
            AlertDelivery.objects.filter(
                pk__in=pks, status=DeliveryStatus.SENDING
            ).update(**dict(items))
    _log(deliveries, outcome, route, summary_size=summary_size)


def _log(
    deliveries: Sequence[AlertDelivery],
    outcome: Outcome,
    route: Route,
    *,
    summary_size: int,
) -> None:
    ids = ",".join(str(each.pk) for each in deliveries)
    if outcome.ok and summary_size:
        logger.info("Alert deliveries %s sent to %s as one summary", ids, _shown(route))
    elif outcome.ok:
        logger.info("Alert delivery %s sent to %s", ids, _shown(route))
    else:
        attempts = max(each.attempts for each in deliveries) + 1
        given_up = attempts >= app_settings.SCHEDULER_ALERT_MAX_ATTEMPTS
        logger.warning(
            "Alert delivery %s, attempt %d of %d, failed%s: %s",
            ids,
            attempts,
            app_settings.SCHEDULER_ALERT_MAX_ATTEMPTS,
            " (given up)" if given_up else "",
            outcome.error,
        )


# The heartbeat ping -------------------------------------------------------------------


class _PingStreak:
    """Whether the last heartbeat ping of this process failed (to warn once a streak)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failing = False


_PING_STREAK = _PingStreak()


def _fail_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))


def heartbeat_ping(*, degraded: bool, now: dt.datetime | None = None) -> bool:
    """GET SCHEDULER_HEARTBEAT_PING_URL (+"/fail" when `degraded`); whether it answered 2xx.

    Healthchecks.io-compatible dead man's switch. Never raises; a failure is logged
    once per streak of failures, and once when pings work again. An empty URL
    sends nothing and returns False. `now` is for the callers' symmetry: a ping
    carries no time.
    """
    url = app_settings.SCHEDULER_HEARTBEAT_PING_URL.strip()
    if not url:
        return False
    if degraded:
        url = _fail_url(url)
    timeout = min(app_settings.SCHEDULER_ALERT_TIMEOUT_SECONDS, PING_TIMEOUT_SECONDS)
    # A ping URL's path is its key (Healthchecks' UUID): logs show the host only.
    shown = shown_url(url, secret_path=True)
    try:
        outcome = http_request("GET", url, timeout=timeout, shown=shown)
    except Exception as exc:
        # A ping is never worth the caller's loop: whatever it raises is a failure.
        outcome = Outcome(ok=False, error="%s: %s" % (type(exc).__name__, exc))
    with _PING_STREAK.lock:
        was_failing = _PING_STREAK.failing
        _PING_STREAK.failing = not outcome.ok
    if not outcome.ok and not was_failing:
        logger.warning(
            "The heartbeat ping failed (not logged again until it works): %s",
            outcome.error,
        )
    elif outcome.ok and was_failing:
        logger.warning("The heartbeat ping to %s works again", shown)
    return outcome.ok


# History ----------------------------------------------------------------------------


def alerts_cleanup(
    *, days: int | None = None, batch_size: int = 1000, now: dt.datetime | None = None
) -> int:
    """Delete alerts (their deliveries and attempts with them) older than `days`
    (SCHEDULER_HISTORY_DAYS), in batches; return how many alerts were deleted.

    Each batch is its own short statement, as in `executions_cleanup`.
    """
    days = app_settings.SCHEDULER_HISTORY_DAYS if days is None else days
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    old = Alert.objects.filter(created_at__lt=cutoff)
    deleted = 0
    while True:
        batch = list(old.order_by().values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        _, by_model = Alert.objects.filter(pk__in=batch).delete()
        deleted += by_model.get(Alert._meta.label, 0)
