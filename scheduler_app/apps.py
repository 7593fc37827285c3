"""App configuration: registers system checks; never starts a scheduler."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SchedulerAppConfig(AppConfig):
    name = "scheduler_app"
    verbose_name = _("Scheduled tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
