"""Project URLs: the admin (the main UI) and the REST API under /api/v1/."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from scheduler_app.api.health import health

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # For uptime monitors and probes: no authentication (scheduler_app/api/health.py).
    path("health/", health, name="health"),
    # Log in / out links of the browsable API; before the API's catch-all 404.
    path("api/v1/auth/", include("rest_framework.urls")),
    path("api/v1/", include("scheduler_app.api.urls")),
]
