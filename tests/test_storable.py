"""storable_text / storable_json: NUL and lone surrogates replaced, nothing else touched."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler_app.storable import REPLACEMENT as R
from scheduler_app.storable import storable_json, storable_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\x00b", "a%sb" % R),
        ("x\ud800y", "x%sy" % R),
        ("caf\udce9", "caf%s" % R),  # surrogateescape of the byte 0xE9
        ("\udfff\ud800", R + R),  # a low before a high: no pair
        ("\ud83d\ude00", "\U0001f600"),  # a valid pair becomes its character
        ("é\x00ü", "é%sü" % R),
    ],
)
def test_unstorable_characters_are_replaced(text: str, expected: str) -> None:
    assert storable_text(text) == expected
    expected.encode("utf-8")  # any driver can send it


@pytest.mark.parametrize("text", ["", "plain", "café ✓ \U0001f600", R])
def test_storable_text_comes_back_as_it_is(text: str) -> None:
    assert storable_text(text) is text


def test_json_values_are_replaced_in_strings_and_keys_at_any_depth() -> None:
    value = {"a\x00": [1, "x\ud800", {"deep": ("t\x00",)}], "ok": None}

    assert storable_json(value) == {
        "a%s" % R: [1, "x%s" % R, {"deep": ["t%s" % R]}],
        "ok": None,
    }


@pytest.mark.parametrize(
    "value", [None, 1, 2.5, True, "text", [], {}, {"a": [1, "b", {"c": None}]}]
)
def test_storable_json_returns_a_storable_value_itself(value: Any) -> None:
    assert storable_json(value) is value
