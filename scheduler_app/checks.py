"""System checks that validate the SCHEDULER_* settings at startup."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.checks import Error, Warning, register

from .choices import ExecutorName, Isolation
from .conf import SETTINGS, app_settings

#: The tag of this app's checks, so a command can run them without the URL checks.
TAG = "scheduler"

#: SCHEDULER_EXECUTOR names no executor ("must be 'inline' or 'celery', not 'x'.");
#: runscheduler refuses such a value with the same words.
EXECUTOR_UNKNOWN = "SCHEDULER_EXECUTOR must be %s, not %%r." % " or ".join(
    repr(name.value) for name in ExecutorName
)

#: SCHEDULER_ISOLATION names no way of running handlers.
ISOLATION_UNKNOWN = "SCHEDULER_ISOLATION must be %s, not %%r." % " or ".join(
    repr(name.value) for name in Isolation
)


@register(TAG)
def check_scheduler_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    executor = app_settings.SCHEDULER_EXECUTOR
    if executor not in tuple(ExecutorName):
        problems.append(Error(EXECUTOR_UNKNOWN % executor, id="scheduler_app.E001"))
    isolation = app_settings.SCHEDULER_ISOLATION
    if isolation not in tuple(Isolation):
        problems.append(Error(ISOLATION_UNKNOWN % isolation, id="scheduler_app.E009"))
    if executor == ExecutorName.CELERY and not _celery_broker_url():
        problems.append(
            Error(
                "SCHEDULER_EXECUTOR is 'celery' but Celery has no broker.",
                hint="Set CELERY_BROKER_URL (or REDIS_URL, its default), e.g. "
                "redis://127.0.0.1:6379/0.",
                id="scheduler_app.E006",
            )
        )
    for name in _positive(int):
        if int(getattr(app_settings, name)) <= 0:
            problems.append(
                Error("%s must be a positive number." % name, id="scheduler_app.E002")
            )
    for name, setting in SETTINGS.items():
        value = getattr(app_settings, name)
        if setting.at_least and 0 < value < setting.at_least:
            problems.append(
                Error(
                    "%s must be at least %d, not %d." % (name, setting.at_least, value),
                    hint="It is a cap in bytes: what it keeps needs room for the "
                    "line saying how much was cut.",
                    id="scheduler_app.E010",
                )
            )
    ttl = app_settings.SCHEDULER_LEADER_LOCK_TTL
    refresh = app_settings.SCHEDULER_LEADER_LOCK_REFRESH_INTERVAL
    if refresh <= 0 or refresh * 2 > ttl:
        problems.append(
            Error(
                "SCHEDULER_LEADER_LOCK_REFRESH_INTERVAL (%s) must be positive and at most "
                "half of SCHEDULER_LEADER_LOCK_TTL (%s), or the lease can expire between "
                "two refreshes." % (refresh, ttl),
                id="scheduler_app.E003",
            )
        )
    for name in _positive(float):
        if getattr(app_settings, name) <= 0:
            problems.append(
                Error(
                    "%s must be a positive number of seconds." % name,
                    id="scheduler_app.E004",
                )
            )
    try:
        ZoneInfo(settings.TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            Error(
                "TIME_ZONE %r is not a known time zone." % settings.TIME_ZONE,
                id="scheduler_app.E005",
            )
        )
    from pathlib import Path

    if not Path(app_settings.SCHEDULER_SCRIPTS_PATH).is_dir():
        problems.append(
            Warning(
                "SCHEDULER_SCRIPTS_PATH %s is not a folder: no scripts:<file> handlers "
                "will be found." % app_settings.SCHEDULER_SCRIPTS_PATH,
                id="scheduler_app.W001",
            )
        )
    problems.extend(_check_handler_modules())
    problems.extend(_check_reason_actions())
    backend = getattr(settings, "EMAIL_BACKEND", "")
    if app_settings.SCHEDULER_ALERT_EMAILS and backend in MAIL_GOES_NOWHERE:
        problems.append(
            Warning(
                "SCHEDULER_ALERT_EMAILS is set but EMAIL_BACKEND is %s: alert e-mails "
                "are recorded sent and reach no one." % backend,
                hint="Set EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587.",
                id="scheduler_app.W003",
            )
        )
    return problems


def _check_reason_actions() -> list[Any]:
    """SCHEDULER_REQUIRE_REASON_FOR names only operations that take a reason."""
    from .services.audit import REASON_ACTIONS

    required = app_settings.SCHEDULER_REQUIRE_REASON_FOR
    names = required.split(",") if isinstance(required, str) else list(required)
    known = [str(action) for action in REASON_ACTIONS]
    unknown = sorted({str(name).strip() for name in names} - {""} - set(known))
    if not unknown:
        return []
    return [
        Error(
            "SCHEDULER_REQUIRE_REASON_FOR names %s, which take no reason."
            % ", ".join(repr(name) for name in unknown),
            hint="Name only these, comma-separated: %s." % ",".join(known),
            id="scheduler_app.E011",
        )
    ]


#: Django's mail backends that deliver to no one (printed, kept in memory, dropped).
MAIL_GOES_NOWHERE = frozenset(
    {
        "django.core.mail.backends.console.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
        "django.core.mail.backends.dummy.EmailBackend",
        "django.core.mail.backends.filebased.EmailBackend",
    }
)


def _positive(kind: type) -> list[str]:
    """The settings of type `kind` that the table says must be positive."""
    return [
        name
        for name, setting in SETTINGS.items()
        if setting.positive and type(setting.default) is kind
    ]


def _check_handler_modules() -> list[Any]:
    """Each SCHEDULER_HANDLER_MODULES entry imports, and none is a standard library module."""
    import importlib

    from .handlers.registry import configured_handler_modules, is_standard_library

    problems: list[Any] = []
    for name in configured_handler_modules():
        if is_standard_library(name):
            problems.append(
                Error(
                    "SCHEDULER_HANDLER_MODULES lists %r, a standard library module: its "
                    "functions are never handlers (os, subprocess or builtins would let "
                    "anyone who may add a task run commands on this host)." % name,
                    hint="Remove it; wrap what you need in a function of your own code "
                    "decorated with @scheduler_app.handler.",
                    id="scheduler_app.E007",
                )
            )
            continue
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import failure is the finding
            problems.append(
                Error(
                    "SCHEDULER_HANDLER_MODULES lists %r, which cannot be imported: %s: %s"
                    % (name, type(exc).__name__, exc),
                    hint="Fix the module or the module name (a dotted module path such "
                    "as myapp.jobs).",
                    id="scheduler_app.E008",
                )
            )
            continue
        if _is_installed_package(module):
            problems.append(
                Warning(
                    "SCHEDULER_HANDLER_MODULES lists %r, an installed package rather "
                    "than your project's code: every public function defined in it "
                    "becomes a handler that anyone who may add a task can call." % name,
                    hint="List modules of your own code; for a third-party function, "
                    "decorate a wrapper of your own with @scheduler_app.handler.",
                    id="scheduler_app.W002",
                )
            )
    return problems


def _is_installed_package(module: Any) -> bool:
    """Whether a module was installed by pip (lives in site-packages or dist-packages)."""
    from pathlib import Path

    path = getattr(module, "__file__", None)
    if not path:
        return False
    return any(part in ("site-packages", "dist-packages") for part in Path(path).parts)


def _celery_broker_url() -> str:
    from celery import current_app

    return current_app.conf.broker_url or ""
