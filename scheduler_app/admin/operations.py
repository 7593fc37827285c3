"""The admins of what keeps the scheduler running, and the operations pages they own.

- SchedulerInstanceAdmin: scheduler instances and Celery worker processes (read-only,
  kept by their heartbeats), and the Health page (`health/`).
- SchedulerLockAdmin: the Locks page as its list (the live locks, in Redis or in
  SchedulerLock rows, whichever backend holds them) and force release (`release/`).

Both pages are linked from the app index and the task list (not from the model
list: they are tools, not tables). Whoever may view the tasks may see them;
releasing a lock needs the "Can force-release task locks" permission.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .. import selectors, services
from ..choices import AuditAction, ExecutorName
from ..conf import app_settings
from ..exceptions import LockHolderAlive, ReasonInvalid
from ..locks import task_id_of_lock_key
from ..models import ScheduledTask, SchedulerInstance, SchedulerLock
from .display import relative_time
from .task_actions import admin_origin, reason_context

#: The health page lists the tasks due within this many seconds.
DUE_WINDOW_SECONDS = 3600

MSG_RELEASED = _("Released the lock “%(key)s”.")
MSG_ALREADY_GONE = _("The lock “%(key)s” was no longer held; nothing to release.")
MSG_NOT_A_TASK_LOCK = _(
    "Only task locks can be released here; “%(key)s” is not one (the leader lease "
    "expires by itself when its scheduler stops)."
)

LOCKS_URL_NAME = "admin:scheduler_app_schedulerlock_changelist"
HEALTH_URL_NAME = "admin:scheduler_app_schedulerinstance_health"
TIMELINE_URL_NAME = "admin:scheduler_app_scheduledtask_timeline"


def may_view_operations(site: admin.AdminSite, request: HttpRequest) -> bool:
    """The Locks and Health pages show tasks: whoever may view the tasks sees them."""
    return site.get_model_admin(ScheduledTask).has_view_permission(request)


def operations_context(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, title: str
) -> dict[str, Any]:
    """What operations_base.html needs: the admin's context and both pages' links."""
    request.current_app = model_admin.admin_site.name
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "locks_url": reverse(LOCKS_URL_NAME),
        "health_url": reverse(HEALTH_URL_NAME),
        "timeline_url": reverse(TIMELINE_URL_NAME),
    }


@admin.register(SchedulerInstance)
class SchedulerInstanceAdmin(admin.ModelAdmin):
    list_display = [
        "instance_id",
        "kind",
        "hostname",
        "pid",
        "is_leader",
        "heartbeat",
        "started_at",
        "stopped_at",
        "version",
    ]
    list_filter = ["kind", "is_leader"]
    readonly_fields = [
        "instance_id",
        "kind",
        "hostname",
        "pid",
        "is_leader",
        "last_heartbeat_at",
        "started_at",
        "stopped_at",
        "version",
    ]

    @admin.display(description=_("last heartbeat"), ordering="last_heartbeat_at")
    def heartbeat(self, obj: SchedulerInstance) -> str:
        return relative_time(obj.last_heartbeat_at)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        # Before the model's own URLs, whose "<path:object_id>/" would take it.
        return [
            path(
                "health/",
                self.admin_site.admin_view(self.health_view),
                name="%s_%s_health" % info,
            ),
            *super().get_urls(),
        ]

    def health_view(self, request: HttpRequest) -> HttpResponse:
        """Scheduler instances, the leader, heartbeat ages, versions and the next hour's tasks."""
        if not may_view_operations(self.admin_site, request):
            raise PermissionDenied
        now = timezone.now()
        status = selectors.scheduler_status(now=now)
        context = {
            **operations_context(self, request, gettext("Scheduler health")),
            "status": status,
            # The inline executor has no workers to count; a worker that ran
            # before a switch back is still listed.
            "shows_workers": bool(status.workers)
            or app_settings.SCHEDULER_EXECUTOR == ExecutorName.CELERY,
            "due_tasks": selectors.tasks_due_within(DUE_WINDOW_SECONDS, now=now),
            "now": now,
            "stale_seconds": app_settings.SCHEDULER_INSTANCE_STALE_SECONDS,
        }
        return TemplateResponse(request, "admin/scheduler_app/health.html", context)


@admin.register(SchedulerLock)
class SchedulerLockAdmin(admin.ModelAdmin):
    """The Locks page in place of a change list; locks are not edited here."""

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.changelist_view), name="%s_%s_changelist" % info),
            path("release/", wrap(self.release_view), name="%s_%s_release" % info),
        ]

    def get_model_perms(self, request: HttpRequest) -> dict[str, bool]:
        # Left out of the model list: the page is linked as an operations tool.
        return {"add": False, "change": False, "delete": False, "view": False}

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_view_operations(self.admin_site, request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("scheduler_app.release_lock_scheduledtask")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Which locks are held, by whom, since when, and how long they still live."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **operations_context(self, request, gettext("Locks")),
            "locks": selectors.locks_overview(),
            "now": timezone.now(),
            "can_release": self.has_release_permission(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/scheduler_app/locks.html", context)

    def release_view(self, request: HttpRequest) -> HttpResponse:
        """Force-release a task lock after a confirmation page (GET shows it, POST acts)."""
        if not self.has_release_permission(request):
            raise PermissionDenied
        key = (
            request.POST.get("key")
            if request.method == "POST"
            else request.GET.get("key")
        )
        locks_url = reverse(LOCKS_URL_NAME)
        task_id = task_id_of_lock_key(key) if key else None
        if not key or task_id is None:
            self.message_user(
                request, MSG_NOT_A_TASK_LOCK % {"key": key or ""}, messages.ERROR
            )
            return redirect(locks_url)
        reason = reason_context(request, AuditAction.RELEASE_LOCK)
        if request.method == "POST":
            try:
                # The confirmation said whether its run is alive: the POST is the
                # operator's answer, force included.
                released = services.lock_force_release(
                    key,
                    origin=admin_origin(request, request.POST.get("reason", "")),
                    force=request.POST.get("force") == "1",
                )
            except LockHolderAlive as exc:  # it came alive since the page was shown
                self.message_user(request, exc.message, messages.ERROR)
                return redirect("%s?%s" % (request.path, urlencode({"key": key})))
            except ReasonInvalid as exc:  # the confirmation again, with the error
                reason["reason_error"] = exc.message
                return self._release_confirmation(request, key, reason)
            self.message_user(
                request,
                (MSG_RELEASED if released else MSG_ALREADY_GONE) % {"key": key},
                messages.SUCCESS if released else messages.WARNING,
            )
            return redirect(locks_url)
        return self._release_confirmation(request, key, reason)

    def _release_confirmation(
        self, request: HttpRequest, key: str, reason: dict[str, Any]
    ) -> HttpResponse:
        locks_url = reverse(LOCKS_URL_NAME)
        lock = next(
            (item for item in selectors.locks_overview() if item.key == key), None
        )
        if lock is None:
            self.message_user(
                request, MSG_ALREADY_GONE % {"key": key}, messages.WARNING
            )
            return redirect(locks_url)
        title = gettext("Release the lock “%(key)s”?") % {"key": key}
        context = {
            **operations_context(self, request, title),
            "lock": lock,
            "holder": services.lock_holder(lock.owner),
            **reason,
        }
        return TemplateResponse(
            request, "admin/scheduler_app/lock_release_confirmation.html", context
        )
