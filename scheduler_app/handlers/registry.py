"""Which handlers may run, and how they are found: scripts, and handlers registered in code.

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

import datetime as dt
import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
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
from .base import BaseTask, TaskSchedule, snake_case
from .params import ParamSpec, specs_from_callable
from .results import json_safe

logger = logging.getLogger(__name__)

SCRIPTS_PREFIX = "scripts"
# Scripts are loaded by file path under this private package name, so a script
# called "json.py" or "django.py" never shadows a real module.
SCRIPT_MODULE_PREFIX = "scheduler_scripts."
KIND_SCRIPT = "script"
KIND_FUNCTION = "function"
KIND_CLASS = "class"
FIELD = "handler_path"

SCHEDULE_KINDS = ("cron", "interval_seconds", "run_date")
SCHEDULE_OPTIONS = ("timeout_seconds", "allow_concurrent", "overlap_policy")
OVERLAP_POLICIES = ("skip", "allow", "replace")

MSG_BAD_PATH = _(
    "Handler “%(path)s” is not valid: use scripts:<file> (a .py file in the scripts "
    "folder, named without .py) or dotted.module:attribute."
)
MSG_PRIVATE_SCRIPT = _(
    "Handler “%(path)s” not found: files in the scripts folder whose name starts "
    "with “_” are helpers, not handlers."
)
MSG_NO_SCRIPT = _(
    "Handler “%(path)s” not found: there is no file %(file)s in the scripts folder "
    "%(folder)s (SCHEDULER_SCRIPTS_PATH)."
)
MSG_NO_MODULE = _(
    "Handler “%(path)s” not found: cannot import module “%(module)s” (%(error)s)."
)
MSG_NO_ATTRIBUTE = _(
    "Handler “%(path)s” not found: module “%(module)s” has no attribute “%(attr)s”."
)
MSG_BROKEN = _("Handler “%(path)s” is broken: %(error)s")
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
MSG_NOT_MODULE_LEVEL = _(
    "%(handler)r cannot be a handler: use a function or BaseTask class defined at "
    "the top level of an importable module (not a lambda, a nested function, a "
    "method or code in __main__)."
)

# Why a module attribute is not a handler although its module is listed.
REASON_PRIVATE = "is private (its name starts with “_”)"
REASON_NOT_IN_ALL = "is not in the module's __all__"
REASON_IMPORTED = "is imported from module “%s”, not defined in it"
REASON_NOT_HANDLER = "is a %s, not a function or a BaseTask subclass"
REASON_BASE_CLASS = "is BaseTask itself, not a subclass of it"

# Why a handler is broken. Kept in English like the exception texts they sit
# beside, because they are cached with the script and shown in every language.
ERROR_NO_RUN = "no run() function"
ERROR_RUN_NOT_CALLABLE = "run is not callable (it is a %s)"
ERROR_BAD_FILE_NAME = (
    "the file name is not a Python identifier; rename it to letters, digits and "
    "underscores, e.g. my_task.py"
)
ERROR_TASK_INFO = "TASK_INFO must be a dict, not %s"
ERROR_SIGNATURE = "cannot read the parameters of %s: %s"
ERROR_NOT_CALLABLE = "%s is not callable (it is a %s)"
ERROR_CLASS_NO_RUN = "class %s has no run() method"
ERROR_CLASS_RUN_ABSTRACT = "class %s does not implement run()"
ERROR_CLASS_ARGS = (
    "class %s needs constructor arguments (%s); a task class is created with none"
)
ERROR_SCHEDULE = (
    "the declared schedule must be a dict with exactly one of %s (plus optionally "
    "%s), or a TaskSchedule; got %s"
)
ERROR_SCHEDULE_VALUE = "the declared schedule has an invalid %s: %r"


@dataclass(frozen=True)
class HandlerInfo:
    """What the registry knows about one handler (admin choices, API, validation)."""

    path: str
    kind: str
    name: str
    description: str
    params: tuple[ParamSpec, ...]
    accepts_var_kwargs: bool
    is_async: bool
    schedule: dict[str, Any] | None
    broken: bool = False
    error: str = ""
    # TASK_INFO["enabled"] / BaseTask.enabled: whether a task made from the
    # declared schedule should start active.
    enabled: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe description (for the API and the admin)."""
        return {
            "path": self.path,
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "params": [spec.to_dict() for spec in self.params],
            "accepts_var_kwargs": self.accepts_var_kwargs,
            "is_async": self.is_async,
            "schedule": json_safe(self.schedule),
            "broken": self.broken,
            "error": self.error,
            "enabled": self.enabled,
        }


