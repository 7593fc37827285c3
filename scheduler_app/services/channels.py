"""Alert channels: what a channel may hold, and its write paths (the admin's).

channel_validate is every rule a channel obeys; channel_save validates and
stores; channels_delete deletes. Where alerts go and how they are sent is services/alerts.py's.
"""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..choices import ChannelKind
from ..exceptions import SchedulerError
from ..models import AlertChannel, ScheduledTask
from .validation import text_fields_validate

#: The longest a channel may wait for an answer (seconds): the sender waits as long.
TIMEOUT_MAX_SECONDS = 300.0
MSG_NAME_TAKEN = gettext_lazy(
    "A channel named “%(name)s” already exists; choose another name."
)
MSG_KIND = gettext_lazy("Kind: choose one of %(kinds)s.")
MSG_EMAILS = gettext_lazy(
    "Addresses: “%(address)s” is no e-mail address; enter addresses separated by "
    "commas, e.g. ops@example.com, oncall@example.com."
)
MSG_NO_EMAIL = gettext_lazy(
    "Addresses: enter at least one e-mail address, e.g. ops@example.com."
)
MSG_URL = gettext_lazy(
    "URL: enter one http:// or https:// address to post to, e.g. "
    "https://alerts.example.com/hook."
)
MSG_TIMEOUT = gettext_lazy(
    "Timeout: enter a number of seconds above 0 and at most %(max)s, e.g. 10, or "
    "leave it blank for SCHEDULER_ALERT_TIMEOUT_SECONDS."
)

_url = URLValidator(schemes=["http", "https"])


class ChannelInvalid(SchedulerError):
    """Several problems with a channel's fields at once; `errors` holds each one."""

    code = "invalid_channel"

    def __init__(self, errors: list[SchedulerError]):
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


def channel_emails(target: str) -> list[str]:
    """The addresses of an e-mail channel's target (comma-separated), blanks dropped."""
    return [each.strip() for each in target.split(",") if each.strip()]


def _text_problems(channel: AlertChannel) -> list[SchedulerError]:
    return text_fields_validate(
        {name: getattr(channel, name) for name in ("name", "target", "secret")},
        AlertChannel,
    )


def _target_problems(channel: AlertChannel) -> list[SchedulerError]:
    target = (channel.target or "").strip()
    if channel.kind == ChannelKind.EMAIL:
        addresses = channel_emails(target)
        if not addresses:
            return [SchedulerError(str(MSG_NO_EMAIL), field="target")]
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                return [
                    SchedulerError(MSG_EMAILS % {"address": address}, field="target")
                ]
        return []
    try:
        _url(target)
    except ValidationError:
        return [SchedulerError(str(MSG_URL), field="target")]
    return []


def channel_validate(*, channel: AlertChannel) -> None:
    """Check a channel as it would be saved; ChannelInvalid lists every problem.

    A name (unique), a known kind; e-mail: addresses separated by commas;
    webhook and Slack: one http(s) URL; a timeout above 0 (at most
    TIMEOUT_MAX_SECONDS) or none.
    """
    errors = _text_problems(channel)
    name = (channel.name or "").strip()
    if not name:
        errors.append(
            SchedulerError(
                _("Name: enter a name, e.g. ops-mail."), field="name", code="required"
            )
        )
    elif (
        not any(error.field == "name" for error in errors)
        and AlertChannel.objects.filter(name=name).exclude(pk=channel.pk).exists()
    ):
        errors.append(
            SchedulerError(MSG_NAME_TAKEN % {"name": name}, field="name", code="unique")
        )
    if channel.kind not in ChannelKind.values:
        kinds = ", ".join(ChannelKind.values)
        errors.append(SchedulerError(MSG_KIND % {"kinds": kinds}, field="kind"))
    elif not any(error.field == "target" for error in errors):
        errors.extend(_target_problems(channel))
    timeout = channel.timeout_seconds
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not 0 < timeout <= TIMEOUT_MAX_SECONDS
    ):
        errors.append(
            SchedulerError(
                MSG_TIMEOUT % {"max": int(TIMEOUT_MAX_SECONDS)},
                field="timeout_seconds",
            )
        )
    if errors:
        raise ChannelInvalid(errors)


def channel_save(*, channel: AlertChannel) -> AlertChannel:
    """Validate and store a channel, new or changed (the name and target stripped)."""
    channel.name = (channel.name or "").strip()
    channel.target = (channel.target or "").strip()
    channel_validate(channel=channel)
    try:
        with transaction.atomic():
            channel.save()
    except IntegrityError as exc:  # the same name, saved meanwhile
        raise ChannelInvalid(
            [
                SchedulerError(
                    MSG_NAME_TAKEN % {"name": channel.name}, field="name", code="unique"
                )
            ]
        ) from exc
    return channel


def channels_delete(*, channels: QuerySet[AlertChannel]) -> int:
    """Delete channels; returns how many.

    The tasks that named one lose it, a change of those tasks: their version is
    bumped (an API client's ETag of such a task no longer matches), and a task
    left with no channel of its own goes to the default channels. Deliveries
    still on their way to a deleted channel fail (services/alerts.py).
    """
    with transaction.atomic():
        ScheduledTask.objects.filter(
            pk__in=ScheduledTask.objects.filter(alert_channels__in=channels).values(
                "pk"
            )
        ).update(version=F("version") + 1)
        _total, per_model = channels.delete()
    return per_model.get(AlertChannel._meta.label, 0)
