"""The handler registry: list, describe and resolve handlers, whatever their kind.

This is the one module the rest of the app imports handler lookups from. The parts
live beside it: the path forms (paths.py), which handlers may run (allowed.py:
@handler and SCHEDULER_HANDLER_MODULES), scripts and their cache (scripts.py),
functions and task classes (objects.py), declared schedules (declared.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exceptions import HandlerBroken, SchedulerError
from .allowed import (
    allowed_code_paths,
    allowed_object,
    check_allowed,
    configured_handler_modules,
    handler,
    is_standard_library,
    refusal,
)
from .info import KIND_SCRIPT, MSG_BROKEN, Broken, HandlerInfo, broken_info
from .objects import describe_object, object_kind
from .paths import FIELD, SCRIPTS_PREFIX, handler_path_for, parse_handler_path
from .scripts import clear_cache, list_scripts, resolve_script

__all__ = [
    "KIND_SCRIPT",
    "HandlerInfo",
    "check_allowed",
    "clear_cache",
    "configured_handler_modules",
    "get_handler",
    "handler",
    "handler_path_for",
    "is_standard_library",
    "list_code_handlers",
    "list_handlers",
    "list_scripts",
    "load_handler",
    "refusal",
    "resolve_handler",
]


def list_handlers() -> list[HandlerInfo]:
    """Describe every allowed handler, broken ones included, never raising.

    Scripts first (by file name), then the handlers registered in code (by path).
    """
    return [*list_scripts(), *list_code_handlers()]


def list_code_handlers() -> list[HandlerInfo]:
    """Describe the @handler functions and classes and those of SCHEDULER_HANDLER_MODULES."""
    infos: list[HandlerInfo] = []
    for path in sorted(allowed_code_paths()):
        module_name, attr = parse_handler_path(path)
        try:
            target, registration = allowed_object(path, module_name, attr)
        except SchedulerError:  # unregistered or gone between listing and describing
            continue
        try:
            infos.append(describe_object(path, attr, target, registration)[0])
        except Broken as exc:
            infos.append(broken_info(path, object_kind(target), attr, str(exc)))
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


def resolve_handler(path: str) -> tuple[HandlerInfo, Callable[..., Any]]:
    """get_handler and load_handler in one lookup (the execution path needs both)."""
    module_name, attr = parse_handler_path(path)
    if module_name == SCRIPTS_PREFIX:
        return resolve_script(path, attr)
    target, registration = allowed_object(path, module_name, attr)
    try:
        return describe_object(path, attr, target, registration)
    except Broken as exc:
        raise HandlerBroken(
            MSG_BROKEN % {"path": path, "error": str(exc)}, field=FIELD
        ) from None
