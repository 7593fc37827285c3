"""The one error a refused or failing expression raises."""

from __future__ import annotations


class UnsafeExpressionError(ValueError):
    """Raised for any refused or failing expression; str(e) is a human message."""
