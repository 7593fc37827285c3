"""Alert admin: the channels (with "Send a test alert") and the alerts with their
deliveries and every attempt at them, read-only.

What a channel may hold is services/channels.py's; a test alert is
services/alerts.py's `alert_test`. Every text that came from a task, a user or a
remote server (messages, errors) is escaped.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from .. import services
from ..choices import ChannelKind, DeliveryStatus
from ..forms import AlertChannelForm
from ..models import Alert, AlertChannel, AlertDelivery
from ..services.alert_transports import shown_url
from ..services.alerts import alert_test
from .display import (
    EMPTY,
    absolute_time,
    format_duration,
    preformatted,
    pretty_json,
    status_badge,
    time_with_relative,
)

MSG_TEST_QUEUED = _(
    "A test alert to %(name)s is queued; the scheduler sends it within a few "
    "seconds (see %(link)s)."
)
#: The most of a message or error a list cell shows (the page has it whole).
CELL_CHARS = 120


def _shown_target(kind: str, target: str) -> str:
    """A channel's target fit for any viewer: a URL's last segment (a Slack key, a
    token) as "…"; the full URL is only in the channel's form, for who may change it."""
    if kind == ChannelKind.EMAIL:
        return _short(target)
    return _short(shown_url(target, secret_path=True))


def _short(text: str) -> str:
    return Truncator(text or "").chars(CELL_CHARS) if text else EMPTY


def _alert_url(alert: Alert | int) -> str:
    pk = alert if isinstance(alert, int) else alert.pk
    return reverse("admin:scheduler_app_alert_change", args=[pk])


def _task_link(task_id: int | None, name: str) -> str:
    if task_id is None:
        return name or EMPTY
    return format_html(
        '<a href="{}">{}</a>',
        reverse("admin:scheduler_app_scheduledtask_change", args=[task_id]),
        name or "#%s" % task_id,
    )


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = AlertChannelForm
    list_display = [
        "name",
        "kind",
        "target_display",
        "is_default",
        "enabled",
        "last_delivery",
    ]
    list_filter = ["kind", "enabled", "is_default"]
    search_fields = ["name", "target"]
    change_form_template = "admin/scheduler_app/alertchannel/change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "kind", "target", "is_default", "enabled"]}),
        (
            _("Delivery"),
            {"fields": ["secret", "clear_secret", "timeout_seconds"]},
        ),
    ]

    readonly_fields = ["secret_state", "target_display"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        main, (title, options) = self.fieldsets
        fields = list(options["fields"])
        editable = (
            self.has_change_permission(request, obj)
            if obj is not None
            else self.has_add_permission(request)
        )
        if not editable:
            # A read-only page would print the secret: it says whether one is stored;
            # and a URL's key (a Slack webhook's) is shown as "…".
            main = (
                main[0],
                {
                    **main[1],
                    "fields": [
                        "target_display" if name == "target" else name
                        for name in main[1]["fields"]
                    ],
                },
            )
            fields = ["secret_state", "timeout_seconds"]
        elif obj is None or not obj.secret:
            fields.remove("clear_secret")  # no stored secret: nothing to remove
        return [main, (title, {**options, "fields": fields})]

    @admin.display(description=_("signing secret"))
    def secret_state(self, obj: AlertChannel) -> str:
        return gettext("stored (never shown)") if obj.secret else gettext("none")

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertChannel]:
        latest = AlertDelivery.objects.filter(channel=OuterRef("pk")).order_by(
            "-created_at", "-id"
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_delivery_status=Subquery(latest.values("status")[:1]),
                last_delivery_at=Subquery(latest.values("created_at")[:1]),
                last_delivery_alert=Subquery(latest.values("alert_id")[:1]),
            )
        )

    @admin.display(description=_("addresses or URL"), ordering="target")
    def target_display(self, obj: AlertChannel) -> str:
        return _shown_target(obj.kind, obj.target)

    @admin.display(description=_("last delivery"))
    def last_delivery(self, obj: AlertChannel) -> str:
        status = getattr(obj, "last_delivery_status", None)
        if status is None:
            return EMPTY
        return format_html(
            '<a href="{}">{}</a> {}',
            _alert_url(obj.last_delivery_alert),  # type: ignore[attr-defined]
            status_badge(status, DeliveryStatus(status).label),
            time_with_relative(obj.last_delivery_at),  # type: ignore[attr-defined]
        )

    def save_model(
        self, request: HttpRequest, obj: AlertChannel, form: Any, change: bool
    ) -> None:
        # The form validated the channel (channel_validate); this validates it again.
        services.channel_save(channel=obj)

    def delete_model(self, request: HttpRequest, obj: AlertChannel) -> None:
        services.channels_delete(channels=AlertChannel.objects.filter(pk=obj.pk))

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[AlertChannel]
    ) -> None:
        services.channels_delete(channels=queryset)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        channel = self.get_object(request, object_id) if object_id else None
        extra_context = {
            **(extra_context or {}),
            "may_send_test": channel is not None
            and self.has_change_permission(request, channel),
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/send-test/",
                self.admin_site.admin_view(self.send_test_view),
                name="%s_%s_send_test" % info,
            ),
            *super().get_urls(),
        ]

    def send_test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return _send_test(request, self, object_id)


