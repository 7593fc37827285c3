"""``module:function`` and ``module:Class`` handlers: how one is described and called.

Describing means signature and type-hint introspection, so it is done once per
object and cached; the execution path looks the description up on every run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .base import BaseTask, snake_case
from .declared import declared_schedule_fields
from .info import (
    KIND_CLASS,
    KIND_FUNCTION,
    Broken,
    HandlerInfo,
    first_line,
    param_specs,
)

# Why a handler is broken, in English like the other reasons (see scripts.py).
ERROR_NOT_CALLABLE = "%s is not callable (it is a %s)"
ERROR_CLASS_NO_RUN = "class %s has no run() method"
ERROR_CLASS_RUN_ABSTRACT = "class %s does not implement run()"
ERROR_CLASS_ARGS = (
    "class %s needs constructor arguments (%s); a task class is created with none"
)


@dataclass(frozen=True)
class Registration:
    """A handler registered with @handler, and what the decorator said of it."""

    target: Any
    name: str | None = None
    description: str | None = None
    params: Mapping[str, Any] | None = None


#: path -> (the object described, its registration, its description): see describe_object.
_described: dict[
    str, tuple[Any, Registration | None, tuple[HandlerInfo, Callable[..., Any]]]
] = {}


def describe_object(
    path: str, attr: str, obj: Any, registration: Registration | None
) -> tuple[HandlerInfo, Callable[..., Any]]:
    """Describe the function or task class `obj`, and return what to call; raise Broken.

    Cached per path, and valid while the object and its registration are the same
    ones: a reloaded module brings a new object, described afresh.
    """
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


def forget_description(path: str) -> None:
    """Drop the cached description of `path` (it was registered again)."""
    _described.pop(path, None)


def object_kind(obj: Any) -> str:
    """KIND_CLASS for a task class, KIND_FUNCTION otherwise."""
    return KIND_CLASS if inspect.isclass(obj) else KIND_FUNCTION


def _describe_callable(
    path: str, attr: str, obj: Any, registration: Registration | None
) -> tuple[HandlerInfo, Callable[..., Any]]:
    if not callable(obj):
        raise Broken(ERROR_NOT_CALLABLE % (attr, type(obj).__name__))
    registration = registration or Registration(obj)
    specs, accepts_var_kwargs = param_specs(obj, attr, registration.params)
    info = HandlerInfo(
        path=path,
        kind=KIND_FUNCTION,
        name=str(registration.name or getattr(obj, "__name__", attr)),
        description=str(
            registration.description or first_line(getattr(obj, "__doc__", None))
        ),
        params=tuple(specs),
        accepts_var_kwargs=accepts_var_kwargs,
        is_async=inspect.iscoroutinefunction(obj),
        schedule=None,
    )
    return info, obj


def _describe_class(
    path: str, cls: type, registration: Registration | None
) -> tuple[HandlerInfo, Callable[..., Any]]:
    registration = registration or Registration(cls)
    run = getattr(cls, "run", None)
    if run is None or not callable(run):
        raise Broken(ERROR_CLASS_NO_RUN % cls.__name__)
    if run is BaseTask.run:
        raise Broken(ERROR_CLASS_RUN_ABSTRACT % cls.__name__)
    _check_constructible(cls)
    specs, accepts_var_kwargs = param_specs(
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
            or first_line(cls.__doc__)
        ),
        params=tuple(specs),
        accepts_var_kwargs=accepts_var_kwargs,
        is_async=is_async,
        schedule=declared_schedule_fields(getattr(cls, "schedule", None)),
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
        raise Broken(ERROR_CLASS_ARGS % (cls.__name__, ", ".join(needed)))


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
