"""A handler the browser tests hold: it logs a line, then waits until the test releases it."""

from __future__ import annotations

import threading

from scheduler_app import task_log

#: Set by a test once it has seen the first line in the page.
RELEASE = threading.Event()
#: Longest a run waits for the test (a failing test must not hang the suite).
WAIT_SECONDS = 60


def wait_for_release() -> dict:
    task_log("Waiting for the test to release me")
    if not RELEASE.wait(timeout=WAIT_SECONDS):
        raise TimeoutError("the test never released the run")
    task_log("Released; finishing")
    return {"released": True}
