"""Permissions: Django model permissions (view for reads) and named ones for actions."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission, DjangoModelPermissions
from rest_framework.request import Request

from ..services import PAUSE_PERMISSION

VIEW_TASK = "scheduler_app.view_scheduledtask"
VIEW_EXECUTION = "scheduler_app.view_taskexecution"
RUN_TASK = "scheduler_app.run_scheduledtask"
#: Pause and resume, and a status changed through PUT/PATCH (the service checks that).
PAUSE_TASK = PAUSE_PERMISSION
RELEASE_LOCK = "scheduler_app.release_lock_scheduledtask"
#: The audit trail: the model's own view permission, given apart from the tasks'.
VIEW_AUDIT = "scheduler_app.view_auditentry"


def _has_perms(request: Request, perms: list[str]) -> bool:
    user = request.user
    return bool(user and user.is_authenticated and user.has_perms(perms))


class ModelPermissions(DjangoModelPermissions):
    """DjangoModelPermissions where reading needs the model's view permission too."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


class ActionPermissions(ModelPermissions):
    """Model permissions for CRUD; `view.action_permissions[action]` for other actions.

    Extra actions name their permissions explicitly (run, pause, release a lock),
    so what each endpoint needs is written next to it, not derived from the method.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        action_permissions: dict[str, list[str]] = getattr(
            view, "action_permissions", {}
        )
        required = action_permissions.get(getattr(view, "action", None) or "")
        if required is None:
            return super().has_permission(request, view)
        return _has_perms(request, required)


class RequiredPermissions(BasePermission):
    """Every permission in `view.required_permissions` (for views without a model)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return _has_perms(request, list(getattr(view, "required_permissions", [])))
