"""Statement texts with the database's quoted names, built once per database.

Each statement of this package is a module constant with `{name}` placeholders
for table and column names; the names depend on the database (its quoting), so
the text is filled in at the first use on each database alias and kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_built: dict[tuple[str, str], str] = {}


def text_for(
    connection: Any, statement: str, names: Callable[[Any], Mapping[str, str]]
) -> str:
    """`statement` with `names(connection)` filled in, built at the first call per alias."""
    key = (statement, connection.alias)
    text = _built.get(key)
    if text is None:
        text = _built[key] = statement.format(**names(connection))
    return text
