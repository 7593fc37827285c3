"""The task list's actions: each calls one service and reports a count with ngettext."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import services
from ..choices import AuditAction, AuditSource
from ..exceptions import ReasonInvalid, SchedulerError
from ..models import ScheduledTask, SchedulerInstance, TaskExecution

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

MSG_NOT_PAUSED_DISABLED = _(
    "Not paused, because disabled (%(count)d): %(names)s. A disabled task does not "
    "fire anyway; use “Enable selected tasks” to turn it back on."
)
MSG_NOT_RESUMED_DISABLED = _(
    "Not resumed, because disabled (%(count)d): %(names)s. Use “Enable selected "
    "tasks” to turn a disabled task back on."
)


def admin_origin(request: HttpRequest, reason: str = "") -> services.Origin:
    """Who acts through the admin: the signed-in user, with `reason`."""
    return services.Origin.of_request(request, source=AuditSource.ADMIN, reason=reason)


def reason_context(request: HttpRequest, action: AuditAction) -> dict[str, Any]:
    """The reason input's context (admin/scheduler_app/includes/reason_field.html)."""
    return {
        "reason": request.POST.get("reason", ""),
        "reason_required": services.reason_required(action),
        "reason_error": "",
    }


def scheduler_running() -> bool:
    """Whether a scheduler heartbeats, to say when a requested run starts."""
    return bool(services.instances_alive_ids(kind=SchedulerInstance.Kind.SCHEDULER))


