"""Admin: tasks (run now, pause, resume), their executions (read-only) and scheduler instances."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet, construct_instance
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .exceptions import SchedulerError
from .models import ScheduledTask, SchedulerInstance, TaskExecution
from .schedules import describe_interval

STATUS_COLOURS = {
    "active": "#2e7d32",
    "paused": "#ef6c00",
    "disabled": "#757575",
    "pending": "#546e7a",
    "running": "#1565c0",
    "success": "#2e7d32",
    "failed": "#c62828",
    "skipped": "#8d6e63",
    "cancelled": "#757575",
}


def status_badge(value: str, label: str) -> str:
    return format_html(
        '<span class="scheduler-badge" style="background:{};color:#fff;padding:1px 7px;'
        'border-radius:9px;font-size:11px;white-space:nowrap">{}</span>',
        STATUS_COLOURS.get(value, "#757575"),
        label,
    )


def pretty_json(value: Any) -> str:
    if value in (None, "", {}, []):
        return "—"
    return format_html(
        '<pre style="margin:0;white-space:pre-wrap">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str),
    )


class ScheduledTaskForm(forms.ModelForm):
    class Meta:
        model = ScheduledTask
        exclude = ["last_run_at", "next_run_at", "run_count", "success_count", "fail_count"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # ModelForm copies cleaned_data onto the instance only after clean(); do it
        # now so the submitted values are validated, not the stored ones.
        task = construct_instance(self, self.instance, self._meta.fields, self._meta.exclude)
        try:
            services.task_validate(
                task,
                require_future_run_date=task.pk is None
                and task.task_type == ScheduledTask.TaskType.DATE,
            )
        except services.TaskInvalid as exc:
            for error in exc.errors:
                field = error.field if error.field in self.fields else None
                if field is None and error.field:
                    # A parameter's problem: shown on the parameters input.
                    field = "handler_kwargs"
                self.add_error(field, error.message)
        return cleaned


class RecentExecutionsFormSet(BaseInlineFormSet):
    """Only the task's latest runs: an inline formset cannot take a sliced queryset."""

    limit = 20

    def get_queryset(self) -> QuerySet[TaskExecution]:
        # Built once per formset, as the base class does: it is called for every form,
        # and a new queryset each time would cost two queries per row.
        if not hasattr(self, "_recent_queryset"):
            queryset = super().get_queryset()
            latest = list(
                queryset.order_by("-created_at", "-id").values_list("pk", flat=True)[: self.limit]
            )
            self._recent_queryset = queryset.filter(pk__in=latest).defer(
                "log_output", "error_traceback", "result"
            )
        return self._recent_queryset


