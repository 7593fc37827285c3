"""``scripts:<file>`` handlers: the scripts folder, the loader and its cache.

A script is a .py file in SCHEDULER_SCRIPTS_PATH with a ``run()`` function and an
optional ``TASK_INFO`` dict. It is loaded from its file on first use and loaded
again when the file changes (modification time or size), so an edit takes effect
at the next run without a restart.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import inspect
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..exceptions import HandlerBroken, HandlerNotFound
from .declared import declared_schedule_fields
from .info import (
    KIND_SCRIPT,
    MSG_BROKEN,
    Broken,
    HandlerInfo,
    broken_info,
    error_text,
    first_line,
    param_specs,
)
from .paths import FIELD, SCRIPTS_PREFIX

logger = logging.getLogger(__name__)

# Scripts are loaded by file path under this private package name, so a script
# called "json.py" or "django.py" never shadows a real module.
SCRIPT_MODULE_PREFIX = "scheduler_scripts."

MSG_NO_SCRIPT = _(
    "Handler “%(path)s” not found: there is no file %(file)s in the scripts folder "
    "%(folder)s (SCHEDULER_SCRIPTS_PATH)."
)

# Why a handler is broken. Kept in English like the exception texts they sit
# beside, because they are cached with the script and shown in every language.
ERROR_NO_RUN = "no run() function"
ERROR_RUN_NOT_CALLABLE = "run is not callable (it is a %s)"
ERROR_BAD_FILE_NAME = (
    "the file name is not a Python identifier; rename it to letters, digits and "
    "underscores, e.g. my_task.py"
)
ERROR_TASK_INFO = "TASK_INFO must be a dict, not %s"


@dataclass
class _ScriptEntry:
    key: tuple[int, int]
    info: HandlerInfo
    module: ModuleType | None = None
    func: Callable[..., Any] | None = field(default=None, repr=False)


# Script file path -> loaded script. Guarded by _lock; re-entrant because a script
# may itself look handlers up while it is being imported.
_scripts: dict[str, _ScriptEntry] = {}
_lock = threading.RLock()


def scripts_folder() -> Path:
    """Return the configured scripts folder (read on every call)."""
    return Path(str(app_settings.SCHEDULER_SCRIPTS_PATH))


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


def resolve_script(path: str, name: str) -> tuple[HandlerInfo, Callable[..., Any]]:
    """The script `name` (of handler `path`) and its run(); raise if missing or broken."""
    entry = _find_script(path, name)
    if entry.info.broken or entry.func is None:
        raise HandlerBroken(
            MSG_BROKEN % {"path": path, "error": entry.info.error}, field=FIELD
        )
    return entry.info, entry.func


def clear_cache() -> None:
    """Forget every loaded script, so the next lookup imports each one again."""
    _forget_scripts_except(set())


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
            key, broken_info(path, KIND_SCRIPT, name, ERROR_BAD_FILE_NAME)
        )
    logger.debug("Loading script %s", file)
    try:
        module = _exec_script(name, file)
    except (Exception, SystemExit) as exc:  # a script must never stop the caller
        error = error_text(exc, file)
        # The traceback helps with import-time failures; a syntax error says it all.
        logger.warning(
            "Script %s is broken: %s",
            file,
            error,
            exc_info=not isinstance(exc, SyntaxError),
        )
        return _ScriptEntry(key, broken_info(path, KIND_SCRIPT, name, error))
    try:
        info, func = _describe_script(path, name, module)
    except Broken as exc:
        logger.warning("Script %s is broken: %s", file, exc)
        _unregister(module)
        return _ScriptEntry(key, broken_info(path, KIND_SCRIPT, name, str(exc)))
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
            raise Broken(ERROR_TASK_INFO % type(task_info).__name__)
        if not hasattr(module, "run"):
            raise Broken(ERROR_NO_RUN)
        run = module.run
        if not callable(run):
            raise Broken(ERROR_RUN_NOT_CALLABLE % type(run).__name__)
        params = task_info.get("params")
        specs, accepts_var_kwargs = param_specs(
            run, "run()", params if isinstance(params, Mapping) else None
        )
        info = HandlerInfo(
            path=path,
            kind=KIND_SCRIPT,
            name=str(task_info.get("name") or name),
            description=str(
                task_info.get("description")
                or first_line(module.__doc__)
                or first_line(run.__doc__)
            ),
            params=tuple(specs),
            accepts_var_kwargs=accepts_var_kwargs,
            is_async=inspect.iscoroutinefunction(run),
            schedule=declared_schedule_fields(task_info.get("schedule")),
            enabled=bool(task_info.get("enabled", True)),
        )
    except Broken:
        raise
    except Exception as exc:  # noqa: BLE001 - odd module objects must not escape
        raise Broken(error_text(exc, None)) from exc
    return info, run
