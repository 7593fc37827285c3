"""URLs of /api/v1/: the router's endpoints (slash optional), the schema and docs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import URLPattern, URLResolver, re_path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)
from rest_framework import routers

from . import views

app_name = "api"


class OptionalSlashRouter(routers.DefaultRouter):
    """Routes that answer with or without the trailing slash.

    The seed's clients call `/api/v1/tasks?api_key=...`; without this, Django's
    APPEND_SLASH would answer their POST with a redirect that drops the body.
    """

    include_format_suffixes = False
    #: Shown on the browsable API's front page besides the viewsets' lists.
    extra_root_links = {
        "tasks/handlers": "task-handlers",
        "tasks/locks": "task-locks",
        "scheduler/status": "scheduler-status",
        "schema": "schema",
        "docs": "docs",
        "redoc": "redoc",
    }

    class APIRootView(routers.APIRootView):
        """The scheduled tasks API, version 1.

        Tasks (cron, interval, one-off date, manual) and their runs: list, create,
        change, pause, resume, run now, cancel; the scheduler's status, locks,
        alerts and the audit trail. Every endpoint needs an API key (`Authorization: Api-Key <key>`,
        made in the admin) or a signed-in session, and writes need the matching
        permission. `schema` is the OpenAPI document, `docs` (Swagger UI) and
        `redoc` (ReDoc) read it.
        """

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"

    def get_api_root_view(self, api_urls: Any = None) -> Callable[..., Any]:
        api_root_dict = {
            prefix: self.routes[0].name.format(basename=basename)
            for prefix, _viewset, basename in self.registry
        }
        return self.APIRootView.as_view(
            api_root_dict={**api_root_dict, **self.extra_root_links}
        )


router = OptionalSlashRouter()
# Before "tasks", whose detail route would otherwise take "executions" for a name.
router.register("tasks/executions", views.TaskExecutionViewSet, basename="execution")
router.register("tasks", views.ScheduledTaskViewSet, basename="task")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("audit", views.AuditEntryViewSet, basename="audit")

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(
        r"^docs/?$", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"
    ),
    re_path(
        r"^redoc/?$", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"
    ),
    re_path(
        r"^scheduler/status/?$",
        views.SchedulerStatusView.as_view(),
        name="scheduler-status",
    ),
    *router.urls,
    # Last: anything else under /api/v1/ is a JSON 404, not Django's HTML page;
    # [\s\S], not ".", so that a path holding a newline (%0A) matches too.
    re_path(r"^(?P<path>[\s\S]*)$", views.not_found),
]
