"""Operations pages: live locks (with force release) and scheduler health.

Wired through ScheduledTaskAdmin.get_urls and admin_site.admin_view, linked from
the app index and the task list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .. import selectors, services
from ..conf import app_settings

if TYPE_CHECKING:
    from .tasks import ScheduledTaskAdmin


#: The health page lists the tasks due within this many seconds.
DUE_WINDOW_SECONDS = 3600

MSG_RELEASED = _("Released the lock “%(key)s”.")
MSG_ALREADY_GONE = _("The lock “%(key)s” was no longer held; nothing to release.")
MSG_NOT_A_TASK_LOCK = _(
    "Only task locks can be released here; “%(key)s” is not one (the leader lease "
    "expires by itself when its scheduler stops)."
)


def _context(
    request: HttpRequest, model_admin: ScheduledTaskAdmin, title: str
) -> dict[str, Any]:
    request.current_app = model_admin.admin_site.name
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "locks_url": reverse("admin:scheduler_app_scheduledtask_locks"),
        "health_url": reverse("admin:scheduler_app_scheduledtask_health"),
    }


def locks(request: HttpRequest, model_admin: ScheduledTaskAdmin) -> HttpResponse:
    """Which locks are held, by whom, since when, and how long they still live."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    context = {
        **_context(request, model_admin, gettext("Locks")),
        "locks": selectors.locks_overview(),
        "now": timezone.now(),
        "can_release": model_admin.has_release_lock_permission(request),
    }
    return TemplateResponse(request, "admin/scheduler_app/locks.html", context)


def release_lock(request: HttpRequest, model_admin: ScheduledTaskAdmin) -> HttpResponse:
    """Force-release a task lock after a confirmation page (GET shows it, POST acts)."""
    if not model_admin.has_release_lock_permission(request):
        raise PermissionDenied
    key = (
        request.POST.get("key") if request.method == "POST" else request.GET.get("key")
    )
    locks_url = reverse("admin:scheduler_app_scheduledtask_locks")
    lock = next((item for item in selectors.locks_overview() if item.key == key), None)
    if not key or selectors.task_id_of_lock_key(key) is None:
        model_admin.message_user(
            request, MSG_NOT_A_TASK_LOCK % {"key": key or ""}, messages.ERROR
        )
        return redirect(locks_url)
    if request.method == "POST":
        released = services.lock_force_release(key, by=str(request.user))
        task = model_admin.get_object(request, str(selectors.task_id_of_lock_key(key)))
        if released and task is not None:
            model_admin.log_change(request, task, gettext("Force-released its lock."))
        model_admin.message_user(
            request,
            (MSG_RELEASED if released else MSG_ALREADY_GONE) % {"key": key},
            messages.SUCCESS if released else messages.WARNING,
        )
        return redirect(locks_url)
    if lock is None:
        model_admin.message_user(
            request, MSG_ALREADY_GONE % {"key": key}, messages.WARNING
        )
        return redirect(locks_url)
    context = {
        **_context(
            request, model_admin, gettext("Release the lock “%(key)s”?") % {"key": key}
        ),
        "lock": lock,
    }
    return TemplateResponse(
        request, "admin/scheduler_app/lock_release_confirmation.html", context
    )


def health(request: HttpRequest, model_admin: ScheduledTaskAdmin) -> HttpResponse:
    """Scheduler instances, the leader, heartbeat ages, versions and the next hour's tasks."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    now = timezone.now()
    context = {
        **_context(request, model_admin, gettext("Scheduler health")),
        "status": selectors.scheduler_status(now=now),
        "due_tasks": selectors.tasks_due_within(DUE_WINDOW_SECONDS, now=now),
        "now": now,
        "stale_seconds": app_settings.SCHEDULER_INSTANCE_STALE_SECONDS,
    }
    return TemplateResponse(request, "admin/scheduler_app/health.html", context)
