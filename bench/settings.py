"""Settings of the bench process and the django-apscheduler runner.

The project's settings, plus django_apscheduler so its tables are migrated into the
same throw-away database. The scheduler under test (`manage.py runscheduler`) runs
with the project's own `config.settings`.
"""

from config.settings import *  # noqa: F401,F403
from config.settings import INSTALLED_APPS

if "django_apscheduler" not in INSTALLED_APPS:
    INSTALLED_APPS = [*INSTALLED_APPS, "django_apscheduler"]