class _Broken(Exception):
    """A handler was found but cannot be used; the message says why."""


@dataclass
class _ScriptEntry:
    key: tuple[int, int]
    info: HandlerInfo
    module: ModuleType | None = None
    func: Callable[..., Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Registration:
    """A handler registered with @handler, and what the decorator said of it."""

    target: Any
    name: str | None = None
    description: str | None = None
    params: Mapping[str, Any] | None = None


#: "module:qualname" -> its registration, filled by @handler as modules are imported.
_registered: dict[str, _Registration] = {}


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
            _registered[path] = _Registration(
                obj, name, description, dict(params) if params is not None else None
            )
            _described.pop(path, None)
        return obj

    return register if target is None else register(target)


def handler_path_for(obj: Any) -> str:
    """The handler path of a module-level function or class: ``"<module>:<name>"``."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    # Only a module-level name can be found again by another process.
    if (
        not module
        or module == "__main__"
        or not qualname
        or "." in qualname
        or "<" in qualname
    ):
        raise HandlerNotFound(MSG_NOT_MODULE_LEVEL % {"handler": obj}, field=FIELD)
    return "%s:%s" % (module, qualname)


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


# Script file path -> loaded script. Guarded by _lock; re-entrant because a script
# may itself look handlers up while it is being imported.
_scripts: dict[str, _ScriptEntry] = {}
_lock = threading.RLock()


def list_handlers() -> list[HandlerInfo]:
    """Describe every allowed handler, broken ones included, never raising.

    Scripts first (by file name), then the handlers registered in code (by path).
    """
    return [*list_scripts(), *list_code_handlers()]


def list_code_handlers() -> list[HandlerInfo]:
    """Describe the @handler functions and classes and those of SCHEDULER_HANDLER_MODULES."""
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
    infos: list[HandlerInfo] = []
    for path in sorted(paths):
        module_name, attr = _parse(path)
        try:
            target, registration = _allowed_object(path, module_name, attr)
        except SchedulerError:  # unregistered or gone between listing and describing
            continue
        try:
            infos.append(_describe_object(path, attr, target, registration)[0])
        except _Broken as exc:
            kind = KIND_CLASS if inspect.isclass(target) else KIND_FUNCTION
            infos.append(_broken_info(path, kind, attr, str(exc)))
    return infos


def list_scripts() -> list[HandlerInfo]:
    """Describe every scripts:<file> handler, broken ones included, never raising."""
    folder = scripts_folder()
    try:
        files = sorted(
            path
            for path in folder.iterdir()
            if path.suffix == ".py" and not path.name.startswith("_") and path.is_file()
        )
    except OSError as exc:
        logger.warning("Scripts folder %s cannot be read: %s", folder, exc)
        files = []
    infos: list[HandlerInfo] = []
    with _lock:
        for path in files:
            entry = _script_entry(path)
            if entry is not None:
                infos.append(entry.info)
        _forget_scripts_except({str(path) for path in files})
    return infos


def get_handler(path: str) -> HandlerInfo:
    """Describe one handler; raise HandlerNotAllowed, HandlerNotFound or HandlerBroken otherwise."""
    info, _func = resolve_handler(path)
    return info


def load_handler(path: str) -> Callable[..., Any]:
    """Return the callable to invoke with keyword arguments; raise like get_handler.

    For a task class it is a function that makes an instance and calls its run(),
    itself a coroutine function when run() is async.
    """
    _info, func = resolve_handler(path)
    return func


def clear_cache() -> None:
    """Forget every loaded script, so the next lookup imports each one again."""
    _forget_scripts_except(set())


def scripts_folder() -> Path:
    """Return the configured scripts folder (read on every call)."""
    return Path(str(app_settings.SCHEDULER_SCRIPTS_PATH))


def resolve_handler(path: str) -> tuple[HandlerInfo, Callable[..., Any]]:
    """get_handler and load_handler in one lookup (the execution path needs both)."""
    module_name, attr = _parse(path)
    if module_name == SCRIPTS_PREFIX:
        entry = _find_script(path, attr)
        if entry.info.broken or entry.func is None:
            raise HandlerBroken(
                MSG_BROKEN % {"path": path, "error": entry.info.error}, field=FIELD
            )
        return entry.info, entry.func
    target, registration = _allowed_object(path, module_name, attr)
    try:
        return _describe_object(path, attr, target, registration)
    except _Broken as exc:
        raise HandlerBroken(
            MSG_BROKEN % {"path": path, "error": str(exc)}, field=FIELD
        ) from None


def check_allowed(path: str) -> None:
    """Raise unless `path` names an allowed handler (HandlerNotAllowed, naming the fix).

    Cheaper than get_handler (nothing is described), and like it never imports a
    module the path names unless SCHEDULER_HANDLER_MODULES lists it.
    """
    module_name, attr = _parse(path)
    if module_name != SCRIPTS_PREFIX:
        _allowed_object(path, module_name, attr)


def refusal(path: str) -> SchedulerError | None:
    """Why `path` may not run (check_allowed's error), or None when it is allowed."""
    try:
        check_allowed(path)
    except SchedulerError as exc:
        return exc
    return None


def _parse(path: str) -> tuple[str, str]:
    """Split "scripts:<file>" or "dotted.module:attr"; refuse anything else."""
    head, sep, attr = str(path).partition(":")
    valid = (
        bool(sep)
        and attr.isidentifier()
        and all(part.isidentifier() for part in head.split("."))
    )
    if not valid:
        raise HandlerNotFound(MSG_BAD_PATH % {"path": path}, field=FIELD)
    if head == SCRIPTS_PREFIX and attr.startswith("_"):
        raise HandlerNotFound(MSG_PRIVATE_SCRIPT % {"path": path}, field=FIELD)
    return head, attr


# Scripts


class _ScriptLoader(importlib.machinery.SourceFileLoader):
    """Compile from source on every load and write no .pyc.

    A .pyc is validated by whole-second mtime and size, so an edit within the
    same second that keeps the size would run the old code.
    """

    def get_code(self, fullname: str) -> Any:
        return self.source_to_code(self.get_data(self.path), self.path)


def _find_script(path: str, name: str) -> _ScriptEntry:
    folder = scripts_folder()
    file = folder / ("%s.py" % name)
    with _lock:
        entry = _script_entry(file) if file.is_file() else None
        if entry is None:
            _forget_scripts_except(set(_scripts) - {str(file)})
            raise HandlerNotFound(
                MSG_NO_SCRIPT % {"path": path, "file": file.name, "folder": folder},
                field=FIELD,
            )
        return entry


def _script_entry(file: Path) -> _ScriptEntry | None:
    """Return the loaded script, reloaded if the file changed; None if it is gone."""
    try:
        stat = file.stat()
    except FileNotFoundError:
        return None
    key = (stat.st_mtime_ns, stat.st_size)
    with _lock:
        entry = _scripts.get(str(file))
        if entry is None or entry.key != key:
            entry = _load_script(file, key)
            _scripts[str(file)] = entry
        return entry


def _forget_scripts_except(keep: set[str]) -> None:
    with _lock:
        for file in [file for file in _scripts if file not in keep]:
            entry = _scripts.pop(file)
            if entry.module is not None:
                _unregister(entry.module)


def _load_script(file: Path, key: tuple[int, int]) -> _ScriptEntry:
    name = file.stem
    path = "%s:%s" % (SCRIPTS_PREFIX, name)
    if not name.isidentifier():
        return _ScriptEntry(
            key, _broken_info(path, KIND_SCRIPT, name, ERROR_BAD_FILE_NAME)
        )
    logger.debug("Loading script %s", file)
    try:
        module = _exec_script(name, file)
    except (Exception, SystemExit) as exc:  # a script must never stop the caller
        error = _error_text(exc, file)
        # The traceback helps with import-time failures; a syntax error says it all.
        logger.warning(
            "Script %s is broken: %s",
            file,
            error,
            exc_info=not isinstance(exc, SyntaxError),
        )
        return _ScriptEntry(key, _broken_info(path, KIND_SCRIPT, name, error))
    try:
        info, func = _describe_script(path, name, module)
    except _Broken as exc:
        logger.warning("Script %s is broken: %s", file, exc)
        _unregister(module)
        return _ScriptEntry(key, _broken_info(path, KIND_SCRIPT, name, str(exc)))
    return _ScriptEntry(key, info, module, func)


def _exec_script(name: str, file: Path) -> ModuleType:
    module_name = SCRIPT_MODULE_PREFIX + name
    loader = _ScriptLoader(module_name, str(file))
    spec = importlib.util.spec_from_file_location(module_name, file, loader=loader)
    if spec is None:
        raise ImportError("cannot load %s" % file)
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs, as a normal import would be: dataclasses and
    # typing look the module up in sys.modules.
    sys.modules[module_name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        _unregister(module)
        raise
    return module


def _unregister(module: ModuleType) -> None:
    if sys.modules.get(module.__name__) is module:
        del sys.modules[module.__name__]


def _describe_script(
    path: str, name: str, module: ModuleType
) -> tuple[HandlerInfo, Callable[..., Any]]:
    try:
        task_info = getattr(module, "TASK_INFO", None) or {}
        if not isinstance(task_info, Mapping):
            raise _Broken(ERROR_TASK_INFO % type(task_info).__name__)
        if not hasattr(module, "run"):
            raise _Broken(ERROR_NO_RUN)
        run = module.run
        if not callable(run):
            raise _Broken(ERROR_RUN_NOT_CALLABLE % type(run).__name__)
        params = task_info.get("params")
        specs, accepts_var_kwargs = _specs(
            run, "run()", params if isinstance(params, Mapping) else None
        )
        info = HandlerInfo(
            path=path,
            kind=KIND_SCRIPT,
            name=str(task_info.get("name") or name),
            description=str(
                task_info.get("description")
                or _first_line(module.__doc__)
                or _first_line(run.__doc__)
            ),
            params=tuple(specs),
            accepts_var_kwargs=accepts_var_kwargs,
            is_async=inspect.iscoroutinefunction(run),
            schedule=_normalise_schedule(task_info.get("schedule")),
            enabled=bool(task_info.get("enabled", True)),
        )
    except _Broken:
        raise
    except Exception as exc:  # noqa: BLE001 - odd module objects must not escape
        raise _Broken(_error_text(exc, None)) from exc
    return info, run


# module:function and module:Class


def _allowed_object(
    path: str, module_name: str, attr: str
) -> tuple[Any, _Registration | None]:
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
            MSG_BROKEN % {"path": path, "error": _error_text(exc, None)}, field=FIELD
        ) from None
    except (Exception, SystemExit) as exc:  # the module itself fails to import
        logger.warning("Module %s of handler %s fails to import", module_name, path)
        raise HandlerBroken(
            MSG_BROKEN % {"path": path, "error": _error_text(exc, None)}, field=FIELD
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


def _describe_object(
    path: str, attr: str, obj: Any, registration: _Registration | None
) -> tuple[HandlerInfo, Callable[..., Any]]:
    # Describing means signature and type-hint introspection: done once per object,
    # not on every run (a reloaded module brings a new object, described afresh).
    cached = _described.get(path)
    if cached is not None and cached[0] is obj and cached[1] is registration:
        return cached[2]
    described = (
        _describe_class(path, obj, registration)
        if inspect.isclass(obj)
        else _describe_callable(path, attr, obj, registration)
    )
    _described[path] = (obj, registration, described)
    return described


#: path -> (the object described, its registration, its description): see _describe_object.
_described: dict[
    str, tuple[Any, _Registration | None, tuple[HandlerInfo, Callable[..., Any]]]
] = {}


def _describe_callable(
    path: str, attr: str, obj: Any, registration: _Registration | None
) -> tuple[HandlerInfo, Callable[..., Any]]:
    if not callable(obj):
        raise _Broken(ERROR_NOT_CALLABLE % (attr, type(obj).__name__))
    registration = registration or _Registration(obj)
    specs, accepts_var_kwargs = _specs(obj, attr, registration.params)
    info = HandlerInfo(
        path=path,
        kind=KIND_FUNCTION,
        name=str(registration.name or getattr(obj, "__name__", attr)),
        description=str(
            registration.description or _first_line(getattr(obj, "__doc__", None))
        ),
        params=tuple(specs),
        accepts_var_kwargs=accepts_var_kwargs,
        is_async=inspect.iscoroutinefunction(obj),
        schedule=None,
    )
    return info, obj


def _describe_class(
    path: str, cls: type, registration: _Registration | None
) -> tuple[HandlerInfo, Callable[..., Any]]:
    registration = registration or _Registration(cls)
    run = getattr(cls, "run", None)
    if run is None or not callable(run):
        raise _Broken(ERROR_CLASS_NO_RUN % cls.__name__)
    if run is BaseTask.run:
        raise _Broken(ERROR_CLASS_RUN_ABSTRACT % cls.__name__)
    _check_constructible(cls)
    specs, accepts_var_kwargs = _specs(
        run, "%s.run()" % cls.__name__, registration.params
    )
    is_async = inspect.iscoroutinefunction(run)
    info = HandlerInfo(
        path=path,
        kind=KIND_CLASS,
        name=str(
            registration.name or getattr(cls, "name", "") or snake_case(cls.__name__)
        ),
        description=str(
            registration.description
            or getattr(cls, "description", "")
            or _first_line(cls.__doc__)
        ),
        params=tuple(specs),
        accepts_var_kwargs=accepts_var_kwargs,
        is_async=is_async,
        schedule=_normalise_schedule(getattr(cls, "schedule", None)),
        enabled=bool(getattr(cls, "enabled", True)),
    )
    return info, _class_caller(cls, is_async)


def _check_constructible(cls: type) -> None:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return  # Nothing to check against; a failure will show at run time.
    needed = [
        parameter.name
        for parameter in signature.parameters.values()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind
        not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if needed:
        raise _Broken(ERROR_CLASS_ARGS % (cls.__name__, ", ".join(needed)))


def _class_caller(cls: type, is_async: bool) -> Callable[..., Any]:
    """Return a function that runs a new instance's run(**kwargs)."""

    async def call_async_task(**kwargs: Any) -> Any:
        return await cls().run(**kwargs)

    def call_task(**kwargs: Any) -> Any:
        return cls().run(**kwargs)

    caller: Callable[..., Any] = call_async_task if is_async else call_task
    caller.__name__ = cls.__name__
    caller.__qualname__ = cls.__qualname__
    caller.__module__ = cls.__module__
    caller.__doc__ = cls.__doc__
    caller.task_class = cls  # type: ignore[attr-defined]
    try:
        signature = inspect.signature(cls.run)  # type: ignore[attr-defined]
        parameters = list(signature.parameters.values())
        if parameters and parameters[0].name in ("self", "cls"):
            parameters = parameters[1:]
        caller.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=parameters
        )
    except (TypeError, ValueError):
        pass  # Introspection of the caller is a convenience only.
    return caller


# Shared helpers


def _specs(
    func: Callable[..., Any], what: str, param_info: Mapping[str, Any] | None
) -> tuple[list[ParamSpec], bool]:
    try:
        return specs_from_callable(func, param_info=dict(param_info or {}))
    except (TypeError, ValueError) as exc:
        raise _Broken(ERROR_SIGNATURE % (what, exc)) from exc


def _normalise_schedule(raw: Any) -> dict[str, Any] | None:
    """Turn a declared schedule into ScheduledTask field values, or refuse it."""
    if raw is None:
        return None
    if isinstance(raw, TaskSchedule):
        return raw.as_task_fields()
    shape_error = _Broken(
        ERROR_SCHEDULE
        % (", ".join(SCHEDULE_KINDS), ", ".join(SCHEDULE_OPTIONS), _short(raw))
    )
    if not isinstance(raw, Mapping):
        raise shape_error
    kinds = [key for key in SCHEDULE_KINDS if key in raw]
    # Unknown keys are refused so that a typo ("interval") is not silently lost.
    if len(kinds) != 1 or any(
        key not in SCHEDULE_KINDS + SCHEDULE_OPTIONS for key in raw
    ):
        raise shape_error
    kind = kinds[0]
    value = raw[kind]
    fields: dict[str, Any]
    if kind == "cron":
        if not isinstance(value, str) or not value.strip():
            raise _Broken(ERROR_SCHEDULE_VALUE % ("cron expression", value))
        fields = {"task_type": "cron", "cron_expression": value.strip()}
    elif kind == "interval_seconds":
        if not _is_int(value) or value <= 0:
            raise _Broken(ERROR_SCHEDULE_VALUE % ("interval_seconds", value))
        fields = {"task_type": "interval", "interval_seconds": value}
    else:
        fields = {"task_type": "date", "run_date": _run_date(value)}
    if "timeout_seconds" in raw:
        timeout = raw["timeout_seconds"]
        if not _is_int(timeout) or timeout < 0:
            raise _Broken(ERROR_SCHEDULE_VALUE % ("timeout_seconds", timeout))
        fields["timeout_seconds"] = timeout
    if "allow_concurrent" in raw:
        fields["overlap_policy"] = "allow" if raw["allow_concurrent"] else "skip"
    if "overlap_policy" in raw:
        if raw["overlap_policy"] not in OVERLAP_POLICIES:
            raise _Broken(
                ERROR_SCHEDULE_VALUE % ("overlap_policy", raw["overlap_policy"])
            )
        fields["overlap_policy"] = raw["overlap_policy"]
    return fields


def _run_date(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass  # Reported below with the other invalid values.
    raise _Broken(ERROR_SCHEDULE_VALUE % ("run_date", value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _broken_info(path: str, kind: str, name: str, error: str) -> HandlerInfo:
    return HandlerInfo(
        path=path,
        kind=kind,
        name=name,
        description="",
        params=(),
        accepts_var_kwargs=False,
        is_async=False,
        schedule=None,
        broken=True,
        error=error,
    )


def _error_text(exc: BaseException, file: Path | None) -> str:
    """Say what went wrong in one line, with the script's line number when known."""
    if isinstance(exc, SyntaxError):
        return "%s: %s (line %s)" % (type(exc).__name__, exc.msg, exc.lineno)
    text = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
    if file is not None:
        lines = [
            frame.lineno
            for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename == str(file)
        ]
        if lines:
            text = "%s (line %s)" % (text, lines[-1])
    return text


def _first_line(doc: str | None) -> str:
    lines = inspect.cleandoc(doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:199] + "…"
