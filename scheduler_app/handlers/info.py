"""HandlerInfo, what is known of one handler, and the helpers every kind of handler shares."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils.translation import gettext_lazy as _

from .params import ParamSpec, specs_from_callable
from .results import json_safe

KIND_SCRIPT = "script"
KIND_FUNCTION = "function"
KIND_CLASS = "class"

MSG_BROKEN = _("Handler “%(path)s” is broken: %(error)s")

# Kept in English like the exception texts it sits beside (see scripts.py).
ERROR_SIGNATURE = "cannot read the parameters of %s: %s"


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


class Broken(Exception):
    """A handler was found but cannot be used; the message says why."""


def broken_info(path: str, kind: str, name: str, error: str) -> HandlerInfo:
    """Describe a handler that was found but cannot run (listed, with its error)."""
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


def param_specs(
    func: Callable[..., Any], what: str, param_info: Mapping[str, Any] | None
) -> tuple[list[ParamSpec], bool]:
    """The parameters of `func` (`what` names it in the error), or raise Broken."""
    try:
        return specs_from_callable(func, param_info=dict(param_info or {}))
    except (TypeError, ValueError) as exc:
        raise Broken(ERROR_SIGNATURE % (what, exc)) from exc


def error_text(exc: BaseException, file: Path | None) -> str:
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


def first_line(doc: str | None) -> str:
    """The first line of a docstring ("" when there is none)."""
    lines = inspect.cleandoc(doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""
