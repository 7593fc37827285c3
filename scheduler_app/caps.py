"""A run's error message, traceback and result cut to their caps before they are stored.

However much a handler raises or returns, its row holds at most
SCHEDULER_ERROR_MAX_BYTES of error message, SCHEDULER_TRACEBACK_MAX_BYTES of
traceback and SCHEDULER_RESULT_MAX_BYTES of result, counted as the log's cap
counts (bytes of UTF-8, what the row stores), and what is kept says how much was
cut. The record of a run's end applies them (`services.records.make_bounded`),
whichever executor ran it; a handler process applies them first, so that what it
sends the scheduler is already bounded (`runtime.child`). Cutting a value that
was cut changes nothing: it fits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .tasklog import utf8_prefix, utf8_size, utf8_suffix

#: The line between the kept start and end of a text too big for its cap.
TEXT_CUT_MARKER = (
    "\n[... %d characters cut: the start and the end are kept, at most %s=%d "
    "bytes ...]\n"
)
#: Bytes of a text's cap left for the marker (setting names and numbers included).
_MARKER_ROOM = 200
#: What a cut text keeps of its start, as a part of the bytes kept: the rest is
#: its end, where a traceback names the error and the line that raised it.
_HEAD_PART = 4
#: What a cut result keeps of its JSON, as a part of the cap: once escaped in the
#: JSON of the object that says so, at most about twice as many bytes.
_PREVIEW_PART = 8


def fits(text: str, max_bytes: int) -> bool:
    """Whether `text` is at most `max_bytes` bytes of UTF-8; cheap for short and long texts."""
    if len(text) > max_bytes:  # never fewer bytes than characters
        return False
    return len(text) <= max_bytes // 4 or utf8_size(text) <= max_bytes


def capped_text(text: str, *, max_bytes: int, setting: str) -> str:
    """`text` itself when it fits `max_bytes`; else its start, a marker line, its end.

    The start says what failed, the end where and why: the end gets three
    quarters of what is kept. The marker counts the characters cut and names
    the setting, so that whoever reads it knows which cap to raise.
    """
    if fits(text, max_bytes):
        return text
    budget = max(2, max_bytes - _MARKER_ROOM)
    head = utf8_prefix(text, budget // _HEAD_PART)
    tail = utf8_suffix(text, budget - utf8_size(head))
    cut = len(text) - len(head) - len(tail)
    return head + TEXT_CUT_MARKER % (cut, setting, max_bytes) + tail


def capped_json(value: Any, *, max_bytes: int, setting: str) -> Any:
    """`value` itself when its JSON fits `max_bytes`; else a small object saying so.

    That object is JSON a JSONField stores, within the cap:
    ``{"truncated": true, "size_bytes": <the JSON's bytes>, "max_bytes": <the cap>,
    "setting": "SCHEDULER_RESULT_MAX_BYTES", "preview": "<the JSON's start>"}``.
    A value with no JSON (which the record then refuses as unstorable) is left
    as it is.
    """
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return value
    if fits(text, max_bytes):
        return value
    return {
        "truncated": True,
        "size_bytes": utf8_size(text),
        "max_bytes": max_bytes,
        "setting": setting,
        "preview": utf8_prefix(text, max_bytes // _PREVIEW_PART),
    }


@dataclass(frozen=True)
class Cap:
    """The cap of one value of a run's end: its setting, how it is cut, the log's line."""

    setting: str
    cut: Callable[..., Any]
    #: The line the run's log gets when the value was cut (%(setting)s, %(max)d).
    note: Promise


#: The values of a run's end that have a cap, by field name.
CAPS: dict[str, Cap] = {
    "error_message": Cap(
        "SCHEDULER_ERROR_MAX_BYTES",
        capped_text,
        _(
            "WARNING: the error message was longer than %(setting)s=%(max)d bytes: "
            "its start and its end are kept, with a line saying how much was cut."
        ),
    ),
    "error_traceback": Cap(
        "SCHEDULER_TRACEBACK_MAX_BYTES",
        capped_text,
        _(
            "WARNING: the traceback was longer than %(setting)s=%(max)d bytes: its "
            "start and its end are kept, with a line saying how much was cut."
        ),
    ),
    "result": Cap(
        "SCHEDULER_RESULT_MAX_BYTES",
        capped_json,
        _(
            "WARNING: the result was bigger than %(setting)s=%(max)d bytes of JSON: "
            "the record keeps its size and the start of its JSON instead."
        ),
    ),
}


def capped_fields(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Cut the values of a run's end (by field name) that are bigger than their caps.

    Returns the values cut, by name (the others are left out), and a line for
    the run's log about each. Values absent or empty are left alone; the text
    ones must be `str`.
    """
    cut: dict[str, Any] = {}
    notes: list[str] = []
    for name, cap in CAPS.items():
        value = values.get(name)
        if value is None or value == "":
            continue
        max_bytes = getattr(app_settings, cap.setting)
        kept = cap.cut(value, max_bytes=max_bytes, setting=cap.setting)
        if kept is not value:
            cut[name] = kept
            notes.append(str(cap.note) % {"setting": cap.setting, "max": max_bytes})
    return cut, notes
