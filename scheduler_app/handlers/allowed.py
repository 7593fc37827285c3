"""Which handlers may run: the @handler registry and SCHEDULER_HANDLER_MODULES.

A handler is allowed when it is

- ``scripts:<file>``: a file in the scripts folder (SCHEDULER_SCRIPTS_PATH), which
  belongs to the operator;
- a function or `BaseTask` subclass decorated with `@scheduler_app.handler` (in a
  ``scheduled_tasks.py`` module of an installed app, imported at start-up like
  ``admin.py``, or in any module the code imports);
- a public function or `BaseTask` subclass defined in a module listed in
  SCHEDULER_HANDLER_MODULES (for code that cannot be decorated).

Nothing else runs, and a handler path that is none of these is refused before any
module it names is imported: "may add a task" must never mean "may call
``os:system``" (django-celery-beat does the same with Celery's task registry).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..exceptions import (
    HandlerBroken,
    HandlerNotAllowed,
    HandlerNotFound,
    SchedulerError,
)
from .base import BaseTask
from .info import MSG_BROKEN, error_text
from .objects import Registration, forget_description
from .paths import FIELD, SCRIPTS_PREFIX, handler_path_for, parse_handler_path

logger = logging.getLogger(__name__)

MSG_NO_MODULE = _(
    "Handler “%(path)s” not found: cannot import module “%(module)s” (%(error)s)."
)
MSG_NO_ATTRIBUTE = _(
    "Handler “%(path)s” not found: module “%(module)s” has no attribute “%(attr)s”."
)
MSG_NOT_ALLOWED = _(
    "Handler “%(path)s” is not allowed: only scripts:<file> handlers and functions or "
    "BaseTask classes registered in code may run. Register it with the "
    "@scheduler_app.handler decorator (in a scheduled_tasks.py module of an installed "
    "app), or list its module in the SCHEDULER_HANDLER_MODULES setting."
)
MSG_NOT_EXPORTED = _(
    "Handler “%(path)s” is not allowed: module “%(module)s” is listed in "
    "SCHEDULER_HANDLER_MODULES, but only the public functions and BaseTask classes "
    "defined in it may run, and “%(attr)s” %(reason)s."
)

# Why a module attribute is not a handler although its module is listed.
REASON_PRIVATE = "is private (its name starts with “_”)"
REASON_NOT_IN_ALL = "is not in the module's __all__"
REASON_IMPORTED = "is imported from module “%s”, not defined in it"
REASON_NOT_HANDLER = "is a %s, not a function or a BaseTask subclass"
REASON_BASE_CLASS = "is BaseTask itself, not a subclass of it"

#: "module:qualname" -> its registration, filled by @handler as modules are imported.
_registered: dict[str, Registration] = {}
_lock = threading.RLock()


def handler(
    target: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    params: Mapping[str, Mapping[str, str]] | None = None,
) -> Any:
    """Register a function or a `BaseTask` subclass as a handler: ``@scheduler_app.handler``.

    Its handler path is ``"<module>:<name>"``. `name` and `description` are what the
    admin and the API show (default: the function's name and the first line of its
    docstring); `params` gives parameters a label and help, like a script's
    ``TASK_INFO["params"]``: ``{"days": {"label": "Days", "help": "How many days"}}``.
    Use it bare (``@handler``) or with options (``@handler(name="Nightly sync")``).
    """

    def register(obj: Any) -> Any:
        try:
            path = handler_path_for(obj)
        except HandlerNotFound as exc:
            raise TypeError(exc.message) from None
        if inspect.isclass(obj):
            if not issubclass(obj, BaseTask):
                raise TypeError(
                    "@handler takes a function or a BaseTask subclass; %s is neither "
                    "(subclass scheduler_app.handlers.BaseTask)" % obj.__qualname__
                )
        elif not callable(obj):
            raise TypeError("@handler takes a function, not a %s" % type(obj).__name__)
        with _lock:
            _registered[path] = Registration(
                obj, name, description, dict(params) if params is not None else None
            )
            forget_description(path)
        return obj

    return register if target is None else register(target)


def check_allowed(path: str) -> None:
    """Raise unless `path` names an allowed handler (HandlerNotAllowed, naming the fix).

    Cheaper than get_handler (nothing is described), and like it never imports a
    module the path names unless SCHEDULER_HANDLER_MODULES lists it.
    """
    module_name, attr = parse_handler_path(path)
    if module_name != SCRIPTS_PREFIX:
        allowed_object(path, module_name, attr)


def refusal(path: str) -> SchedulerError | None:
    """Why `path` may not run (check_allowed's error), or None when it is allowed."""
    try:
        check_allowed(path)
    except SchedulerError as exc:
        return exc
    return None


def allowed_object(
    path: str, module_name: str, attr: str
) -> tuple[Any, Registration | None]:
    """The object an allowed module:attr path names; raise for any other path.

    A registered handler's module is imported already (registering imported it);
    only a module the operator listed in SCHEDULER_HANDLER_MODULES is imported here.
    """
    with _lock:
        registration = _registered.get(path)
    if registration is not None:
        return registration.target, registration
    if module_name not in handler_modules():
        raise HandlerNotAllowed(MSG_NOT_ALLOWED % {"path": path}, field=FIELD)
    module = _import_listed(path, module_name)
    if not hasattr(module, attr):
        raise HandlerNotFound(
            MSG_NO_ATTRIBUTE % {"path": path, "module": module_name, "attr": attr},
            field=FIELD,
        )
    obj = getattr(module, attr)
    reason = _not_a_handler_reason(module, attr, obj)
    if reason is not None:
        raise HandlerNotAllowed(
            MSG_NOT_EXPORTED
            % {"path": path, "module": module_name, "attr": attr, "reason": reason},
            field=FIELD,
        )
    return obj, None


def allowed_code_paths() -> set[str]:
    """The paths of every registered handler and every handler of a listed module.

    A listed module that fails to import is logged and skipped (the system check
    reports it too).
    """
    with _lock:
        paths = set(_registered)
    for module_name in handler_modules():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - reported by the system check too
            logger.warning(
                "SCHEDULER_HANDLER_MODULES: module %s cannot be imported: %s",
                module_name,
                exc,
            )
            continue
        for attr, obj in vars(module).items():
            if _not_a_handler_reason(module, attr, obj) is None:
                paths.add("%s:%s" % (module_name, attr))
    return paths


def handler_modules() -> list[str]:
    """The modules of SCHEDULER_HANDLER_MODULES that count (standard library ones never do)."""
    return [
        name for name in configured_handler_modules() if not is_standard_library(name)
    ]


def configured_handler_modules() -> list[str]:
    """SCHEDULER_HANDLER_MODULES as given (a list, or a comma-separated string)."""
    value = app_settings.SCHEDULER_HANDLER_MODULES or ()
    if isinstance(value, str):
        value = value.split(",")
    return [str(name).strip() for name in value if str(name).strip()]


def is_standard_library(module_name: str) -> bool:
    """Whether a module is Python's own: never a source of handlers (os, subprocess...)."""
    return module_name.partition(".")[0] in sys.stdlib_module_names


def _import_listed(path: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise HandlerNotFound(
                MSG_NO_MODULE % {"path": path, "module": module_name, "error": exc},
                field=FIELD,
            ) from None
        raise HandlerBroken(
            MSG_BROKEN % {"path": path, "error": error_text(exc, None)}, field=FIELD
        ) from None
    except (Exception, SystemExit) as exc:  # the module itself fails to import
        logger.warning("Module %s of handler %s fails to import", module_name, path)
        raise HandlerBroken(
            MSG_BROKEN % {"path": path, "error": error_text(exc, None)}, field=FIELD
        ) from None


def _not_a_handler_reason(module: ModuleType, attr: str, obj: Any) -> str | None:
    """Why `module.attr` is no handler although its module is listed (None: it is one)."""
    if attr.startswith("_"):
        return REASON_PRIVATE
    exported = getattr(module, "__all__", None)
    if exported is not None and attr not in exported:
        return REASON_NOT_IN_ALL
    if obj is BaseTask:
        return REASON_BASE_CLASS
    is_task_class = inspect.isclass(obj) and issubclass(obj, BaseTask)
    if not (inspect.isfunction(obj) or is_task_class):
        return REASON_NOT_HANDLER % type(obj).__name__
    defined_in = getattr(obj, "__module__", None)
    if defined_in != module.__name__:
        return REASON_IMPORTED % defined_in
    return None
