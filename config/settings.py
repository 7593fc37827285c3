"""Project settings, read from the environment (and `.env`) through django-environ.

Every variable is listed with its default in `.env.example`. The defaults run the
whole product on SQLite with no other service; `DATABASE_URL` switches to
PostgreSQL and `REDIS_URL` turns on the Redis-backed features.
"""

from pathlib import Path
from typing import Any

import environ

from scheduler_app import conf as scheduler_conf

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="insecure-development-key-change-me")
else:
    SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS. With DEBUG off the defaults are production's: plain http is redirected to
# https, browsers are told to use https only (HSTS, a year, subdomains included, and
# the preload directive), and the session and CSRF cookies travel over https only.
# With DEBUG on (`make run`, http://127.0.0.1:8000) none of it applies. A reverse
# proxy that terminates TLS must say so: SECURE_PROXY_SSL_HEADER names the header it
# sets, e.g. HTTP_X_FORWARDED_PROTO,https (the proxy must also overwrite that header
# when a client sends it); unset, Django trusts no header.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = env.tuple("SECURE_PROXY_SSL_HEADER", default=()) or None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # REST API (/api/v1/): DRF, hashed API keys, filters, OpenAPI schema + docs assets.
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "scheduler_app",
]

# Messages live in the session (the database), not in a cookie: a new API key is
# shown once as a message, and a cookie would carry it readable to the browser.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# Database: SQLite (WAL) by default, anything django-environ understands via DATABASE_URL.
SQLITE_PATH = env.path("SQLITE_PATH", default=BASE_DIR / "db.sqlite3")
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web and the scheduler read while the other writes; IMMEDIATE
        # takes the write lock at BEGIN so concurrent writers wait (busy timeout)
        # instead of failing with "database is locked" half-way through.
        "init_command": (
            "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=20),
    }
else:
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis (optional): task locks, leader lease, notifications, live logs.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="scheduler"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The first admin login, created by `manage.py ensure_admin` (run by `make run`).
ADMIN_USERNAME = env.str("ADMIN_USERNAME", default="admin")
ADMIN_PASSWORD = env.str("ADMIN_PASSWORD", default="")

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
# The name at the top of every admin page and in the browser's title (empty: the
# translated "Scheduled tasks"); config/urls.py gives it to the admin site.
ADMIN_SITE_HEADER = env.str("ADMIN_SITE_HEADER", default="")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `collectstatic` copies the admin and API assets here; the web server serves them.
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Third-party chatter; the scheduler logs its own lines.
        "apscheduler": {"level": "WARNING"},
    },
}

# --- REST API (/api/v1/) -----------------------------------------------------
# Everything is authenticated: an API key (header or ?api_key=) acts as its user,
# the session serves the browsable API and the docs. Permissions are Django model
# permissions, the view permission included, so keys and sessions are checked alike.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so an anonymous request gets 401 with `WWW-Authenticate: Api-Key`.
        "scheduler_app.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only: form encodings cannot say "an object" or "null" exactly (the
    # browsable API keeps its raw JSON form).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "scheduler_app.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "scheduler_app.api.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Scheduled tasks API",
    "DESCRIPTION": (
        "Tasks, executions, handlers, locks and scheduler status. Authenticate with "
        "an API key (`X-Api-Key: <key>`, `Authorization: Api-Key <key>` or "
        "`?api_key=<key>`) or an admin session."
    ),
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Request and response bodies differ (a task read has its statistics too).
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "scheduler_app.models.ScheduledTask.Status",
        "ExecutionStatusEnum": "scheduler_app.models.TaskExecution.Status",
        "HealthEnum": "scheduler_app.choices.HealthState",
        "AlertKindEnum": "scheduler_app.choices.AlertKind",
        "DeliveryStatusEnum": "scheduler_app.choices.DeliveryStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "scheduler_app.api.schema.add_error_responses",
    ],
    # Swagger UI and ReDoc from the installed sidecar package: no internet needed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# --- end REST API ------------------------------------------------------------

# --- Scheduler ---------------------------------------------------------------
# Every SCHEDULER_* setting, with its default and what it does, is in the one table
# of them, scheduler_app.conf.SETTINGS; app code reads them through
# `scheduler_app.conf.app_settings`, so a project that embeds the app may leave any
# of them out. Here each is read from the environment variable of the same name,
# with the reader its default's type calls for ("a,b" for a list).
_env_readers: dict[type, Any] = {
    bool: env.bool,
    int: env.int,
    float: env.float,
    str: env.str,
    tuple: env.list,
}
_scheduler = {
    name: _env_readers[type(setting.default)](name, default=setting.default)
    for name, setting in scheduler_conf.SETTINGS.items()
}
globals().update(_scheduler)

# --- E-mail (alerts: SCHEDULER_ALERT_EMAILS and the e-mail channels) -------------
# One URL for Django's EMAIL_* settings (django-environ), e.g.
# smtp+tls://user:password@smtp.example.com:587; the default prints to the console.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="scheduler@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery (SCHEDULER_EXECUTOR=celery; `celery -A config worker`) --------------
# config/celery.py reads these CELERY_* names. Without a broker URL Celery stays
# unconfigured (importable, never used) and the inline executor runs everything.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message not acknowledged within this many seconds (its worker died, or the
    # run is still going) is delivered again. The execution's claim (pending ->
    # running, a conditional update) makes a second delivery do nothing, so this
    # only bounds how long a message lost with its worker waits.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # The broker's keys share the scheduler's Redis prefix.
    "global_keyprefix": _scheduler["SCHEDULER_REDIS_PREFIX"],
}
# Acknowledge a message when its run has ended, and put it back when the worker
# process running it dies: a run that had not been claimed yet then starts on
# another worker; one that had is recorded as lost and never runs twice.
# Celery's Django fixup closes the database connection around every task unless
# this is set: a new PostgreSQL connection per execution halved a worker's rate
# (bench/README.md). run_execution checks its connection itself instead
# (close_old_connections: CONN_MAX_AGE and health checks apply).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per worker process: runs are long, and a prefetched
# message would wait behind a long run while another worker sits idle.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The execution row is the result: no result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = _scheduler["SCHEDULER_DEFAULT_QUEUE"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE
