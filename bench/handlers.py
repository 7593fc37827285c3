"""Handlers the benchmarks schedule: they do nothing, so what is measured is the scheduler."""

from __future__ import annotations

import time

#: (job index, time.time() at start) of each run of `timed_job` (django-apscheduler runner).
STARTS: list[tuple[int, float]] = []


def noop() -> dict:
    """The benchmarks' task: "bench.handlers:noop"."""
    return {}


def timed_job(index: int) -> None:
    """django-apscheduler's job: notes when it started (list.append is thread-safe)."""
    STARTS.append((index, time.time()))
