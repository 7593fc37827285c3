"""A handler with a required parameter that the API and allow-list tests point tasks at."""

from __future__ import annotations


def needs_day(day: int, note: str = "") -> dict:
    return {"day": day, "note": note}
