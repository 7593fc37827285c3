"""Handler paths: the two forms, ``scripts:<file>`` and ``dotted.module:attribute``."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from ..exceptions import HandlerNotFound

SCRIPTS_PREFIX = "scripts"
#: The form field (and API field) that handler errors are reported on.
FIELD = "handler_path"

MSG_BAD_PATH = _(
    "Handler “%(path)s” is not valid: use scripts:<file> (a .py file in the scripts "
    "folder, named without .py) or dotted.module:attribute."
)
MSG_PRIVATE_SCRIPT = _(
    "Handler “%(path)s” not found: files in the scripts folder whose name starts "
    "with “_” are helpers, not handlers."
)
MSG_NOT_MODULE_LEVEL = _(
    "%(handler)r cannot be a handler: use a function or BaseTask class defined at "
    "the top level of an importable module (not a lambda, a nested function, a "
    "method or code in __main__)."
)


def parse_handler_path(path: str) -> tuple[str, str]:
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
