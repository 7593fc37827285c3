"""Project URLs: the admin (the main UI) and the REST API under /api/v1/."""

from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.views.generic import RedirectView

from scheduler_app.api.health import health
from scheduler_app.api.metrics import metrics


def _site_header() -> str:
    return settings.ADMIN_SITE_HEADER or gettext("Scheduled tasks")


# The product names itself (the project's choice, not the app's: an app
# installed into another project leaves that project's admin its own name).
# Lazy: read in the language, and with the settings, of each request.
admin.site.site_header = admin.site.site_title = lazy(_site_header, str)()

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Browsers ask every page's site for it (the browsable API's pages, /health/):
    # the admin's icon, not a 404 in the log.
    path(
        "favicon.ico",
        RedirectView.as_view(url=lazy(static, str)("scheduler_app/favicon.svg")),
    ),
    path("admin/", admin.site.urls),
    # For uptime monitors and probes: no authentication (scheduler_app/api/health.py).
    path("health/", health, name="health"),
    # Prometheus (text/plain, not the API's JSON): a bearer token or a staff login
    # (scheduler_app/api/metrics.py).
    re_path(r"^metrics/?$", metrics, name="metrics"),
    # Log in / out links of the browsable API; before the API's catch-all 404.
    path("api/v1/auth/", include("rest_framework.urls")),
    path("api/v1/", include("scheduler_app.api.urls")),
]
