"""TaskResult helpers, outcomes of return values, and json_safe."""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from django.utils.translation import gettext_lazy

from scheduler_app.handlers.results import (
    CYCLE_MARKER,
    DEPTH_MARKER,
    MAX_REPR_LENGTH,
    Outcome,
    TaskResult,
    json_safe,
    outcome_from_return,
)


def test_success_keeps_message_and_data() -> None:
    result = TaskResult.success("Inventory synced", synced_count=100, failed_count=0)

    assert result == TaskResult(
        status="success",
        message="Inventory synced",
        data={"synced_count": 100, "failed_count": 0},
    )


def test_failed_keeps_error_and_message() -> None:
    result = TaskResult.failed(error="database down", message="sync failed", tries=3)

    assert (result.status, result.error, result.message) == (
        "failed",
        "database down",
        "sync failed",
    )
    assert result.data == {"tries": 3}


def test_failed_takes_the_error_positionally() -> None:
    assert TaskResult.failed("boom").error == "boom"


def test_skipped_keeps_message() -> None:
    assert TaskResult.skipped("nothing to do") == TaskResult(
        status="skipped", message="nothing to do"
    )


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        TaskResult(status="completed")


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ({"status": "completed", "count": 3}, {"status": "completed", "count": 3}),
        (None, None),
        (42, 42),
        ({"when": datetime.date(2024, 1, 2)}, {"when": "2024-01-02"}),
    ],
)
def test_plain_return_values_are_successes(value: Any, result: Any) -> None:
    assert outcome_from_return(value) == Outcome(
        status="success", result=result, error_message=""
    )


def test_task_result_success_becomes_message_and_data() -> None:
    outcome = outcome_from_return(
        TaskResult.success("done", count=2, at=datetime.datetime(2024, 1, 1, 8, 0))
    )

    assert outcome == Outcome(
        status="success",
        result={"message": "done", "count": 2, "at": "2024-01-01T08:00:00"},
        error_message="",
    )


def test_task_result_failed_carries_the_error() -> None:
    outcome = outcome_from_return(
        TaskResult.failed(error="database down", message="sync failed", tries=3)
    )

    assert outcome == Outcome(
        status="failed",
        result={"message": "sync failed", "error": "database down", "tries": 3},
        error_message="database down",
    )


def test_task_result_failed_without_error_uses_the_message() -> None:
    outcome = outcome_from_return(TaskResult.failed(message="sync failed"))

    assert outcome.error_message == "sync failed"


def test_task_result_failed_with_nothing_still_has_an_error_message() -> None:
    outcome = outcome_from_return(TaskResult.failed())

    assert "without an error" in outcome.error_message


def test_task_result_skipped_is_skipped() -> None:
    outcome = outcome_from_return(TaskResult.skipped("no new data"))

    assert outcome == Outcome(
        status="skipped", result={"message": "no new data"}, error_message=""
    )


class Colour(Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    when: datetime.date


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (3, 3),
        (1.5, 1.5),
        ("text", "text"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (datetime.datetime(2024, 1, 1, 8, 30), "2024-01-01T08:30:00"),
        (
            datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
            "2024-01-01T00:00:00+00:00",
        ),
        (datetime.date(2024, 1, 1), "2024-01-01"),
        (datetime.time(8, 30), "08:30:00"),
        (datetime.timedelta(minutes=2), 120.0),
        (Decimal("1.10"), "1.10"),
        (
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "12345678-1234-5678-1234-567812345678",
        ),
        (Path("/tmp/x.csv"), "/tmp/x.csv"),
        ((1, 2), [1, 2]),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        (b"\x00ab", "b'\\x00ab'"),
        (bytearray(b"ab"), "b'ab'"),
        (Colour.RED, "red"),
        (Point(1, datetime.date(2024, 1, 1)), {"x": 1, "when": "2024-01-01"}),
        (Opaque(), "<Opaque>"),
        (BrokenRepr(), "<unrepresentable BrokenRepr object>"),
        (gettext_lazy("Success"), "Success"),
        (
            {1: "a", datetime.date(2024, 1, 1): "b", None: "c"},
            {"1": "a", "2024-01-01": "b", "None": "c"},
        ),
        ({"nested": [{"t": (1, {2})}]}, {"nested": [{"t": [1, [2]]}]}),
    ],
)
def test_json_safe_converts_values(value: Any, expected: Any) -> None:
    result = json_safe(value)

    assert result == expected
    json.dumps(result, allow_nan=False)


def test_json_safe_replaces_cycles_with_a_marker() -> None:
    items: list[Any] = [1]
    items.append(items)
    mapping: dict[str, Any] = {"a": 1}
    mapping["self"] = mapping

    assert json_safe(items) == [1, CYCLE_MARKER]
    assert json_safe(mapping) == {"a": 1, "self": CYCLE_MARKER}


def test_json_safe_keeps_shared_objects_that_are_not_cycles() -> None:
    shared = [1]

    assert json_safe({"a": shared, "b": shared}) == {"a": [1], "b": [1]}


def test_json_safe_cuts_nesting_deeper_than_max_depth() -> None:
    value: list[Any] = []
    innermost = value
    for _level in range(50):
        inner: list[Any] = []
        innermost.append(inner)
        innermost = inner

    result = json_safe(value, max_depth=3)

    assert result == [[[DEPTH_MARKER]]]


def test_json_safe_survives_very_deep_nesting() -> None:
    value: list[Any] = []
    for _level in range(100_000):
        value = [value]

    assert "too deep" in json.dumps(json_safe(value))


def test_json_safe_cuts_long_reprs() -> None:
    class Long:
        def __repr__(self) -> str:
            return "x" * 100_000

    assert len(json_safe(Long())) == MAX_REPR_LENGTH


def test_json_safe_does_not_consume_generators() -> None:
    generator = (n for n in range(3))

    assert json_safe(generator).startswith("<generator object")
    assert list(generator) == [0, 1, 2]