@require_POST
def _send_test(
    request: HttpRequest, model_admin: AlertChannelAdmin, object_id: str
) -> HttpResponse:
    """The channel page's "Send a test alert": a TEST alert to this channel alone."""
    channel = model_admin.get_object(request, object_id)
    if channel is None:
        return redirect(reverse("admin:scheduler_app_alertchannel_changelist"))
    if not model_admin.has_change_permission(request, channel):
        raise PermissionDenied
    alert = alert_test(channel=channel)
    link = format_html('<a href="{}">{}</a>', _alert_url(alert), gettext("Alerts"))
    # The message is ours (the catalog's); the channel's name is escaped.
    text = escape(str(MSG_TEST_QUEUED)) % {"name": escape(channel.name), "link": link}
    model_admin.message_user(
        request,
        mark_safe(text),  # noqa: S308 - every piece is escaped above
        messages.SUCCESS,
    )
    return redirect(
        reverse("admin:scheduler_app_alertchannel_change", args=[channel.pk])
    )


class DeliveryInline(admin.TabularInline):
    """An alert's deliveries, one per channel, each with every attempt at it."""

    model = AlertDelivery
    extra = 0
    can_delete = False
    fields = (
        "channel_display",
        "target_display",
        "status_display",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error_display",
        "attempts_table",
    )
    readonly_fields = fields
    verbose_name_plural = _("deliveries")

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertDelivery]:
        return (
            super()
            .get_queryset(request)
            .select_related("channel")
            .prefetch_related("attempt_log")
        )

    @admin.display(description=_("channel"))
    def channel_display(self, obj: AlertDelivery) -> str:
        kind = obj.get_channel_kind_display()
        if obj.channel is None:
            return format_html("{}<br><small>{}</small>", gettext("settings"), kind)
        return format_html(
            '<a href="{}">{}</a><br><small>{}</small>',
            reverse("admin:scheduler_app_alertchannel_change", args=[obj.channel_id]),
            obj.channel.name,
            kind,
        )

    @admin.display(description=_("addresses or URL"))
    def target_display(self, obj: AlertDelivery) -> str:
        return _shown_target(obj.channel_kind, obj.target)

    @admin.display(description=_("status"))
    def status_display(self, obj: AlertDelivery) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=_("last error"))
    def last_error_display(self, obj: AlertDelivery) -> str:
        return preformatted(obj.last_error)

    @admin.display(description=_("attempts made"))
    def attempts_table(self, obj: AlertDelivery) -> str:
        attempts = list(obj.attempt_log.all())
        if not attempts:
            return EMPTY
        rows = format_html_join(
            "",
            '<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    "scheduler-ok-attempt" if each.ok else "scheduler-failed-attempt",
                    absolute_time(each.at, seconds=True),
                    status_badge(
                        "success" if each.ok else "failed",
                        gettext("delivered") if each.ok else gettext("failed"),
                    ),
                    EMPTY if each.status_code is None else each.status_code,
                    preformatted(each.error),
                    format_duration(each.duration_ms),
                )
                for each in attempts
            ),
        )
        return format_html(
            '<table class="scheduler-attempts"><thead><tr><th>{}</th><th>{}</th>'
            "<th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            gettext("at"),
            gettext("outcome"),
            gettext("HTTP status"),
            gettext("error"),
            gettext("took"),
            rows,
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Whoever may read the alert reads where it went.
        return request.user.has_perm("scheduler_app.view_alert")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class HealthStateFilter(admin.SimpleListFilter):
    """The task's health the alert told of (its `state`)."""

    title = _("task health")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(Alert._meta.get_field("state").choices or [])

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(state=self.value())
        return queryset


#: The alert page's fields, all read-only.
ALERT_FIELDS = (
    "created_at",
    "kind_display",
    "task_display",
    "state",
    "previous_state",
    "message_display_full",
    "error_display",
    "execution_display",
    "details_display",
)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """The outbox, read-only: what was decided, and how its deliveries went."""

    list_display = [
        "created_at",
        "kind_display",
        "task_display",
        "message_display",
        "deliveries_summary",
    ]
    list_display_links = ["created_at"]
    list_filter = ["kind", HealthStateFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["task_name"]
    show_full_result_count = False
    fields = ALERT_FIELDS
    readonly_fields = ALERT_FIELDS
    inlines = [DeliveryInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        def counted(*statuses: str) -> Count:
            return Count("deliveries", filter=Q(deliveries__status__in=statuses))

        return (
            super()
            .get_queryset(request)
            .annotate(
                sent_count=counted(DeliveryStatus.SENT),
                failed_count=counted(DeliveryStatus.FAILED),
                pending_count=counted(DeliveryStatus.PENDING, DeliveryStatus.SENDING),
            )
        )

    @admin.display(description=_("kind"), ordering="kind")
    def kind_display(self, obj: Alert) -> str:
        return status_badge(obj.kind, obj.get_kind_display())

    @admin.display(description=_("task"), ordering="task_name")
    def task_display(self, obj: Alert) -> str:
        return _task_link(obj.task_id, obj.task_name)

    @admin.display(description=_("message"))
    def message_display(self, obj: Alert) -> str:
        return _short(obj.message)

    @admin.display(description=_("message"))
    def message_display_full(self, obj: Alert) -> str:
        return preformatted(obj.message)

    @admin.display(description=_("error"))
    def error_display(self, obj: Alert) -> str:
        return preformatted(obj.error)

    @admin.display(description=_("execution"))
    def execution_display(self, obj: Alert) -> str:
        if obj.execution_id is None:
            return EMPTY
        return format_html(
            '<a href="{}">#{}</a>',
            reverse(
                "admin:scheduler_app_taskexecution_change", args=[obj.execution_id]
            ),
            obj.execution_id,
        )

    @admin.display(description=_("details"))
    def details_display(self, obj: Alert) -> str:
        return pretty_json(obj.details)

    @admin.display(description=_("deliveries"))
    def deliveries_summary(self, obj: Alert) -> str:
        sent = getattr(obj, "sent_count", 0)
        failed = getattr(obj, "failed_count", 0)
        pending = getattr(obj, "pending_count", 0)
        text = gettext("%(sent)d sent · %(failed)d failed · %(pending)d pending") % {
            "sent": sent,
            "failed": failed,
            "pending": pending,
        }
        tone = "failed" if failed else "pending" if pending else "sent"
        return format_html(
            '<span class="scheduler-deliveries scheduler-deliveries--{}">{}</span>',
            tone,
            text,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The record of what people were told: only a superuser clears it.
        return bool(request.user.is_superuser)
