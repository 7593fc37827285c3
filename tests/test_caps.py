"""The caps of a run's error message, traceback and result: what is kept, what says so."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scheduler_app.caps import CAPS, capped_fields, capped_json, capped_text

SETTING = "SCHEDULER_ERROR_MAX_BYTES"


def size(text: str) -> int:
    return len(text.encode("utf-8"))


@pytest.mark.parametrize("char", ["a", "é", "中", "😀"])
def test_a_text_too_long_keeps_its_start_and_end_within_the_cap(char: str) -> None:
    text = "START" + char * 300_000 + "END"

    kept = capped_text(text, max_bytes=4096, setting=SETTING)

    head, marker, tail = kept.split("\n")
    assert size(kept) <= 4096
    assert head.startswith("START") and tail.endswith("END")
    assert size(tail) > 2 * size(head)  # the end says where it failed
    cut = len(text) - len(head) - len(tail)
    assert marker == (
        "[... %d characters cut: the start and the end are kept, at most "
        "SCHEDULER_ERROR_MAX_BYTES=4096 bytes ...]" % cut
    )


@pytest.mark.parametrize("text", ["", "short", "x" * 4096, "é" * 2048])
def test_a_text_that_fits_is_itself(text: str) -> None:
    assert capped_text(text, max_bytes=4096, setting=SETTING) is text


def test_a_text_cut_once_is_not_cut_again() -> None:
    kept = capped_text("é" * 100_000, max_bytes=2048, setting=SETTING)

    assert capped_text(kept, max_bytes=2048, setting=SETTING) is kept


@pytest.mark.parametrize("value", [None, 7, "x" * 1000, {"rows": [1, 2, 3]}, []])
def test_a_result_that_fits_is_itself(value: Any) -> None:
    assert capped_json(value, max_bytes=1024, setting="R") is value


@pytest.mark.parametrize(
    "value",
    [
        {"rows": ["r" * 100] * 1000},
        ['"quoted" \\ back'] * 5000,  # escaping the preview doubles these
        {"text": "\x1b\x00" * 20_000},  # JSON writes each as six characters
        "😀" * 50_000,
    ],
)
def test_a_result_too_big_is_a_small_object_saying_so(value: Any) -> None:
    whole = json.dumps(value, ensure_ascii=False)

    kept = capped_json(value, max_bytes=4096, setting="SCHEDULER_RESULT_MAX_BYTES")

    assert kept == {
        "truncated": True,
        "size_bytes": size(whole),
        "max_bytes": 4096,
        "setting": "SCHEDULER_RESULT_MAX_BYTES",
        "preview": kept["preview"],
    }
    assert whole.startswith(kept["preview"]) and kept["preview"]
    assert size(json.dumps(kept)) <= 4096  # as a JSONField writes it
    assert capped_json(kept, max_bytes=4096, setting="R") is kept


def test_capped_fields_cuts_each_value_to_its_own_cap(settings: Any) -> None:
    settings.SCHEDULER_ERROR_MAX_BYTES = 1024
    settings.SCHEDULER_TRACEBACK_MAX_BYTES = 2048
    settings.SCHEDULER_RESULT_MAX_BYTES = 1024
    values = {
        "status": "failed",
        "error_message": "e" * 5000,
        "error_traceback": "t" * 5000,
        "result": {"rows": "r" * 5000},
    }

    cut, notes = capped_fields(values)

    assert set(cut) == set(CAPS) == {"error_message", "error_traceback", "result"}
    assert size(cut["error_message"]) <= 1024 < size(cut["error_traceback"]) <= 2048
    assert cut["result"]["truncated"] is True
    assert notes == [
        "WARNING: the error message was longer than SCHEDULER_ERROR_MAX_BYTES=1024 "
        "bytes: its start and its end are kept, with a line saying how much was cut.",
        "WARNING: the traceback was longer than SCHEDULER_TRACEBACK_MAX_BYTES=2048 "
        "bytes: its start and its end are kept, with a line saying how much was cut.",
        "WARNING: the result was bigger than SCHEDULER_RESULT_MAX_BYTES=1024 bytes of "
        "JSON: the record keeps its size and the start of its JSON instead.",
    ]


def test_capped_fields_leaves_values_that_fit_and_empty_ones() -> None:
    values = {"error_message": "", "error_traceback": "tb", "result": None}

    assert capped_fields(values) == ({}, [])