class RecentExecutionsInline(admin.TabularInline):
    model = TaskExecution
    formset = RecentExecutionsFormSet
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = _("recent executions (latest 20)")
    fields = ["status_display", "trigger_type", "scheduled_for", "started_at", "duration_ms", "attempt", "error_message"]
    readonly_fields = fields

    @admin.display(description=_("status"))
    def status_display(self, obj: TaskExecution) -> str:
        return status_badge(obj.status, obj.get_status_display())

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ScheduledTask)
class ScheduledTaskAdmin(admin.ModelAdmin):
    form = ScheduledTaskForm
    list_display = [
        "name",
        "task_type",
        "schedule",
        "status_display",
        "next_run_at",
        "last_run_at",
        "run_count",
        "success_count",
        "fail_count",
        "is_system",
    ]
    list_filter = ["task_type", "status", "is_system", "overlap_policy"]
    search_fields = ["name", "description", "handler_path"]
    # is_system is set by code (migrations, declared schedules), never by hand:
    # unticking it would make a system task deletable.
    readonly_fields = ["is_system", "next_run_at", "last_run_at", "run_count", "success_count", "fail_count", "created_at", "updated_at"]
    actions = ["run_now", "pause", "resume", "delete_tasks"]
    inlines = [RecentExecutionsInline]
    fieldsets = [
        (None, {"fields": ["name", "description", "status", "is_system"]}),
        (_("Handler"), {"fields": ["handler_path", "handler_kwargs"]}),
        (
            _("Schedule"),
            {"fields": ["task_type", "cron_expression", "interval_seconds", "run_date", "timezone"]},
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
            _("Statistics"),
            {"fields": ["next_run_at", "last_run_at", "run_count", "success_count", "fail_count", "created_at", "updated_at"]},
        ),
    ]

    @admin.display(description=_("schedule"))
    def schedule(self, obj: ScheduledTask) -> str:
        if obj.task_type == ScheduledTask.TaskType.CRON:
            return obj.cron_expression
        if obj.task_type == ScheduledTask.TaskType.INTERVAL and obj.interval_seconds:
            return describe_interval(obj.interval_seconds)
        if obj.task_type == ScheduledTask.TaskType.DATE and obj.run_date:
            return format_html("{}", obj.run_date)
        return "—"

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: ScheduledTask) -> str:
        return status_badge(obj.status, obj.get_status_display())

    # Custom permissions (Meta.permissions) behind the actions.
    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("scheduler_app.run_scheduledtask")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("scheduler_app.pause_scheduledtask")

    def has_delete_permission(self, request: HttpRequest, obj: ScheduledTask | None = None) -> bool:
        if obj is not None and obj.is_system:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Replaced by delete_tasks, which goes through the service (system tasks refuse).
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description=_("Run selected tasks now"), permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        count = services.tasks_request_run(queryset)
        self.message_user(
            request,
            ngettext(
                "Requested a run of %(count)d task; the scheduler starts it within a second.",
                "Requested a run of %(count)d tasks; the scheduler starts them within a second.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Pause selected tasks"), permissions=["pause"])
    def pause(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        count = services.tasks_set_status(queryset, ScheduledTask.Status.PAUSED)
        self.message_user(
            request,
            ngettext("Paused %(count)d task.", "Paused %(count)d tasks.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Resume selected tasks"), permissions=["pause"])
    def resume(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        count = services.tasks_set_status(queryset, ScheduledTask.Status.ACTIVE)
        self.message_user(
            request,
            ngettext("Resumed %(count)d task.", "Resumed %(count)d tasks.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Delete selected tasks"), permissions=["delete"])
    def delete_tasks(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        try:
            count = services.tasks_delete(queryset)
        except SchedulerError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(
            request,
            ngettext("Deleted %(count)d task.", "Deleted %(count)d tasks.", count) % {"count": count},
            messages.SUCCESS,
        )

    def save_model(self, request: HttpRequest, obj: ScheduledTask, form: Any, change: bool) -> None:
        services.task_save(obj)

    def delete_model(self, request: HttpRequest, obj: ScheduledTask) -> None:
        services.task_delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        services.tasks_delete(queryset)


@admin.register(TaskExecution)
class TaskExecutionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "task",
        "status_display",
        "trigger_type",
        "scheduled_for",
        "started_at",
        "duration_ms",
        "attempt",
    ]
    list_filter = ["status", "failure_kind", "trigger_type"]
    search_fields = ["task__name", "error_message"]
    list_select_related = ["task"]
    show_full_result_count = False
    actions = ["cancel"]
    fields = [
        "task",
        "status_display",
        "failure_kind",
        "trigger_type",
        "attempt",
        "retry_of",
        "scheduled_for",
        "created_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "progress",
        "instance_id",
        "parameters",
        "result_display",
        "error_message",
        "traceback_display",
        "log_display",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskExecution]:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            # The list never shows these; on a million rows they are most of the bytes.
            queryset = queryset.defer("log_output", "error_traceback", "result", "kwargs")
        return queryset

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: TaskExecution) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=_("progress"))
    def progress(self, obj: TaskExecution) -> str:
        if obj.progress_done is None:
            return "—"
        if obj.progress_total:
            return format_html(
                '<progress value="{}" max="{}"></progress> {} / {}',
                obj.progress_done,
                obj.progress_total,
                obj.progress_done,
                obj.progress_total,
            )
        return str(obj.progress_done)

    @admin.display(description=_("parameters"))
    def parameters(self, obj: TaskExecution) -> str:
        return pretty_json(obj.kwargs)

    @admin.display(description=_("result"))
    def result_display(self, obj: TaskExecution) -> str:
        return pretty_json(obj.result)

    @admin.display(description=_("traceback"))
    def traceback_display(self, obj: TaskExecution) -> str:
        if not obj.error_traceback:
            return "—"
        return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>', obj.error_traceback)

    @admin.display(description=_("log"))
    def log_display(self, obj: TaskExecution) -> str:
        if not obj.log_output:
            return "—"
        return format_html(
            '<pre style="margin:0;max-height:40em;overflow:auto;white-space:pre-wrap">{}</pre>',
            obj.log_output,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # History is append-only; the cleanup_executions system task prunes it.
        return False

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("scheduler_app.run_scheduledtask")

    @admin.action(description=_("Cancel selected executions"), permissions=["run"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[TaskExecution]) -> None:
        cancelled, refused = 0, []
        for execution in queryset.unfinished():
            try:
                services.execution_cancel(execution)
                cancelled += 1
            except SchedulerError as exc:
                refused.append(exc.message)
        self.message_user(
            request,
            ngettext(
                "Cancelled (or asked to stop) %(count)d execution.",
                "Cancelled (or asked to stop) %(count)d executions.",
                cancelled,
            )
            % {"count": cancelled},
            messages.SUCCESS,
        )
        for message in refused:
            self.message_user(request, message, messages.WARNING)


@admin.register(SchedulerInstance)
class SchedulerInstanceAdmin(admin.ModelAdmin):
    list_display = ["instance_id", "hostname", "pid", "is_leader", "last_heartbeat_at", "started_at", "stopped_at", "version"]
    list_filter = ["is_leader"]
    readonly_fields = list_display

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
