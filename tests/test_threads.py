"""The list of background threads is complete: every thread of the app starts through it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import scheduler_app
from scheduler_app.runtime import threads

APP = Path(scheduler_app.__file__).parent
LIST = APP / "runtime" / "threads.py"
#: Ways of starting a thread other than through the list.
STARTERS = re.compile(r"threading\.Thread\(|ThreadPoolExecutor\(|_thread\.start_new")


def test_no_module_of_the_app_starts_a_thread_but_through_the_list() -> None:
    found = [
        "%s:%d" % (path.relative_to(APP), number)
        for path in sorted(APP.rglob("*.py"))
        if path != LIST
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if STARTERS.search(line)
    ]
    assert found == []


@pytest.mark.parametrize("kind", threads.THREADS, ids=lambda kind: kind.name)
def test_each_entry_names_what_it_runs(kind: threads.BackgroundThread) -> None:
    module, _, qualified = kind.target.partition(":")
    value: object = importlib.import_module(module)
    for name in qualified.split("."):
        value = getattr(value, name)
    assert callable(value)
    assert kind.purpose and kind.daemon


def test_thread_names_are_distinct_and_listed_once() -> None:
    names = [kind.name for kind in threads.THREADS]
    assert len(names) == len(set(names))
    listed = {
        value
        for value in vars(threads).values()
        if isinstance(value, threads.BackgroundThread)
    }
    assert listed == set(threads.THREADS)


def test_call_returns_the_value_or_raises_the_error_of_its_thread() -> None:
    assert threads.LOCK_WRITE.call(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        threads.LOCK_WRITE.call(lambda: 1 / 0)
