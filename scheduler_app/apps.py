"""App configuration: registers system checks, hooks and handlers; never starts a scheduler."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SchedulerAppConfig(AppConfig):
    name = "scheduler_app"
    verbose_name = _("Scheduled tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from . import checks  # noqa: F401  (registers the system checks)
        from .choices import ExecutorName
        from .conf import app_settings

        # Each installed app's scheduled_tasks.py registers its @handler functions,
        # in every process (web, scheduler, worker), as admin.py modules register.
        autodiscover_modules("scheduled_tasks")

        if app_settings.SCHEDULER_EXECUTOR == ExecutorName.CELERY:
            # Registers the revoke of a cancelled pending run's message, in every
            # process that may cancel one (web, scheduler, worker).
            from .engine import celery_executor  # noqa: F401
