"""Delivering the alerts' outbox: webhooks, Slack, e-mail, retries, storms, the heartbeat ping.

Against real servers on loopback (tests/receivers.py): an HTTP receiver that can
answer errors, hang or be down, and for one test a real SMTP server. Time is
stepped by passing `now` to `alerts_deliver`, never by sleeping.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import logging
import threading
import time
from typing import Any

import pytest
from django.core import mail
from django.db import connections

from scheduler_app.choices import AlertKind, ChannelKind, DeliveryStatus
from scheduler_app.models import Alert, AlertAttempt, AlertChannel, AlertDelivery
from scheduler_app.services import (
    Destination,
    alert_test,
    alerts_cleanup,
    alerts_deliver,
    alerts_record,
    heartbeat_ping,
)
from scheduler_app.services import alerts as alerts_module
from scheduler_app.services.alert_transports import shown_url
from scheduler_app.services.alerts import retry_delay
from tests.factories import make_execution, make_task
from tests.receivers import SmtpReceiver, WebhookReceiver, free_port

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
SITE = "https://jobs.example.com"
_names = itertools.count(1)


@pytest.fixture(autouse=True)
def _alert_settings(settings: Any) -> None:
    settings.SCHEDULER_SITE_URL = SITE
    settings.SCHEDULER_ALERT_RETRY_SECONDS = 5.0
    settings.SCHEDULER_ALERT_MAX_ATTEMPTS = 12
    settings.SCHEDULER_ALERT_SUMMARY_AFTER = 5
    settings.SCHEDULER_ALERT_TIMEOUT_SECONDS = 5.0
    settings.SCHEDULER_ALERT_EMAILS = ()
    settings.SCHEDULER_ALERT_WEBHOOK_URLS = ()
    settings.SCHEDULER_ALERT_WEBHOOK_SECRET = ""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "scheduler@example.com"


def make_channel(**overrides: Any) -> AlertChannel:
    fields: dict[str, Any] = {
        "name": "channel-%d" % next(_names),
        "kind": ChannelKind.WEBHOOK,
        "is_default": False,
    }
    fields.update(overrides)
    return AlertChannel.objects.create(**fields)


def to(channel: AlertChannel) -> list[Destination]:
    return [Destination(channel.kind, channel.target, channel)]


def failing_alert(
    channel: AlertChannel, *, now: dt.datetime = T0, **over: Any
) -> Alert:
    task = over.pop("task", None) or make_task(name="nightly-report-%d" % next(_names))
    fields: dict[str, Any] = {
        "kind": AlertKind.FAILING,
        "message": "%s is failing: 1 failed run in a row." % task.name,
        "task": task,
        "state": "failing",
        "previous_state": "up",
        "error": "ValueError: no data",
    }
    fields.update(over)
    return alerts_record(destinations=to(channel), now=now, **fields)


def delivery_of(alert: Alert) -> AlertDelivery:
    return AlertDelivery.objects.get(alert=alert)


def attempts_of(delivery: AlertDelivery) -> list[tuple[bool, int | None]]:
    return [
        (each.ok, each.status_code)
        for each in AlertAttempt.objects.filter(delivery=delivery).order_by("id")
    ]


# Webhooks ----------------------------------------------------------------------------


def test_a_webhook_alert_is_posted_as_signed_json_and_recorded_sent(
    webhook_receiver: WebhookReceiver,
) -> None:
    channel = make_channel(target=webhook_receiver.url("/hook"), secret="s3cret")
    task = make_task(name="nightly-report")
    execution = make_execution(task, status="failed")
    alert = failing_alert(channel, task=task, execution=execution, details={"n": 1})

    assert alerts_deliver(now=T0) == 1

    [request] = webhook_receiver.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Scheduler-Event"] == "alert"
    delivery = delivery_of(alert)
    assert request.headers["X-Scheduler-Delivery"] == str(delivery.pk)
    assert request.headers["User-Agent"].startswith("scheduler_app-alerts/")
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Scheduler-Signature"] == "sha256=" + expected
    body = request.json()
    assert body == {
        "event": "alert",
        "id": alert.pk,
        "kind": "failing",
        "message": alert.message,
        "task": {
            "id": task.pk,
            "name": "nightly-report",
            "url": "%s/admin/scheduler_app/scheduledtask/%d/change/" % (SITE, task.pk),
        },
        "state": "failing",
        "previous_state": "up",
        "error": "ValueError: no data",
        "execution": {
            "id": execution.pk,
            "status": "failed",
            "url": "%s/admin/scheduler_app/taskexecution/%d/change/"
            % (SITE, execution.pk),
        },
        "details": {"n": 1},
        "created_at": T0.isoformat(),
    }
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.attempts == 1
    assert delivery.sent_at is not None and delivery.sent_at >= T0
    assert delivery.lease_until is None
    assert delivery.summary_size == 0
    assert attempts_of(delivery) == [(True, 200)]


def test_links_are_paths_when_the_site_url_is_empty(
    settings: Any, webhook_receiver: WebhookReceiver
) -> None:
    settings.SCHEDULER_SITE_URL = ""
    channel = make_channel(target=webhook_receiver.url())
    alert = failing_alert(channel)

    alerts_deliver(now=T0)

    task_url = webhook_receiver.requests[0].json()["task"]["url"]
    assert task_url == "/admin/scheduler_app/scheduledtask/%d/change/" % alert.task_id


def test_an_unsigned_channel_sends_no_signature(
    webhook_receiver: WebhookReceiver,
) -> None:
    failing_alert(make_channel(target=webhook_receiver.url()))

    alerts_deliver(now=T0)

    assert webhook_receiver.requests[0].header("X-Scheduler-Signature") is None


def test_an_error_answer_fails_the_attempt_and_it_is_retried_after_the_backoff(
    webhook_receiver: WebhookReceiver,
) -> None:
    webhook_receiver.answer(500, times=1)
    channel = make_channel(target=webhook_receiver.url("/hook"))
    delivery = delivery_of(failing_alert(channel))

    assert alerts_deliver(now=T0) == 0

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert delivery.last_error.startswith(
        "POST %s answered 500 Internal Server Error" % webhook_receiver.url("/hook")
    )
    assert delivery.next_attempt_at >= T0 + dt.timedelta(seconds=5)
    assert delivery.next_attempt_at < T0 + dt.timedelta(seconds=6)
    [attempt] = AlertAttempt.objects.filter(delivery=delivery)
    assert (attempt.ok, attempt.status_code) == (False, 500)
    assert "answered 500" in attempt.error

    # Not due yet: nothing is sent.
    assert alerts_deliver(now=T0 + dt.timedelta(seconds=4)) == 0
    assert len(webhook_receiver.requests) == 1

    assert alerts_deliver(now=delivery.next_attempt_at) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.attempts == 2
    assert delivery.last_error == ""
    assert attempts_of(delivery) == [(False, 500), (True, 200)]
    assert len(webhook_receiver.requests) == 2


def test_a_redirect_is_not_a_delivery(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.answer(302)
    delivery = delivery_of(failing_alert(make_channel(target=webhook_receiver.url())))

    alerts_deliver(now=T0)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert "answered 302" in delivery.last_error
    assert len(webhook_receiver.requests) == 1


def test_the_wait_doubles_after_each_failed_attempt_up_to_five_minutes(
    settings: Any,
) -> None:
    settings.SCHEDULER_ALERT_RETRY_SECONDS = 5.0
    waits = [retry_delay(attempts).total_seconds() for attempts in range(1, 10)]
    assert waits == [5, 10, 20, 40, 80, 160, 300, 300, 300]


def test_a_receiver_that_is_down_is_a_refused_connection_then_delivered_once_back(
    webhook_receiver: WebhookReceiver,
) -> None:
    url = webhook_receiver.url("/hook")
    delivery = delivery_of(failing_alert(make_channel(target=url)))
    webhook_receiver.stop()

    assert alerts_deliver(now=T0) == 0

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_error == "POST %s: connection refused (is it up?)" % url
    assert attempts_of(delivery) == [(False, None)]

    webhook_receiver.start()
    assert webhook_receiver.url("/hook") == url
    assert alerts_deliver(now=delivery.next_attempt_at) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert attempts_of(delivery) == [(False, None), (True, 200)]


def test_a_receiver_that_does_not_answer_fails_the_attempt_at_the_timeout(
    webhook_receiver: WebhookReceiver,
) -> None:
    webhook_receiver.hang()
    url = webhook_receiver.url("/slow")
    delivery = delivery_of(failing_alert(make_channel(target=url, timeout_seconds=0.5)))

    started = time.monotonic()
    assert alerts_deliver(now=T0) == 0
    took = time.monotonic() - started

    assert took < 2.5
    delivery.refresh_from_db()
    assert delivery.last_error == "POST %s did not answer within 0.5 s" % url
    [attempt] = AlertAttempt.objects.filter(delivery=delivery)
    assert not attempt.ok
    assert 400 <= attempt.duration_ms < 2500
    webhook_receiver.release()


def test_a_delivery_is_given_up_after_the_most_attempts(
    settings: Any, webhook_receiver: WebhookReceiver
) -> None:
    settings.SCHEDULER_ALERT_MAX_ATTEMPTS = 3
    webhook_receiver.answer(503)
    delivery = delivery_of(failing_alert(make_channel(target=webhook_receiver.url())))

    now = T0
    for _ in range(3):
        assert alerts_deliver(now=now) == 0
        delivery.refresh_from_db()
        now = delivery.next_attempt_at

    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == 3
    assert "answered 503" in delivery.last_error
    assert alerts_deliver(now=now + dt.timedelta(hours=1)) == 0
    assert len(webhook_receiver.requests) == 3


def test_a_url_that_is_not_http_fails_the_attempt_with_what_to_do() -> None:
    delivery = delivery_of(failing_alert(make_channel(target="file:///etc/passwd")))

    assert alerts_deliver(now=T0) == 0

    delivery.refresh_from_db()
    assert delivery.last_error == (
        "POST file:///etc/passwd: not an http:// or https:// URL; give one."
    )


def test_a_channel_that_fails_is_not_tried_again_in_the_same_pass(
    webhook_receiver: WebhookReceiver,
) -> None:
    webhook_receiver.stop()
    channel = make_channel(target=webhook_receiver.url())
    other = make_channel(target=webhook_receiver.url("/other"))
    first, second = failing_alert(channel), failing_alert(channel)
    failing_alert(other)

    alerts_deliver(now=T0)

    assert delivery_of(first).attempts == 1
    assert delivery_of(second).attempts == 0
    assert AlertDelivery.objects.filter(channel=other, attempts=1).count() == 1


def test_a_disabled_channel_gets_nothing_but_its_test_alert(
    webhook_receiver: WebhookReceiver,
) -> None:
    channel = make_channel(target=webhook_receiver.url(), enabled=False)
    refused = delivery_of(failing_alert(channel))
    test = delivery_of(alert_test(channel=channel, now=T0))

    assert alerts_deliver(now=T0) == 1

    refused.refresh_from_db()
    assert refused.status == DeliveryStatus.FAILED
    assert "is disabled" in refused.last_error
    test.refresh_from_db()
    assert test.status == DeliveryStatus.SENT
    assert [each.json()["kind"] for each in webhook_receiver.requests] == ["test"]


def test_a_channel_deleted_since_gets_nothing_more(
    webhook_receiver: WebhookReceiver,
) -> None:
    """Deleting a channel (a wrong or leaked URL) stops what was on its way to it."""
    channel = make_channel(name="gone", target=webhook_receiver.url("/kept"))
    delivery = delivery_of(failing_alert(channel))
    channel.delete()

    assert alerts_deliver(now=T0) == 0

    assert webhook_receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == (
        "Its channel was deleted: not sent. Alerts go to the channels there are now."
    )


# Senders -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_senders_at_once_send_each_delivery_once(
    webhook_receiver: WebhookReceiver,
) -> None:
    # Slow answers keep both senders busy on the same deliveries at the same time.
    webhook_receiver.answer(200, delay=0.05)
    channel = make_channel(target=webhook_receiver.url())
    for _ in range(6):
        alerts_record(
            kind=AlertKind.LEADER_CHANGED,
            message="system",
            destinations=to(channel),
            now=T0,
        )
    start = threading.Barrier(2)
    delivered: list[int] = []

    def sender() -> None:
        try:
            start.wait(timeout=5)
            delivered.append(alerts_deliver(now=T0))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sum(delivered) == 6
    ids = [each.header("X-Scheduler-Delivery") for each in webhook_receiver.requests]
    assert sorted(ids) == sorted({str(each.pk) for each in AlertDelivery.objects.all()})
    assert AlertAttempt.objects.count() == 6
    assert set(AlertDelivery.objects.values_list("status", flat=True)) == {"sent"}


def test_a_delivery_held_by_a_sender_that_died_is_sent_once_its_lease_is_over(
    webhook_receiver: WebhookReceiver,
) -> None:
    delivery = delivery_of(failing_alert(make_channel(target=webhook_receiver.url())))
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING, lease_until=T0 + dt.timedelta(seconds=40)
    )

    assert alerts_deliver(now=T0 + dt.timedelta(seconds=39)) == 0
    assert webhook_receiver.requests == []

    assert alerts_deliver(now=T0 + dt.timedelta(seconds=41)) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.lease_until is None


def test_a_claimed_delivery_is_leased_for_the_timeout_and_a_margin(
    webhook_receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    leases: list[Any] = []
    send = alerts_module._send

    def spy(route: Any, deliveries: Any, **kwargs: Any) -> Any:
        leases.extend(
            AlertDelivery.objects.filter(pk__in=[d.pk for d in deliveries]).values_list(
                "status", "lease_until"
            )
        )
        return send(route, deliveries, **kwargs)

    monkeypatch.setattr(alerts_module, "_send", spy)
    failing_alert(make_channel(target=webhook_receiver.url(), timeout_seconds=7))

    alerts_deliver(now=T0)

    [(status, lease_until)] = leases
    assert status == DeliveryStatus.SENDING
    assert T0 + dt.timedelta(seconds=37) <= lease_until < T0 + dt.timedelta(seconds=38)


def test_each_channel_gets_its_share_of_a_pass(
    webhook_receiver: WebhookReceiver,
) -> None:
    busy = make_channel(target=webhook_receiver.url("/busy"))
    quiet = make_channel(target=webhook_receiver.url("/quiet"))
    for _ in range(5):
        failing_alert(busy)
    failing_alert(quiet)

    assert alerts_deliver(now=T0, limit=2) == 2

    paths = sorted(each.path for each in webhook_receiver.requests)
    assert paths == ["/busy", "/quiet"]


# Storms ------------------------------------------------------------------------------


def test_a_storm_of_task_alerts_goes_out_as_one_summary_after_the_first_few(
    webhook_receiver: WebhookReceiver,
) -> None:
    channel = make_channel(target=webhook_receiver.url(), secret="k")
    alerts = [failing_alert(channel) for _ in range(40)]

    assert alerts_deliver(now=T0) == 40

    requests = webhook_receiver.requests
    assert len(requests) == 5 + 1
    events = [each.json()["event"] for each in requests]
    assert events == ["alert"] * 5 + ["summary"]
    summary = requests[-1].json()
    assert summary["count"] == 35
    assert [each["id"] for each in summary["alerts"]] == [a.pk for a in alerts[5:]]
    assert summary["alerts"][0]["task"]["url"].startswith(SITE + "/admin/")
    assert "35 alerts" in summary["message"]
    assert requests[-1].headers["X-Scheduler-Event"] == "summary"
    expected = hmac.new(b"k", requests[-1].body, hashlib.sha256).hexdigest()
    assert requests[-1].headers["X-Scheduler-Signature"] == "sha256=" + expected
    deliveries = AlertDelivery.objects.order_by("id")
    assert {each.status for each in deliveries} == {DeliveryStatus.SENT}
    assert [each.summary_size for each in deliveries] == [0] * 5 + [35] * 35
    assert AlertAttempt.objects.filter(ok=True).count() == 40


def test_a_storm_larger_than_a_pass_still_goes_out_as_one_summary(
    webhook_receiver: WebhookReceiver,
) -> None:
    """300 tasks changed at once: 5 alerts and one summary, not a summary a minute."""
    channel = make_channel(target=webhook_receiver.url())
    for _ in range(300):
        failing_alert(channel)

    assert alerts_deliver(now=T0, limit=100) == 300

    events = [each.json()["event"] for each in webhook_receiver.requests]
    assert events == ["alert"] * 5 + ["summary"]
    assert webhook_receiver.requests[-1].json()["count"] == 295
    assert not AlertDelivery.objects.exclude(status=DeliveryStatus.SENT).exists()


def test_during_a_storm_system_and_test_alerts_go_on_their_own(
    settings: Any, webhook_receiver: WebhookReceiver
) -> None:
    settings.SCHEDULER_ALERT_SUMMARY_AFTER = 1
    channel = make_channel(target=webhook_receiver.url())
    for _ in range(3):
        failing_alert(channel)
    alerts_record(
        kind=AlertKind.TAKEOVER, message="took over", destinations=to(channel), now=T0
    )
    alert_test(channel=channel, now=T0)

    assert alerts_deliver(now=T0) == 5

    kinds = sorted(
        each.json().get("kind") or "summary:%d" % each.json()["count"]
        for each in webhook_receiver.requests
    )
    assert kinds == ["failing", "summary:2", "takeover", "test"]


def test_after_a_summary_the_next_alerts_of_the_minute_wait_for_the_next_one(
    webhook_receiver: WebhookReceiver,
) -> None:
    channel = make_channel(target=webhook_receiver.url())
    for _ in range(8):
        failing_alert(channel)
    assert alerts_deliver(now=T0) == 8
    assert len(webhook_receiver.requests) == 6

    later = T0 + dt.timedelta(seconds=10)
    late = [failing_alert(channel, now=later) for _ in range(2)]
    assert alerts_deliver(now=later) == 0
    assert len(webhook_receiver.requests) == 6
    waiting = delivery_of(late[0])
    assert waiting.status == DeliveryStatus.PENDING
    assert waiting.attempts == 0
    assert T0 + dt.timedelta(seconds=60) <= waiting.next_attempt_at
    assert waiting.next_attempt_at < T0 + dt.timedelta(seconds=61)

    # A minute on, the channel's window is clear: one by one again.
    assert alerts_deliver(now=waiting.next_attempt_at) == 2
    assert [each.json()["event"] for each in webhook_receiver.requests[6:]] == [
        "alert",
        "alert",
    ]


def test_storms_are_counted_per_channel(webhook_receiver: WebhookReceiver) -> None:
    one = make_channel(target=webhook_receiver.url("/one"))
    two = make_channel(target=webhook_receiver.url("/two"))
    for _ in range(4):
        failing_alert(one)
        failing_alert(two)

    assert alerts_deliver(now=T0) == 8

    assert len(webhook_receiver.requests) == 8
    assert not AlertDelivery.objects.filter(summary_size__gt=0).exists()


# Slack -------------------------------------------------------------------------------


def test_a_slack_channel_gets_text_and_mrkdwn_blocks(
    webhook_receiver: WebhookReceiver,
) -> None:
    channel = make_channel(
        kind=ChannelKind.SLACK, target=webhook_receiver.url("/slack")
    )
    task = make_task(name="nightly-report")
    alert = failing_alert(channel, task=task, message="nightly-report is <failing>")

    assert alerts_deliver(now=T0) == 1

    [request] = webhook_receiver.requests
    assert request.header("X-Scheduler-Signature") is None
    body = request.json()
    assert body["text"].startswith("[scheduler] nightly-report is failing")
    [block] = body["blocks"]
    assert block["type"] == "section"
    assert block["text"]["type"] == "mrkdwn"
    text = block["text"]["text"]
    assert "nightly-report is &lt;failing&gt;" in text
    assert "```ValueError: no data```" in text
    link = "%s/admin/scheduler_app/scheduledtask/%d/change/" % (SITE, alert.task_id)
    assert "<%s|Open the task>" % link in text


def test_a_slack_error_quotes_the_answer_and_hides_the_urls_key(
    webhook_receiver: WebhookReceiver,
) -> None:
    webhook_receiver.answer(404, body=b"no_service")
    url = webhook_receiver.url("/services/T1/B2/the-secret-key")
    channel = make_channel(kind=ChannelKind.SLACK, target=url)
    delivery = delivery_of(failing_alert(channel))

    alerts_deliver(now=T0)

    delivery.refresh_from_db()
    assert delivery.last_error == (
        "POST %s answered 404 Not Found: no_service"
        % webhook_receiver.url("/services/T1/B2/…")
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@x.example/hook?token=1", "https://x.example/hook?…"),
        (
            "https://hooks.slack.com/services/T1/B2/key",
            "https://hooks.slack.com/services/T1/B2/…",
        ),
        ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
        ("http://[::1", "<invalid URL>"),
    ],
)
def test_urls_are_shown_without_their_secrets(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_a_slack_summary_lists_the_alerts(
    settings: Any, webhook_receiver: WebhookReceiver
) -> None:
    settings.SCHEDULER_ALERT_SUMMARY_AFTER = 1
    channel = make_channel(
        kind=ChannelKind.SLACK, target=webhook_receiver.url("/slack")
    )
    for _ in range(4):
        failing_alert(channel)

    assert alerts_deliver(now=T0) == 4

    summary = webhook_receiver.requests[-1].json()
    assert summary["text"].startswith("[scheduler] 3 alerts")
    listed = summary["blocks"][1]["text"]["text"]
    assert listed.count("• *Failing*") == 3


# E-mail ------------------------------------------------------------------------------


def test_an_email_alert_is_mailed_to_the_channels_addresses() -> None:
    channel = make_channel(
        kind=ChannelKind.EMAIL, target="ops@example.com, oncall@example.com"
    )
    task = make_task(name="nightly-report")
    execution = make_execution(task, status="failed")
    alert = failing_alert(channel, task=task, execution=execution)

    assert alerts_deliver(now=T0) == 1

    [message] = mail.outbox
    assert message.subject == "[scheduler] nightly-report is failing"
    assert message.to == ["ops@example.com", "oncall@example.com"]
    assert message.from_email == "scheduler@example.com"
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"
    assert alert.message in message.body
    assert "ValueError: no data" in message.body
    assert "Health: Up → Failing" in message.body
    assert (
        "%s/admin/scheduler_app/scheduledtask/%d/change/" % (SITE, task.pk)
        in message.body
    )
    assert (
        "%s/admin/scheduler_app/taskexecution/%d/change/" % (SITE, execution.pk)
        in message.body
    )
    assert delivery_of(alert).status == DeliveryStatus.SENT


def test_an_email_summary_counts_the_alerts_in_its_subject(settings: Any) -> None:
    settings.SCHEDULER_ALERT_SUMMARY_AFTER = 2
    channel = make_channel(kind=ChannelKind.EMAIL, target="ops@example.com")
    alerts = [failing_alert(channel) for _ in range(39)]

    assert alerts_deliver(now=T0) == 39

    assert len(mail.outbox) == 3
    summary = mail.outbox[-1]
    assert summary.subject == "[scheduler] 37 alerts"
    assert alerts[-1].task_name in summary.body
    assert summary.body.count("- [Failing] ") == 37


def test_an_email_through_a_real_smtp_server(settings: Any) -> None:
    with SmtpReceiver() as smtp:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = smtp.host
        settings.EMAIL_PORT = smtp.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        channel = make_channel(kind=ChannelKind.EMAIL, target="ops@example.com")
        alert = failing_alert(channel, task=make_task(name="nightly-report"))

        assert alerts_deliver(now=T0) == 1

    [message] = smtp.messages
    assert message["Subject"] == "[scheduler] nightly-report is failing"
    assert message["From"] == "scheduler@example.com"
    assert message["To"] == "ops@example.com"
    assert message["X-Scheduler-Delivery"] == str(delivery_of(alert).pk)
    assert alert.message in message.get_content()
    assert smtp.envelopes == [("scheduler@example.com", ["ops@example.com"])]


def test_a_mail_server_that_is_down_is_a_failed_attempt_naming_it(
    settings: Any,
) -> None:
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    channel = make_channel(kind=ChannelKind.EMAIL, target="ops@example.com")
    delivery = delivery_of(failing_alert(channel))

    assert alerts_deliver(now=T0) == 0

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_error == (
        "E-mail to ops@example.com: the mail server 127.0.0.1:%d refused the "
        "connection (is it up?)" % port
    )


def test_an_email_channel_without_an_address_fails_with_what_to_do() -> None:
    delivery = delivery_of(
        failing_alert(make_channel(kind=ChannelKind.EMAIL, target=" , "))
    )

    alerts_deliver(now=T0)

    delivery.refresh_from_db()
    assert "No e-mail address to send to" in delivery.last_error


# The settings' destinations ------------------------------------------------------------


def test_the_settings_addresses_and_urls_are_delivered_too(
    settings: Any, webhook_receiver: WebhookReceiver
) -> None:
    settings.SCHEDULER_ALERT_EMAILS = ("ops@example.com",)
    settings.SCHEDULER_ALERT_WEBHOOK_URLS = (webhook_receiver.url("/from-settings"),)
    settings.SCHEDULER_ALERT_WEBHOOK_SECRET = "settings-secret"
    alert = alerts_record(
        kind=AlertKind.SCHEDULER_DOWN,
        message="No scheduler heartbeat for 5 min",
        now=T0,
    )
    assert AlertDelivery.objects.filter(alert=alert, channel=None).count() == 2

    assert alerts_deliver(now=T0) == 2

    [request] = webhook_receiver.requests
    assert request.path == "/from-settings"
    assert request.json()["task"] is None
    expected = hmac.new(b"settings-secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Scheduler-Signature"] == "sha256=" + expected
    [message] = mail.outbox
    assert message.to == ["ops@example.com"]
    assert message.subject == "[scheduler] no scheduler heartbeat"


# The heartbeat ping ---------------------------------------------------------------------


@pytest.fixture
def _fresh_ping_streak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts_module, "_PING_STREAK", alerts_module._PingStreak())


@pytest.mark.usefixtures("_fresh_ping_streak")
def test_the_heartbeat_ping_gets_the_url_and_its_fail_path_when_degraded(
    settings: Any, webhook_receiver: WebhookReceiver
) -> None:
    settings.SCHEDULER_HEARTBEAT_PING_URL = webhook_receiver.url("/ping/abc")

    assert heartbeat_ping(degraded=False) is True
    assert heartbeat_ping(degraded=True) is True

    assert [(r.method, r.path) for r in webhook_receiver.requests] == [
        ("GET", "/ping/abc"),
        ("GET", "/ping/abc/fail"),
    ]


@pytest.mark.usefixtures("_fresh_ping_streak")
def test_a_failing_heartbeat_ping_is_logged_once_a_streak_and_never_raises(
    settings: Any, webhook_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    settings.SCHEDULER_HEARTBEAT_PING_URL = webhook_receiver.url("/ping/abc")
    webhook_receiver.stop()
    caplog.set_level(logging.WARNING, logger="scheduler_app.services.alerts")

    assert heartbeat_ping(degraded=False) is False
    assert heartbeat_ping(degraded=False) is False
    webhook_receiver.start()
    assert heartbeat_ping(degraded=False) is True
    assert heartbeat_ping(degraded=False) is True

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "heartbeat ping failed" in messages[0]
    assert "connection refused" in messages[0]
    assert "works again" in messages[1]


def test_no_heartbeat_ping_without_a_url(
    settings: Any, webhook_receiver: WebhookReceiver
) -> None:
    settings.SCHEDULER_HEARTBEAT_PING_URL = ""

    assert heartbeat_ping(degraded=True) is False
    assert webhook_receiver.requests == []


# History ----------------------------------------------------------------------------


def test_old_alerts_are_deleted_with_their_deliveries_and_attempts(
    webhook_receiver: WebhookReceiver,
) -> None:
    channel = make_channel(target=webhook_receiver.url())
    old = T0 - dt.timedelta(days=31)
    for _ in range(3):
        failing_alert(channel, now=old)
    alerts_deliver(now=old)
    kept = failing_alert(channel, now=T0 - dt.timedelta(days=29))
    assert AlertAttempt.objects.count() == 3

    assert alerts_cleanup(days=30, batch_size=2, now=T0) == 3

    assert list(Alert.objects.all()) == [kept]
    assert AlertDelivery.objects.count() == 1
    assert AlertAttempt.objects.count() == 0


def test_alert_emails_to_a_backend_that_delivers_nowhere_are_warned_of(
    settings: Any,
) -> None:
    from scheduler_app.checks import check_scheduler_settings

    settings.SCHEDULER_ALERT_EMAILS = ("ops@example.com",)
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert "scheduler_app.W003" in {each.id for each in check_scheduler_settings()}

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert "scheduler_app.W003" not in {each.id for each in check_scheduler_settings()}
