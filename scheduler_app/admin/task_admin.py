"""Task admin: the list (schedule in words, stats, filters, actions) and the task form."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import F, QuerySet
from django.forms import ModelForm
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import selectors, services
from ..choices import AuditAction, AuditSource
from ..exceptions import ReasonInvalid, SystemTaskProtected, TaskBusy
from ..forms import ScheduledTaskForm, handler_info, param_field_name
from ..handlers.registry import HandlerInfo
from ..models import ScheduledTask, TaskExecution, TaskExecutionQuerySet
from . import task_views, timeline
from .audit import task_trail_context
from .display import (
    EMPTY,
    describe_schedule,
    duration_summary,
    error_summary,
    execution_badge,
    format_duration,
    health_badge,
    health_since_text,
    runs_chart,
    seconds_or_empty,
    status_badge,
    time_with_relative,
)
from .task_actions import TaskActionsMixin, admin_origin, reason_context

#: Beneath a paused or disabled task's status in the list: its latest such audit entry.
MSG_STATUS_BY = {
    ScheduledTask.Status.PAUSED: (
        _("paused by %(who)s: %(reason)s"),
        _("paused by %(who)s"),
    ),
    ScheduledTask.Status.DISABLED: (
        _("disabled by %(who)s: %(reason)s"),
        _("disabled by %(who)s"),
    ),
}
#: The most of a reason the list shows (its tooltip and the audit trail have it all).
STATUS_REASON_CHARS = 60
MSG_CHANNELS_DISABLED = _(
    "These alert channels of the task are disabled, so they get none of its alerts "
    "until enabled again: %(names)s."
)


class HandlerFilter(admin.SimpleListFilter):
    title = _("handler")
    parameter_name = "handler"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        paths = (
            ScheduledTask.objects.order_by("handler_path")
            .values_list("handler_path", flat=True)
            .distinct()
        )
        return [(handler, handler) for handler in paths]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(handler_path=self.value())
        return queryset


class LastResultFilter(admin.SimpleListFilter):
    """The status of each task's latest execution (the annotated subquery)."""

    title = _("last result")
    parameter_name = "last_result"
    NEVER = "never"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [*TaskExecution.Status.choices, (self.NEVER, _("Never run"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == self.NEVER:
            return queryset.filter(last_execution_status__isnull=True)
        if self.value() in TaskExecution.Status.values:
            return queryset.filter(last_execution_status=self.value())
        return queryset


class RecentExecutionsFormSet(BaseInlineFormSet):
    """Only the task's latest runs: an inline formset cannot take a sliced queryset."""

    limit = 20

    def get_queryset(self) -> QuerySet[TaskExecution]:
        # Built once per formset, as the base class does: it is called for every form,
        # and a new queryset each time would cost two queries per row.
        if not hasattr(self, "_recent_queryset"):
            # Fires staged ahead of their time have not happened: not shown
            # among the task's runs (the executions list shows them, "upcoming").
            queryset = cast(TaskExecutionQuerySet, super().get_queryset())
            queryset = queryset.not_staged(now=timezone.now())
            latest = list(
                queryset.order_by("-created_at", "-id").values_list("pk", flat=True)[
                    : self.limit
                ]
            )
            # With its task, so each row names it (TaskExecution.__str__).
            self._recent_queryset = (
                queryset.filter(pk__in=latest)
                .select_related("task")
                .defer(*selectors.EXECUTION_HEAVY_FIELDS)
            )
        return self._recent_queryset


#: The inline's columns, all read-only (the inline only shows executions).
RECENT_EXECUTION_FIELDS = (
    "status_display",
    "trigger_type",
    "scheduled_for_display",
    "started_display",
    "duration_display",
    "attempt",
    "error_display",
)


class RecentExecutionsInline(admin.TabularInline):
    model = TaskExecution
    formset = RecentExecutionsFormSet
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = _("recent executions (latest 20)")
    fields = RECENT_EXECUTION_FIELDS
    readonly_fields = RECENT_EXECUTION_FIELDS

    @admin.display(description=_("status"))
    def status_display(self, obj: TaskExecution) -> str:
        return execution_badge(obj)

    @admin.display(description=_("scheduled for"))
    def scheduled_for_display(self, obj: TaskExecution) -> str:
        return seconds_or_empty(obj.scheduled_for)

    @admin.display(description=_("started"))
    def started_display(self, obj: TaskExecution) -> str:
        return seconds_or_empty(obj.started_at)

    @admin.display(description=_("duration"))
    def duration_display(self, obj: TaskExecution) -> str:
        return format_duration(obj.duration_ms)

    @admin.display(description=_("error"))
    def error_display(self, obj: TaskExecution) -> str:
        return error_summary(obj.error_message)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ScheduledTask)
class ScheduledTaskAdmin(TaskActionsMixin):
    form = ScheduledTaskForm
    # The schedule's words say its kind ("At 02:00", "Every 6 hours", "once, at
    # ...", "only when run by hand"): no column of its own, so the list fits a
    # 1280 px screen beside the filters (the kind stays a filter).
    list_display = [
        "name_display",
        "schedule",
        "status_display",
        "health_display",
        "next_run",
        "last_run",
        "success_rate",
        "avg_duration",
    ]
    list_filter = [
        "task_type",
        "status",
        "health",
        HandlerFilter,
        LastResultFilter,
        "is_system",
    ]
    list_display_links = ["name_display"]
    search_fields = ["name", "description", "handler_path"]
    # is_system is set by code (migrations, declared schedules), never by hand:
    # unticking it would make a system task deletable.
    readonly_fields = [
        "health_state",
        "is_system",
        "next_run_at_display",
        "last_run_at_display",
        "run_count",
        "success_count",
        "fail_count",
        "created_at_display",
        "updated_at_display",
        "run_history",
    ]
    actions = ["run_now", "pause", "resume", "enable", "disable", "delete_tasks"]
    inlines = [RecentExecutionsInline]
    empty_value_display = EMPTY
    # A filtered list counts its own rows (the paginator's count) but not the whole
    # table again for "N total".
    show_full_result_count = False

    # Columns

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScheduledTask]:
        queryset = selectors.tasks_with_run_stats()
        match = request.resolver_match
        if (
            match
            and match.url_name
            and match.url_name.endswith("changelist")
            # Who paused a task and why is the audit trail's: its permission.
            and request.user.has_perm("scheduler_app.view_auditentry")
        ):
            queryset = selectors.tasks_with_status_change(queryset)
        return queryset

    @admin.display(description=_("name"), ordering="name")
    def name_display(self, obj: ScheduledTask) -> str:
        # A long snake_case name breaks after its underscores, not mid-word.
        name = mark_safe(escape(obj.name).replace("_", "_<wbr>"))  # noqa: S308
        problem = services.handler_problem(obj.handler_path)
        if not problem:
            return name
        # A marker that says why on hover (the task page says it in full).
        return format_html(
            '{} <span class="scheduler-handler-problem" title="{}">⚠ {}</span>',
            name,
            problem,
            gettext("handler cannot run"),
        )

    # The task page's times, to the second as the runs' are.

    @admin.display(description=_("next run"))
    def next_run_at_display(self, obj: ScheduledTask) -> str:
        return seconds_or_empty(obj.next_run_at)

    @admin.display(description=_("last run"))
    def last_run_at_display(self, obj: ScheduledTask) -> str:
        return seconds_or_empty(obj.last_run_at)

    @admin.display(description=_("created"))
    def created_at_display(self, obj: ScheduledTask) -> str:
        return seconds_or_empty(obj.created_at)

    @admin.display(description=_("updated"))
    def updated_at_display(self, obj: ScheduledTask) -> str:
        return seconds_or_empty(obj.updated_at)

    @admin.display(description=_("schedule"))
    def schedule(self, obj: ScheduledTask) -> str:
        return describe_schedule(obj)

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: ScheduledTask) -> str:
        badge = status_badge(obj.status, obj.get_status_display())
        change = selectors.status_change(obj)
        if change is None or change.status not in MSG_STATUS_BY:
            return badge
        with_reason, without_reason = MSG_STATUS_BY[ScheduledTask.Status(change.status)]
        who = change.actor or dict(AuditSource.choices).get(
            change.source, change.source
        )
        reason = Truncator(change.reason).chars(STATUS_REASON_CHARS)
        text = (with_reason if reason else without_reason) % {
            "who": who,
            "reason": reason,
        }
        return format_html(
            '{}<br><small class="scheduler-status-by" title="{}">{}</small>',
            badge,
            change.reason,
            text,
        )

    @admin.display(description=_("health"), ordering="health")
    def health_display(self, obj: ScheduledTask) -> str:
        return health_badge(obj.health, obj.health_since)

    @admin.display(description=_("health"))
    def health_state(self, obj: ScheduledTask) -> str:
        """The badge and, beside it, since when (the scheduler's health check keeps it)."""
        return format_html(
            '{}<span class="scheduler-health-since">{}</span>',
            health_badge(obj.health, obj.health_since),
            health_since_text(obj.health_since),
        )

    @admin.display(
        description=_("next run"), ordering=F("next_run_at").asc(nulls_last=True)
    )
    def next_run(self, obj: ScheduledTask) -> str:
        return time_with_relative(obj.next_run_at)

    @admin.display(
        description=_("last run"), ordering=F("last_run_at").desc(nulls_last=True)
    )
    def last_run(self, obj: ScheduledTask) -> str:
        status = getattr(obj, "last_execution_status", None)
        if status is None:
            return time_with_relative(obj.last_run_at)
        badge = status_badge(status, TaskExecution.Status(status).label)
        return format_html("{} {}", badge, time_with_relative(obj.last_run_at))

    @admin.display(description=_("success rate"), ordering="success_ratio")
    def success_rate(self, obj: ScheduledTask) -> str:
        ratio = getattr(obj, "success_ratio", None)
        if ratio is None:
            return EMPTY
        return format_html(
            '<span title="{} / {}">{}%</span>',
            obj.success_count,
            obj.success_count + obj.fail_count,
            round(ratio * 100),
        )

    @admin.display(
        description=_("avg duration"),
        ordering=F("avg_duration_ms").desc(nulls_last=True),
    )
    def avg_duration(self, obj: ScheduledTask) -> str:
        return format_duration(getattr(obj, "avg_duration_ms", None))

    @admin.display(description=_("recent runs"))
    def run_history(self, obj: ScheduledTask) -> str:
        runs = selectors.task_recent_runs(obj)
        return format_html(
            '<div class="scheduler-history">{}<p class="help">{}</p></div>',
            runs_chart(runs),
            duration_summary(runs),
        )

    # The form: one input per parameter of the chosen handler

    def handler_for(
        self, request: HttpRequest, obj: ScheduledTask | None
    ) -> HandlerInfo | None:
        """The handler whose parameters the form shows: the submitted one, else the task's."""
        if request.method == "POST":
            return handler_info(request.POST.get("handler_path", ""))
        if obj is not None:
            return handler_info(obj.handler_path)
        return handler_info(request.GET.get("handler_path", ""))

    def get_form(
        self,
        request: HttpRequest,
        obj: ScheduledTask | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[ModelForm]:
        kwargs["form"] = self.form.for_handler(self.handler_for(request, obj))
        form = super().get_form(request, obj, change, **kwargs)
        # A class made for this request (as for_handler's is): it knows who submits.
        return type(form.__name__, (form,), {"actor": request.user})

    def get_readonly_fields(
        self, request: HttpRequest, obj: ScheduledTask | None = None
    ) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and not self.has_pause_permission(request):
            # Changing a status needs the pause permission (services.may_change_status).
            fields.append("status")
        return fields

    def get_fieldsets(
        self, request: HttpRequest, obj: ScheduledTask | None = None
    ) -> Any:
        editable = (
            self.has_change_permission(request, obj)
            if obj
            else self.has_add_permission(request)
        )
        info = self.handler_for(request, obj) if editable else None
        parameters = (
            [param_field_name(spec.name) for spec in info.params] if info else []
        )
        fieldsets: list[tuple[Any, dict[str, Any]]] = [
            (
                None,
                {
                    "fields": [
                        *(["health_state"] if obj else []),
                        "name",
                        "description",
                        "status",
                        "is_system",
                        *(["loaded_version", "loaded_state"] if obj else []),
                        # Not a task field: why, for the change's audit entry.
                        *(["reason"] if editable else []),
                    ]
                },
            ),
            (
                _("Handler and parameters"),
                {
                    "fields": ["handler_path", *parameters, "handler_kwargs"],
                    "description": _(
                        "Each parameter is a Python expression evaluated at every run, "
                        "e.g. 7, 'orders', date.today() - timedelta(days=1). Leave an "
                        "input empty to use the default."
                    ),
                },
            ),
            (
                _("Schedule"),
                {
                    "fields": [
                        "task_type",
                        "cron_expression",
                        "interval_seconds",
                        "run_date",
                        "timezone",
                    ],
                    "classes": ["scheduler-schedule"],
                },
            ),
            (
                _("Execution policy"),
                {
                    "classes": ["collapse"],
                    "fields": [
                        "overlap_policy",
                        "max_instances",
                        "timeout_seconds",
                        "max_retries",
                        "retry_delay_seconds",
                        "retry_backoff",
                        "misfire_grace_seconds",
                        "coalesce",
                        "jitter_seconds",
                        "queue",
                    ],
                },
            ),
            (
                _("Alerts"),
                {
                    "classes": ["collapse"],
                    "fields": [
                        "failure_threshold",
                        "recovery_threshold",
                        "alert_grace_seconds",
                        "max_run_seconds",
                        "alert_channels",
                    ],
                    "description": _(
                        "When this task's health changes (failing, missed, late, "
                        "running long, up again), an alert goes to its channels. "
                        "Blank thresholds use the project's defaults "
                        "(SCHEDULER_ALERT_* settings)."
                    ),
                },
            ),
        ]
        if obj is not None:
            fieldsets.append(
                (
                    _("Statistics"),
                    {
                        "fields": [
                            "run_history",
                            "next_run_at_display",
                            "last_run_at_display",
                            ("run_count", "success_count", "fail_count"),
                            ("created_at_display", "updated_at_display"),
                        ]
                    },
                )
            )
        return fieldsets

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "has_run_permission": self.has_run_permission(request),
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        task = self.get_object(request, unquote(object_id))
        if task is not None:  # the task's audit trail, beneath its recent runs
            extra_context = {
                **(extra_context or {}),
                **task_trail_context(request, task),
                "handler_problem": services.handler_problem(task.handler_path),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "has_operations_permission": self.has_view_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def save_model(
        self, request: HttpRequest, obj: ScheduledTask, form: Any, change: bool
    ) -> None:
        # The form validated the task (task_validate); these validate it again.
        # The channels are a relation: given to the service beside the row (the
        # form's own save_m2m stores nothing).
        channels = form.cleaned_data.get("alert_channels")
        if channels is not None:
            channels = list(channels)
        origin = admin_origin(request, form.cleaned_data.get("reason") or "")
        if change:
            services.task_update(
                task=obj,
                origin=origin,
                expected_version=form.cleaned_data.get("loaded_version"),
                alert_channels=channels,
            )
        else:
            services.task_create(task=obj, alert_channels=channels, origin=origin)
        disabled = services.alert_channels_disabled(channels or [])
        if disabled:
            self.message_user(
                request,
                MSG_CHANNELS_DISABLED % {"names": ", ".join(disabled)},
                messages.WARNING,
            )

    def delete_view(
        self,
        request: HttpRequest,
        object_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        task = self.get_object(request, unquote(object_id))
        if task is not None and task.is_system:
            # Its page, saying why, rather than a bare 403 (no delete permission).
            self.message_user(
                request, SystemTaskProtected(task.name).message, messages.ERROR
            )
            return redirect(
                reverse("admin:scheduler_app_scheduledtask_change", args=[task.pk])
            )
        runs = (
            list(
                services.task_unfinished_runs(
                    tasks=ScheduledTask.objects.filter(pk=task.pk)
                )[:20]
            )
            if task is not None
            else []
        )
        reason = reason_context(request, AuditAction.DELETE)
        # Django deletes on any non-empty POST, the confirmation's or not.
        if request.method == "POST" and request.POST:
            try:
                services.reason_check(
                    admin_origin(request, reason["reason"]), action=AuditAction.DELETE
                )
            except ReasonInvalid as exc:
                # The confirmation again, with the error on its reason field.
                reason["reason_error"] = exc.message
                request.POST = QueryDict()
        extra_context = {
            **(extra_context or {}),
            "unfinished_runs": runs,
            **reason,
        }
        try:
            return super().delete_view(request, object_id, extra_context)
        except TaskBusy as exc:  # the confirmation's box was left unticked
            self.message_user(request, exc.message, messages.ERROR)
            return redirect(request.path)

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """The tasks and a count of their history, not every execution one by one.

        Deleting a task deletes its history (the service's rule), so no permission
        to delete executions is asked for, and a task with a million runs does not
        list them all on the confirmation page.
        """
        tasks = list(objs)
        runs = TaskExecution.objects.filter(task__in=tasks).count()
        deleted: list[Any] = [str(task) for task in tasks]
        if runs:
            deleted.append(
                ngettext(
                    "%(count)d execution (the history)",
                    "%(count)d executions (the history)",
                    runs,
                )
                % {"count": runs}
            )
        counts = {
            str(ScheduledTask._meta.verbose_name_plural): len(tasks),
            str(TaskExecution._meta.verbose_name_plural): runs,
        }
        return deleted, counts, set(), []

    def delete_model(self, request: HttpRequest, obj: ScheduledTask) -> None:
        services.task_delete(
            task=obj,
            cancel_runs=request.POST.get("cancel_runs") == "on",
            origin=admin_origin(request, request.POST.get("reason", "")),
        )

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[ScheduledTask]
    ) -> None:
        services.tasks_delete(
            tasks=queryset, origin=admin_origin(request, request.POST.get("reason", ""))
        )

    # Pages of their own: run buttons, JSON for the form's script

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view

        def view(function: Any) -> Any:
            def bound(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                return function(request, self, *args, **kwargs)

            return wrap(bound)

        return [
            path(
                "<path:object_id>/run/",
                view(task_views.run_now),
                name="%s_%s_run" % info,
            ),
            path(
                "<path:object_id>/run-with-parameters/",
                view(task_views.run_with_parameters),
                name="%s_%s_run_with_parameters" % info,
            ),
            path(
                "handler-parameters/",
                view(task_views.handler_parameters),
                name="%s_%s_handler_parameters" % info,
            ),
            path(
                "preview/",
                view(task_views.schedule_preview),
                name="%s_%s_preview" % info,
            ),
            path(
                "timeline/",
                view(timeline.timeline_view),
                name="%s_%s_timeline" % info,
            ),
            *super().get_urls(),
        ]

    # Permissions (Meta.permissions) behind the actions and buttons

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("scheduler_app.run_scheduledtask")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return services.may_change_status(request.user)

    def has_delete_permission(
        self, request: HttpRequest, obj: ScheduledTask | None = None
    ) -> bool:
        if obj is not None and obj.is_system:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Replaced by delete_tasks, which goes through the service (system tasks refuse).
        actions.pop("delete_selected", None)
        return actions
