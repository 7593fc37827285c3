"""The task list's actions: each calls one service and reports a count with ngettext."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import services
from ..exceptions import SchedulerError
from ..models import ScheduledTask

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


class TaskActionsMixin(admin.ModelAdmin):
    """Run now, pause, resume, enable, disable and delete, for ScheduledTaskAdmin."""

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
        requests = services.tasks_request_run(tasks=queryset)
        for refusal in requests.refused:
            self.message_user(request, refusal, messages.ERROR)
        count = requests.requested
        if not count:
            return
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
        change = services.tasks_pause(tasks=queryset)
        self.message_user(
            request,
            ngettext(
                "Paused %(count)d task.", "Paused %(count)d tasks.", change.changed
            )
            % {"count": change.changed},
            messages.SUCCESS,
        )
        self._refused(request, change.disabled, MSG_NOT_PAUSED_DISABLED)

    @admin.action(description=_("Resume selected tasks"), permissions=["pause"])
    def resume(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        change = services.tasks_resume(tasks=queryset)
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
        count = services.tasks_enable(tasks=queryset)
        self.message_user(
            request,
            ngettext("Enabled %(count)d task.", "Enabled %(count)d tasks.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Disable selected tasks"), permissions=["pause"])
    def disable(self, request: HttpRequest, queryset: QuerySet[ScheduledTask]) -> None:
        count = services.tasks_disable(tasks=queryset)
        self.message_user(
            request,
            ngettext("Disabled %(count)d task.", "Disabled %(count)d tasks.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Delete selected tasks"), permissions=["delete"])
    def delete_tasks(
        self, request: HttpRequest, queryset: QuerySet[ScheduledTask]
    ) -> None:
        try:
            count = services.tasks_delete(tasks=queryset)
        except SchedulerError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(
            request,
            ngettext("Deleted %(count)d task.", "Deleted %(count)d tasks.", count)
            % {"count": count},
            messages.SUCCESS,
        )
