"""The Celery app: `celery -A config worker` runs executions on workers.

Configured from the CELERY_* Django settings (config/settings.py). Without a broker
(CELERY_BROKER_URL, default REDIS_URL) it still imports, and nothing sends to it.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each installed app's tasks.py, and scheduler_app.celery.entry_points: the one
# entry point of the scheduler's runs, run_execution(execution_id).
app.autodiscover_tasks()
app.autodiscover_tasks(["scheduler_app.celery"], related_name="entry_points")
