"""Text every supported database can store: NUL characters and lone surrogates replaced.

PostgreSQL refuses NUL in text and in jsonb ("unsupported Unicode escape
sequence"), and no UTF-8 database driver can encode a lone surrogate (what
`surrogateescape` makes of a byte that is not UTF-8). The execution path passes
everything a handler produces through here on the way in, the same on every
database, and notes in the run's log that a value was altered.
"""

from __future__ import annotations

import re
from typing import Any

#: What stands in for each character that cannot be stored (U+FFFD REPLACEMENT CHARACTER).
REPLACEMENT = "\ufffd"

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """`text` with NUL and lone surrogates replaced; `text` itself when it has none.

    A valid surrogate pair (two code points that UTF-16 would join) becomes the
    character it stands for.
    """
    if text.isascii():  # the common case, at C speed
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    if _UNSTORABLE.search(text) is None:
        return text
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return joined.replace("\x00", REPLACEMENT)


def is_unstorable(value: Any) -> bool:
    """Whether a string anywhere in this JSON value holds a character no database stores.

    What a user typed is refused with a message (this); what a handler produced is
    stored replaced (storable_json).
    """
    return storable_json(value) is not value


def storable_json(value: Any) -> Any:
    """A JSON value (dicts, lists, strings, numbers) with every string storable.

    Keys too. Returns `value` itself when nothing had to change, so
    `storable_json(value) is not value` says whether something was altered.
    """
    if type(value) is str:
        return storable_text(value)
    if isinstance(value, dict):
        changed = False
        items = []
        for key, item in value.items():
            new_key = storable_text(key) if type(key) is str else key
            new_item = storable_json(item)
            changed = changed or new_key is not key or new_item is not item
            items.append((new_key, new_item))
        return dict(items) if changed else value
    if isinstance(value, (list, tuple)):
        new_items = [storable_json(item) for item in value]
        if any(new is not old for new, old in zip(new_items, value, strict=False)):
            return new_items
        return value
    return value
