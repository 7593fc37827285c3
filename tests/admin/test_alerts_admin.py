"""The alert admin: channels (secret kept, test alert), alerts with deliveries and attempts."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from scheduler_app.choices import AlertKind, DeliveryStatus
from scheduler_app.models import Alert, AlertAttempt, AlertChannel, AlertDelivery
from tests.admin.helpers import HOSTILE, HOSTILE_ESCAPED, sent_messages
from tests.factories import make_task, make_user

pytestmark = pytest.mark.django_db

CHANNEL_ADD = reverse("admin:scheduler_app_alertchannel_add")
CHANNELS = reverse("admin:scheduler_app_alertchannel_changelist")
ALERTS = reverse("admin:scheduler_app_alert_changelist")


def channel_url(channel: AlertChannel, view: str = "change") -> str:
    return reverse("admin:scheduler_app_alertchannel_%s" % view, args=[channel.pk])


def alert_url(alert: Alert) -> str:
    return reverse("admin:scheduler_app_alert_change", args=[alert.pk])


def make_channel(**fields: Any) -> AlertChannel:
    values: dict[str, Any] = {
        "name": "ops-hook",
        "kind": "webhook",
        "target": "https://alerts.example.com/hook",
    }
    values.update(fields)
    return AlertChannel.objects.create(**values)


def channel_form(**fields: Any) -> dict[str, Any]:
    data = {
        "name": "ops-hook",
        "kind": "webhook",
        "target": "https://alerts.example.com/hook",
        "secret": "",
        "timeout_seconds": "",
        "is_default": "on",
        "enabled": "on",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def test_a_channel_is_added_with_its_secret_which_is_never_shown_back(
    admin_client: Client,
) -> None:
    response = admin_client.post(CHANNEL_ADD, channel_form(secret="s3cr3t-key"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    channel = AlertChannel.objects.get(name="ops-hook")
    assert channel.secret == "s3cr3t-key"
    page = admin_client.get(channel_url(channel)).content.decode()
    assert "s3cr3t-key" not in page
    assert 'type="password"' in page
    assert "Leave this blank to keep it" in page


def test_a_blank_secret_on_change_keeps_the_stored_one_and_remove_clears_it(
    admin_client: Client,
) -> None:
    channel = make_channel(secret="kept")

    response = admin_client.post(channel_url(channel), channel_form(name="renamed"))
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.secret) == ("renamed", "kept")

    admin_client.post(channel_url(channel), channel_form(clear_secret="on"))
    channel.refresh_from_db()
    assert channel.secret == ""


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"kind": "email", "target": "ops@example.com, nope"}, "target", "“nope”"),
        ({"target": "ftp://example.com/x"}, "target", "http"),
        ({"timeout_seconds": "0"}, "timeout_seconds", "above 0"),
    ],
)
def test_the_channel_form_shows_the_services_errors_on_their_field(
    admin_client: Client, fields: dict[str, Any], field: str, words: str
) -> None:
    response = admin_client.post(CHANNEL_ADD, channel_form(**fields))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert words in " ".join(errors[field])
    assert not AlertChannel.objects.exists()


def test_a_taken_name_is_refused_by_the_service(admin_client: Client) -> None:
    make_channel()

    response = admin_client.post(CHANNEL_ADD, channel_form())

    errors = response.context["adminform"].form.errors
    assert "already exists" in " ".join(errors["name"])


def test_the_channel_list_shows_the_last_delivery_without_a_query_per_row(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    for index in range(5):
        channel = make_channel(name="hook-%d" % index)
        alert = Alert.objects.create(kind=AlertKind.TEST, message="m")
        AlertDelivery.objects.create(
            alert=alert,
            channel=channel,
            channel_kind="webhook",
            target=channel.target,
            status=DeliveryStatus.FAILED,
        )
    admin_client.get(CHANNELS)

    with django_assert_max_num_queries(8):
        response = admin_client.get(CHANNELS)

    page = response.content.decode()
    assert page.count('data-status="failed"') == 5


def test_deleting_a_channel_is_a_change_of_the_tasks_that_named_it(
    admin_client: Client,
) -> None:
    channel = make_channel()
    other = make_channel(name="other-hook")
    named = make_task(name="named")
    named.alert_channels.set([channel])
    unrelated = make_task(name="unrelated")
    unrelated.alert_channels.set([other])
    versions = {task.pk: task.version for task in (named, unrelated)}

    response = admin_client.post(channel_url(channel, "delete"), {"post": "yes"})

    assert response.status_code == 302
    assert not AlertChannel.objects.filter(pk=channel.pk).exists()
    named.refresh_from_db()
    unrelated.refresh_from_db()
    assert named.version == versions[named.pk] + 1  # an ETag of it is stale now
    assert list(named.alert_channels.all()) == []
    assert unrelated.version == versions[unrelated.pk]


def test_deleting_channels_from_the_list_bumps_each_task_once(
    admin_client: Client,
) -> None:
    first, second = make_channel(name="first"), make_channel(name="second")
    task = make_task()
    task.alert_channels.set([first, second])
    version = task.version

    response = admin_client.post(
        CHANNELS,
        {
            "action": "delete_selected",
            "_selected_action": [first.pk, second.pk],
            "post": "yes",
        },
    )

    assert response.status_code == 302
    assert AlertChannel.objects.count() == 0
    task.refresh_from_db()
    assert task.version == version + 1


def test_send_a_test_alert_queues_one_pending_delivery_to_that_channel(
    admin_client: Client,
) -> None:
    channel = make_channel(name=HOSTILE)
    make_channel(name="other")  # a default channel too, which gets nothing

    response = admin_client.post(channel_url(channel, "send_test"))

    alert = Alert.objects.get()
    assert alert.kind == AlertKind.TEST
    delivery = alert.deliveries.get()
    assert (delivery.channel, delivery.status) == (channel, DeliveryStatus.PENDING)
    assert response.status_code == 302
    [(_level, text)] = sent_messages(response)
    assert text.startswith("A test alert to %s is queued" % HOSTILE_ESCAPED)
    assert 'href="%s"' % alert_url(alert) in text


def test_the_button_is_on_the_channel_page_and_a_get_sends_nothing(
    admin_client: Client,
) -> None:
    channel = make_channel()

    page = admin_client.get(channel_url(channel)).content.decode()
    assert channel_url(channel, "send_test") in page
    assert admin_client.get(channel_url(channel, "send_test")).status_code == 405
    assert not Alert.objects.exists()


def test_send_a_test_alert_needs_the_change_permission(client: Client) -> None:
    channel = make_channel(secret="hidden-one")
    viewer = make_user("viewer", "view_alertchannel", is_staff=True)
    client.force_login(viewer)

    page = client.get(channel_url(channel)).content.decode()
    assert channel_url(channel, "send_test") not in page
    assert "hidden-one" not in page and "stored (never shown)" in page
    response = client.post(channel_url(channel, "send_test"))

    assert response.status_code == 403
    assert not Alert.objects.exists()


def _failed_delivery() -> tuple[Alert, AlertDelivery]:
    task = make_task(name="nightly")
    channel = make_channel()
    alert = Alert.objects.create(
        kind=AlertKind.FAILING,
        task=task,
        task_name=task.name,
        state="failing",
        message="Task nightly is failing: %s" % HOSTILE,
    )
    delivery = AlertDelivery.objects.create(
        alert=alert,
        channel=channel,
        channel_kind="webhook",
        target=channel.target,
        status=DeliveryStatus.FAILED,
        attempts=2,
        last_error="HTTP 500: " + HOSTILE,
    )
    AlertAttempt.objects.create(
        delivery=delivery, ok=False, status_code=502, error="Bad gateway <b>x</b>"
    )
    AlertAttempt.objects.create(
        delivery=delivery, ok=False, status_code=500, error="HTTP 500: " + HOSTILE
    )
    AlertDelivery.objects.create(
        alert=alert,
        channel=None,
        channel_kind="email",
        target="ops@example.com",
        status=DeliveryStatus.SENT,
    )
    return alert, delivery


def test_the_alert_list_sums_up_deliveries_and_escapes_the_message(
    admin_client: Client,
) -> None:
    alert, _delivery = _failed_delivery()

    page = admin_client.get(ALERTS).content.decode()

    assert "1 sent · 1 failed · 0 pending" in page
    assert HOSTILE not in page and HOSTILE_ESCAPED in page
    assert (
        reverse("admin:scheduler_app_scheduledtask_change", args=[alert.task_id])
        in page
    )


def test_the_alert_list_filters_by_kind_and_health_and_searches_task_names(
    admin_client: Client,
) -> None:
    _failed_delivery()
    Alert.objects.create(kind=AlertKind.TEST, message="just a test")

    def shown(**query: str) -> int:
        response = admin_client.get(ALERTS, query)
        assert response.status_code == 200
        return int(response.context["cl"].result_count)

    assert shown() == 2
    assert shown(kind__exact="test") == 1
    assert shown(state="failing") == 1
    assert shown(q="nightly") == 1


def test_the_alert_page_shows_every_failed_attempt_escaped(
    admin_client: Client,
) -> None:
    alert, _delivery = _failed_delivery()

    page = admin_client.get(alert_url(alert)).content.decode()

    assert page.count("scheduler-failed-attempt") == 2
    assert "502" in page and "500" in page
    assert "Bad gateway &lt;b&gt;x&lt;/b&gt;" in page
    assert HOSTILE not in page
    assert "ops@example.com" in page


def test_alerts_are_read_only(admin_client: Client) -> None:
    alert, _delivery = _failed_delivery()

    assert admin_client.get(reverse("admin:scheduler_app_alert_add")).status_code == 403
    response = admin_client.post(alert_url(alert), {"message": "changed"})
    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.message.startswith("Task nightly")


def test_a_viewer_of_alerts_sees_the_deliveries(client: Client) -> None:
    alert, _delivery = _failed_delivery()
    client.force_login(make_user("viewer", "view_alert", is_staff=True))

    page = client.get(alert_url(alert)).content.decode()

    assert page.count("scheduler-failed-attempt") == 2


def test_a_slack_key_is_shown_only_to_who_may_change_the_channel(
    client: Client, admin_client: Client
) -> None:
    """The last segment of an incoming webhook's URL is its key: lists and read-only
    pages show it as "…"; the change form, for who may change it, has it whole."""
    key_url = "https://hooks.slack.com/services/T000/B000/secretkey123"
    channel = make_channel(kind="slack", target=key_url)
    alert = Alert.objects.create(kind=AlertKind.TEST, message="test")
    AlertDelivery.objects.create(
        alert=alert, channel=channel, channel_kind="slack", target=key_url
    )
    viewer = make_user("viewer", "view_alertchannel", "view_alert", is_staff=True)
    client.force_login(viewer)

    pages = [
        client.get(url).content.decode()
        for url in (
            reverse("admin:scheduler_app_alertchannel_changelist"),
            channel_url(channel),
            alert_url(alert),
        )
    ]

    for number, page in enumerate(pages):
        where = page.find("secretkey123")
        assert where == -1, (number, page[where - 300 : where + 50])
    assert "https://hooks.slack.com/services/T000/B000/…" in pages[0]
    assert "secretkey123" in admin_client.get(channel_url(channel)).content.decode()
