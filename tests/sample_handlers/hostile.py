"""Handlers that try to hurt the process running them: for the handler-process tests.

They coordinate with the tests through files (a path in `marker`), since they run
in another process: nothing in memory is shared.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import subprocess
import sys
import time

from scheduler_app import task_log

logger = logging.getLogger("hostile.handler")

#: What `leak` keeps, so the process's memory grows run after run.
_kept: list[bytes] = []


def _note(marker: str, text: str) -> None:
    with open(marker, "a") as file:
        file.write(text + "\n")


def pid() -> int:
    """The process the handler ran in."""
    return os.getpid()


def exit_now(code: int = 1) -> None:
    os._exit(code)


def segfault() -> None:
    ctypes.string_at(0)


def sleep_with_child(marker: str, seconds: float = 3600) -> None:
    """Start a `sleep` child process, note both pids, then sleep."""
    child = subprocess.Popen(["sleep", "3600"])
    _note(marker, "%d %d" % (os.getpid(), child.pid))
    time.sleep(seconds)


def ignore_term(marker: str) -> None:
    """Ignore SIGTERM and sleep: only SIGKILL ends it."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _note(marker, str(os.getpid()))
    while True:
        time.sleep(0.1)


def busy(marker: str) -> None:
    _note(marker, str(os.getpid()))
    while True:
        pass


def probe(marker: str, seconds: float = 1.0) -> None:
    """Note when it starts and ends (pid, time): overlapping runs show in the file."""
    _note(marker, "start %d %.6f" % (os.getpid(), time.time()))
    time.sleep(seconds)
    _note(marker, "end %d %.6f" % (os.getpid(), time.time()))


def chatty(lines: int = 3) -> str:
    """print(), stderr and logging, as a handler that never heard of task_log does."""
    for n in range(lines):
        print("printed line", n)
    print("to stderr", file=sys.stderr)
    logger.warning("a logged warning")
    print("no newline at the end", end="")
    task_log("and task_log")
    return "chatted"


async def async_block(seconds: float = 30) -> str:
    time.sleep(seconds)  # blocks its event loop: the mistake this is about
    return "blocked"


async def async_quick() -> int:
    await asyncio.sleep(0)
    return os.getpid()


def leak(megabytes: int = 64) -> int:
    _kept.append(b"x" * (megabytes * 2**20))
    return os.getpid()


def cooperative(marker: str) -> None:
    """Logs until cancelled (task_log raises then)."""
    _note(marker, str(os.getpid()))
    while True:
        task_log("working")
        time.sleep(0.05)


def unpicklable_result() -> object:
    return {"lock": __import__("threading").Lock()}


def huge_output(megabytes: int = 3) -> str:
    """One task_log message, and one print() without a newline, of `megabytes` each."""
    task_log("x" * (megabytes * 2**20))
    print("y" * (megabytes * 2**20), end="")
    return "done"
