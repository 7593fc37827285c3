"""The Celery app: `celery -A config worker` runs executions on workers.

Configured from the CELERY_* Django settings (config/settings.py). Without a broker
(CELERY_BROKER_URL, default REDIS_URL) it still imports, and nothing sends to it.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
# scheduler_app.tasks: the one entry point, run_execution(execution_id).
app.autodiscover_tasks()
