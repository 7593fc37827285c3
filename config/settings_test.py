"""Settings for the test suite: the real settings plus a throwaway key and fast hashing."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")

from .settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# An installed app whose scheduled_tasks.py registers handlers (@scheduler_app.handler).
INSTALLED_APPS = [*INSTALLED_APPS, "tests.sample_handlers.testapp"]  # noqa: F405
# The sample handler modules of the tests (all in tests/sample_handlers/), allowed the
# way a project allows code it cannot decorate.
SCHEDULER_HANDLER_MODULES = [
    "tests.sample_handlers.runs",
    "tests.sample_handlers.api",
    "tests.sample_handlers.registry",
    "tests.sample_handlers.browser",
    "tests.sample_handlers.hostile",
]

# The test client and the browser tests' live server speak plain http, as `make run`
# does; tests/test_settings.py checks the production defaults in a subprocess.
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import tempfile

    # A file, not ":memory:", so threads (handler, log publisher) use real WAL
    # connections with the busy timeout, as in production.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(
            tempfile.gettempdir(), "scheduler-test-%d.sqlite3" % os.getpid()
        )
    }
