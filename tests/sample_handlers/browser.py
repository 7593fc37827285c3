"""Handlers the browser tests hold: they log a line, then wait until the test releases them."""

from __future__ import annotations

import threading

from scheduler_app import task_log

#: Set by a test once it has seen the first line in the page.
RELEASE = threading.Event()
#: Set by a test once it has seen what a run logged after its release.
FINISH = threading.Event()
#: Longest a run waits for the test (a failing test must not hang the suite).
WAIT_SECONDS = 60


def wait_for_release() -> dict:
    task_log("Waiting for the test to release me")
    if not RELEASE.wait(timeout=WAIT_SECONDS):
        raise TimeoutError("the test never released the run")
    task_log("Released; finishing")
    return {"released": True}


def _wait(event: threading.Event) -> None:
    if not event.wait(timeout=WAIT_SECONDS):
        raise TimeoutError("the test never released the run")


def log_control_characters() -> dict:
    """Once released, logs ANSI escapes, a bell and markup; ends once finished."""
    task_log("Waiting for the test to release me")
    _wait(RELEASE)
    task_log("\x1b[31mred\x1b[0m bell\x07 <b>bold</b>")
    _wait(FINISH)
    return {}
