"""Handlers the execution, engine and live-log tests run, with events to steer them.

Tests name them by module:function path (tests/factories.py builds tasks on them);
tests/services/conftest.py resets the events around each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from django.db import transaction

from scheduler_app import task_extend_lock, task_log, task_progress
from scheduler_app.handlers.base import BaseTask, ScheduleType, TaskSchedule
from scheduler_app.handlers.results import TaskResult

#: Set by a test to let a blocking handler finish.
release = threading.Event()
#: Set by a blocking handler once it is running.
started = threading.Event()
calls: list[dict] = []


def reset() -> None:
    release.clear()
    started.clear()
    calls.clear()


def add(a: int, b: int = 1) -> dict:
    calls.append({"a": a, "b": b})
    task_log("adding", a, "and", b)
    return {"sum": a + b}


async def async_add(a: int, b: int = 1) -> dict:
    await asyncio.sleep(0)
    task_log("async adding", a, b)
    return {"sum": a + b}


def boom() -> dict:
    task_log("about to fail")
    raise RuntimeError("the database is on fire")


def says_failed() -> TaskResult:
    return TaskResult.failed(error="upstream returned 503", message="sync failed")


def says_skipped() -> TaskResult:
    return TaskResult.skipped("nothing to do")


def log_then_block() -> dict:
    task_log("first line")
    task_progress(1, 4)
    started.set()
    release.wait(30)
    task_log("released")
    return {"done": True}


def extends_lock(seconds: float | None = None, in_transaction: bool = False) -> dict:
    """Extends its run's lock, blocks until released, then extends it twice more."""
    with transaction.atomic() if in_transaction else contextlib.nullcontext():
        first = task_extend_lock(seconds)
        started.set()
        release.wait(30)
    return {"held": [first, task_extend_lock(seconds), task_extend_lock(seconds)]}


def block_ignoring_cancel() -> dict:
    started.set()
    release.wait(30)
    return {"late": True}


async def async_block() -> dict:
    started.set()
    await asyncio.sleep(30)
    return {"late": True}


def many_lines(count: int = 25) -> dict:
    for number in range(1, count + 1):
        task_log("line", number)
    return {"lines": count}


def log_from_thread() -> dict:
    thread = threading.Thread(target=lambda: task_log("from a helper thread"))
    thread.start()
    thread.join()
    return {}


def returns_odd_values() -> dict:
    import datetime as dt
    import decimal

    return {
        "when": dt.datetime(2024, 1, 1, 8, 0),
        "amount": decimal.Decimal("1.50"),
        "tags": {"a"},
    }


class NightlyTotals(BaseTask):
    """A seed 001 style class handler."""

    name = "nightly_totals"
    description = "Adds up the day's orders"
    schedule = TaskSchedule(
        schedule_type=ScheduleType.CRON, cron_expression="0 1 * * *"
    )

    async def run(self, region: str = "all") -> TaskResult:
        task_log("totals for", region)
        return TaskResult.success("done", region=region, orders=3)


# -- text the databases cannot store as it is (NUL, lone surrogates) ---------------


def echo(target: str = "all") -> dict:
    task_log("target is", target)
    return {"target": target}


def returns_nul() -> dict:
    return {"s": "a\x00b"}


def returns_surrogate() -> dict:
    return {"s": "a\ud800b", "a\udfffkey": 1}


def raises_nul() -> dict:
    raise ValueError("a\x00b")


def logs_nul() -> dict:
    task_log("x\x00y")
    return {}


def logs_undecodable() -> dict:
    # What os.fsdecode / surrogateescape makes of a byte that is not UTF-8.
    task_log("file", b"caf\xe9.txt".decode("utf-8", "surrogateescape"))
    return {}


def fails_with_odd_error() -> TaskResult:
    return TaskResult.failed(error=ValueError("a\x00b"))  # not even a string


def huge_result(megabytes: int = 3) -> dict:
    """A success whose result has about `megabytes` MB of JSON."""
    task_log("returning about", megabytes, "MB")
    return {"rows": ["r" * 1000] * (megabytes * 1024)}


def huge_error(megabytes: int = 3) -> None:
    """An exception whose message has `megabytes` MB between its start and its end."""
    raise ValueError("START " + "m" * (megabytes * 2**20) + " END")


def control_characters(fail: bool = True) -> dict:
    """Logs, and fails or returns, with ANSI escapes and other control characters."""
    task_log("\x1b[31mred\x1b[0m bell\x07 back\rover")
    if fail:
        raise RuntimeError("\x1b[2Jcleared \x9b31m")
    return {"text": "del\x7f csi\x9b31m"}