class TaskActionsMixin(admin.ModelAdmin):
    """Run now, pause, resume, enable, disable and delete, for ScheduledTaskAdmin."""

    def _confirmed(
        self,
        request: HttpRequest,
        queryset: QuerySet[ScheduledTask],
        *,
        action: AuditAction,
        name: str,
        title: str,
        question: str,
        submit_label: str,
        act: Callable[[services.Origin], None],
        summary: str = "",
    ) -> HttpResponse | None:
        """Ask for a reason on a confirmation page (as delete_selected asks), then
        `act` with the admin's origin; the page again, the error on the reason
        field, when the reason is refused (ReasonInvalid: nothing changed)."""
        context = reason_context(request, action)
        if request.POST.get("post"):
            try:
                act(admin_origin(request, context["reason"]))
            except ReasonInvalid as exc:
                context["reason_error"] = exc.message
            else:
                return None
        context.update(
            {
                **self.admin_site.each_context(request),
                "title": title,
                "question": question,
                "submit_label": submit_label,
                "deleted_summary": summary,
                "tasks": list(queryset.order_by("name")),
                "opts": self.opts,
                "action_name": name,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "media": self.media,
            }
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            "admin/scheduler_app/scheduledtask/action_confirmation.html",
            context,
        )

    # Actions: each calls one service and reports a count

    def _refused(
        self, request: HttpRequest, disabled: list[str], message: StrOrPromise
    ) -> None:
        """Report the selected tasks an action left alone because they are disabled."""
        if disabled:
            names = ", ".join(disabled[:10])
            if len(disabled) > 10:
                names += ", …"
            self.message_user(
                request,
                message % {"count": len(disabled), "names": names},
                messages.WARNING,
            )

    @admin.action(description=_("Run selected tasks now"), permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        requests = services.tasks_request_run(
            tasks=queryset, origin=admin_origin(request)
        )
        for refusal in requests.refused:
            self.message_user(request, refusal, messages.ERROR)
        count = requests.requested
        if not count:
            return
        if scheduler_running():
            text = ngettext(
                "Requested a run of %(count)d task; the scheduler starts it within a second.",
                "Requested a run of %(count)d tasks; the scheduler starts them within a second.",
                count,
            )
            level = messages.SUCCESS
        else:
            text = ngettext(
                "Requested a run of %(count)d task; no scheduler is running, so it "
                "waits until one starts (python manage.py runscheduler).",
                "Requested a run of %(count)d tasks; no scheduler is running, so they "
                "wait until one starts (python manage.py runscheduler).",
                count,
            )
            level = messages.WARNING
        self.message_user(request, text % {"count": count}, level)

    @admin.action(description=_("Pause selected tasks"), permissions=["pause"])
    def pause(
        self, request: HttpRequest, queryset: QuerySet[ScheduledTask]
    ) -> HttpResponse | None:
        def act(origin: services.Origin) -> None:
            change = services.tasks_pause(tasks=queryset, origin=origin)
            self.message_user(
                request,
                ngettext(
                    "Paused %(count)d task.", "Paused %(count)d tasks.", change.changed
                )
                % {"count": change.changed},
                messages.SUCCESS,
            )
            self._refused(request, change.disabled, MSG_NOT_PAUSED_DISABLED)

        return self._confirmed(
            request,
            queryset,
            action=AuditAction.PAUSE,
            name="pause",
            title=gettext("Pause the selected tasks?"),
            question=gettext(
                "These tasks stop firing until they are resumed (run now still "
                "works). Say why, for whoever finds them paused."
            ),
            submit_label=gettext("Yes, pause them"),
            act=act,
        )

    @admin.action(description=_("Resume selected tasks"), permissions=["pause"])
    def resume(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        change = services.tasks_resume(tasks=queryset, origin=admin_origin(request))
        self.message_user(
            request,
            ngettext(
                "Resumed %(count)d task.", "Resumed %(count)d tasks.", change.changed
            )
            % {"count": change.changed},
            messages.SUCCESS,
        )
        self._refused(request, change.disabled, MSG_NOT_RESUMED_DISABLED)

    @admin.action(description=_("Enable selected tasks"), permissions=["pause"])
    def enable(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        count = services.tasks_enable(tasks=queryset, origin=admin_origin(request))
        self.message_user(
            request,
            ngettext("Enabled %(count)d task.", "Enabled %(count)d tasks.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Disable selected tasks"), permissions=["pause"])
    def disable(
        self, request: HttpRequest, queryset: QuerySet[ScheduledTask]
    ) -> HttpResponse | None:
        def act(origin: services.Origin) -> None:
            count = services.tasks_disable(tasks=queryset, origin=origin)
            self.message_user(
                request,
                ngettext("Disabled %(count)d task.", "Disabled %(count)d tasks.", count)
                % {"count": count},
                messages.SUCCESS,
            )

        return self._confirmed(
            request,
            queryset,
            action=AuditAction.DISABLE,
            name="disable",
            title=gettext("Disable the selected tasks?"),
            question=gettext(
                "These tasks are switched off until someone enables them again. Say "
                "why, for whoever finds them disabled."
            ),
            submit_label=gettext("Yes, disable them"),
            act=act,
        )

    @admin.action(description=_("Delete selected tasks"), permissions=["delete"])
    def delete_tasks(
        self, request: HttpRequest, queryset: QuerySet[ScheduledTask]
    ) -> HttpResponse | None:
        def act(origin: services.Origin) -> None:
            try:
                count = services.tasks_delete(tasks=queryset, origin=origin)
            except ReasonInvalid:
                raise
            except SchedulerError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
            self.message_user(
                request,
                ngettext("Deleted %(count)d task.", "Deleted %(count)d tasks.", count)
                % {"count": count},
                messages.SUCCESS,
            )

        runs = TaskExecution.objects.filter(task__in=queryset).count()
        return self._confirmed(
            request,
            queryset,
            action=AuditAction.DELETE,
            name="delete_tasks",
            title=gettext("Delete the selected tasks?"),
            question=gettext(
                "These tasks are deleted with their history; this cannot be undone."
            ),
            summary=ngettext(
                "Their history of %(count)d execution is deleted with them.",
                "Their history of %(count)d executions is deleted with them.",
                runs,
            )
            % {"count": runs},
            submit_label=gettext("Yes, I’m sure"),
            act=act,
        )
