"""Control characters made visible wherever a handler's text is shown to a person.

A handler's log, error, traceback or result may hold ANSI escape sequences,
carriage returns, bells: shown as they are, they redraw an operator's terminal
(`run_task`) or hide and reorder text. Every place that shows them writes each
control character (Unicode's category Cc: C0, DEL and C1) but newline and tab as
Python's repr does (``\\r``, ``\\x1b``). The admin shows them in a muted span
(`admin.display.visible_text`); the live log's script
(static/scheduler_app/execution_log.js) follows the same rule in the browser.
"""

from __future__ import annotations

import re

#: The control characters shown escaped: all of category Cc but newline and tab.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def control_name(char: str) -> str:
    """How a control character is shown: ``\\r``, else ``\\x`` and its two hex digits."""
    return "\\r" if char == "\r" else "\\x%02x" % ord(char)


def escape_controls(text: str) -> str:
    """`text` with each control character but newline and tab written as `control_name`."""
    if CONTROL_CHARACTERS.search(text) is None:
        return text
    return CONTROL_CHARACTERS.sub(lambda match: control_name(match.group()), text)
