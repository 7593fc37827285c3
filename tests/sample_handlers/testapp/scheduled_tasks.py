"""Handlers registered the way a project registers its own: @scheduler_app.handler.

Django imports this module at start-up (autodiscovery), as it imports admin.py.
"""

from __future__ import annotations

from pathlib import Path

import scheduler_app
from scheduler_app import task_log
from scheduler_app.handlers import BaseTask


@scheduler_app.handler
def greet(name: str = "world") -> dict:
    """Say hello to someone."""
    task_log("hello", name)
    return {"greeted": name}


@scheduler_app.handler(
    name="Write a canary file",
    description="Writes the given text to a file: proves that a handler ran.",
    params={"path": {"label": "File", "help": "Where to write"}},
)
def write_canary(path: str, text: str = "ran") -> dict:
    Path(path).write_text(text)
    return {"wrote": path}


@scheduler_app.handler
class Report(BaseTask):
    """Build a report."""

    name = "Daily report"

    def run(self, days: int = 1) -> dict:
        return {"days": days}


def not_registered(path: str) -> dict:
    """Lives beside registered handlers but is not one: it must never run."""
    Path(path).write_text("not registered")
    return {}
