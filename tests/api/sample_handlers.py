"""Handlers the API tests point tasks at (module:function paths)."""

from __future__ import annotations


def needs_day(day: int, note: str = "") -> dict:
    return {"day": day, "note": note}
