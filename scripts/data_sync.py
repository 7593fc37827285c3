"""Data sync: the seed's example of typed parameters.

An int, a str, an Optional datetime and an Optional dict.
"""

import datetime

from scheduler_app import task_log

TASK_INFO = {
    "name": "Data sync",
    "description": "Synchronise the given number of days of data for a target.",
    "params": {
        "days": {"label": "Days", "help": "How many days back to synchronise."},
        "target": {"label": "Target", "help": "Which data set: all, orders, users..."},
        "start_date": {
            "label": "Start",
            "help": "Start of the window; empty means now. E.g. datetime.now() - timedelta(days=1)",
        },
        "options": {
            "label": "Options",
            "help": 'Extra options, e.g. {"dry_run": True}',
        },
    },
}


async def run(
    days: int = 7,
    target: str = "all",
    start_date: datetime.datetime | None = None,
    options: dict | None = None,
) -> dict:
    if start_date is None:
        start_date = datetime.datetime.now()
    options = options or {}
    task_log(
        "Synchronising", days, "days of", repr(target), "from", start_date.isoformat()
    )
    if options:
        task_log("Options:", options)
    return {
        "status": "completed",
        "days": days,
        "target": target,
        "start_date": start_date.isoformat(),
        "options": options,
    }
