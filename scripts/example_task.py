"""Example task: logs a few lines and reports when it ran. Copy it to start a new script."""

import datetime

from scheduler_app import task_log, task_progress

TASK_INFO = {
    "name": "Example task",
    "description": "Logs a few lines with progress and returns when it ran.",
}


async def run() -> dict:
    task_log("Example task started")
    for step in range(1, 4):
        task_progress(step, 3)
        task_log("Step", step, "of 3 done")
    return {
        "status": "completed",
        "message": "Example task finished",
        "ran_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }
