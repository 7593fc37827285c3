"""Task pages beside the change form: run now, run with parameters, and the form's JSON helpers.

Each is a function of (request, model_admin, ...) wired through ScheduledTaskAdmin.get_urls
and admin_site.admin_view; each checks its permission first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from .. import services
from ..exceptions import SchedulerError
from ..forms import (
    RunWithParametersForm,
    SchedulePreviewForm,
    add_service_errors,
    param_field_name,
    parameter_spec_dict,
)
from ..handlers.registry import get_handler
from ..models import ScheduledTask, TaskExecution
from .display import DATETIME_SECONDS_FORMAT, relative_time
from .task_actions import admin_origin, scheduler_running

if TYPE_CHECKING:
    from .task_admin import ScheduledTaskAdmin

MSG_RUN_REQUESTED = _(
    "Requested a run of “%(name)s” (execution #%(id)s); the scheduler starts it "
    "within a second."
)
MSG_RUN_WAITS = _(
    "Requested a run of “%(name)s” (execution #%(id)s); no scheduler is running, "
    "so it waits until one starts (python manage.py runscheduler)."
)
MSG_DST_NOTE = _(
    "A daylight saving time change falls among these runs (at %(when)s): the clock "
    "times shown are %(zone)s local times."
)
PREVIEW_COUNT = 5


def _tell_requested(
    request: HttpRequest,
    model_admin: ScheduledTaskAdmin,
    task: ScheduledTask,
    execution: TaskExecution,
) -> None:
    values = {"name": task.name, "id": execution.pk}
    if scheduler_running():
        model_admin.message_user(request, MSG_RUN_REQUESTED % values, messages.SUCCESS)
    else:
        model_admin.message_user(request, MSG_RUN_WAITS % values, messages.WARNING)


def _execution_url(execution: TaskExecution) -> str:
    return reverse("admin:scheduler_app_taskexecution_change", args=[execution.pk])


@require_POST
def run_now(
    request: HttpRequest, model_admin: ScheduledTaskAdmin, object_id: str
) -> HttpResponse:
    """The change page's Run now button: a pending execution, then its page."""
    if not model_admin.has_run_permission(request):
        raise PermissionDenied
    task = model_admin.get_object(request, object_id)
    if task is None:
        return redirect(reverse("admin:scheduler_app_scheduledtask_changelist"))
    try:
        execution = services.task_request_run(task=task, origin=admin_origin(request))
    except SchedulerError as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return redirect(
            reverse("admin:scheduler_app_scheduledtask_change", args=[task.pk])
        )
    _tell_requested(request, model_admin, task, execution)
    return redirect(_execution_url(execution))


def run_with_parameters(
    request: HttpRequest, model_admin: ScheduledTaskAdmin, object_id: str
) -> HttpResponse:
    """A form prefilled with the task's parameters; one run with the values changed."""
    if not model_admin.has_run_permission(request):
        raise PermissionDenied
    task = model_admin.get_object(request, object_id)
    if task is None:
        return redirect(reverse("admin:scheduler_app_scheduledtask_changelist"))
    handler_error = ""
    try:
        info = get_handler(task.handler_path)
    except SchedulerError as exc:
        info, handler_error = None, exc.message
    form_class = RunWithParametersForm.for_handler(info)
    if request.method == "POST":
        form = form_class(request.POST, task=task)
        if form.is_valid():
            try:
                execution = services.task_request_run(
                    task=task, overrides=form.overrides(), origin=admin_origin(request)
                )
            except services.TaskInvalid as exc:
                add_service_errors(form, exc, form.parameter_names)
            else:
                _tell_requested(request, model_admin, task, execution)
                return redirect(_execution_url(execution))
    else:
        form = form_class(task=task)
    fields = [param_field_name(name) for name in form.parameter_names]
    # The stubs want a ModelForm, but AdminForm takes any form: Django's own
    # user_change_password gives it a plain Form, as this page does.
    adminform = helpers.AdminForm(
        form,  # type: ignore[arg-type]
        [(None, {"fields": fields})] if fields else [],
        {},
        model_admin=model_admin,
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": gettext("Run “%(name)s” with parameters") % {"name": task.name},
        "opts": model_admin.opts,
        "original": task,
        "adminform": adminform,
        "form": form,
        # A plain Form again (see AdminForm above): the stubs want a ModelForm.
        "errors": helpers.AdminErrorList(form, []),  # type: ignore[arg-type]
        "handler_error": handler_error,
        "media": model_admin.media + adminform.media,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(
        request, "admin/scheduler_app/scheduledtask/run_with_parameters.html", context
    )


def _can_edit_tasks(request: HttpRequest, model_admin: ScheduledTaskAdmin) -> bool:
    return model_admin.has_add_permission(request) or model_admin.has_change_permission(
        request
    )


@require_GET
def handler_parameters(
    request: HttpRequest, model_admin: ScheduledTaskAdmin
) -> JsonResponse:
    """A handler's description and parameter specs, for the task form's script."""
    if not _can_edit_tasks(request, model_admin):
        raise PermissionDenied
    handler_path = request.GET.get("path", "")
    try:
        info = get_handler(handler_path)
    except SchedulerError as exc:
        return JsonResponse(
            {
                "path": handler_path,
                "found": False,
                "broken": True,
                "error": exc.message,
                "params": [],
            }
        )
    return JsonResponse(
        {
            "path": info.path,
            "found": True,
            "name": info.name,
            "description": info.description,
            "broken": info.broken,
            "error": info.error,
            "accepts_var_kwargs": info.accepts_var_kwargs,
            "params": [parameter_spec_dict(spec) for spec in info.params],
        }
    )


@require_GET
def schedule_preview(
    request: HttpRequest, model_admin: ScheduledTaskAdmin
) -> JsonResponse:
    """The next fire times of the schedule being typed, its description and any DST note."""
    if not _can_edit_tasks(request, model_admin):
        raise PermissionDenied
    form = SchedulePreviewForm(request.GET)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        return JsonResponse(
            {"ok": False, "field": field, "error": " ".join(map(str, errors))}
        )
    schedule = form.schedule()
    # The form shows the other kinds' words itself, from the field it edits.
    description = (
        schedule.describe() if schedule.kind == ScheduledTask.TaskType.CRON else ""
    )
    try:
        preview = services.schedule_preview(schedule=schedule, count=PREVIEW_COUNT)
    except SchedulerError as exc:
        # No description of a schedule that cannot run: cron-descriptor reads
        # "61 * * * *" as "At 61 minutes past the hour".
        return JsonResponse(
            {"ok": False, "field": exc.field, "error": exc.message, "description": ""}
        )
    dst_note = ""
    if preview.dst_transitions:
        dst_note = MSG_DST_NOTE % {
            "when": ", ".join(
                "%s %s"
                % (date_format(moment, DATETIME_SECONDS_FORMAT), moment.tzname())
                for moment in preview.dst_transitions
            ),
            "zone": preview.timezone_name,
        }
    return JsonResponse(
        {
            "ok": True,
            "description": description,
            "timezone": preview.timezone_name,
            "times": [
                {
                    "iso": moment.isoformat(),
                    "text": "%s %s (%s)"
                    % (
                        date_format(moment, DATETIME_SECONDS_FORMAT),
                        moment.tzname(),
                        date_format(moment, "D"),
                    ),
                    "relative": relative_time(moment),
                }
                for moment in preview.fire_times
            ],
            "dst_note": dst_note,
            "error": "",
        }
    )
