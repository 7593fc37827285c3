"""A handler the Python API tests (tests/test_public_api.py) pass as a function object."""

from __future__ import annotations

import datetime as dt

import scheduler_app


@scheduler_app.handler
def send_report(
    report_id: int, to: str = "ops@example.com", since: dt.datetime | None = None
) -> dict:
    """A module-level handler: importable again by the scheduler process."""
    return {"report_id": report_id, "to": to}
