"""safe_eval: accepted expressions and the clock they read."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from scheduler_app.expressions import safe_eval

# A Friday, so weekday() and isoweekday() have recognisable values.
NOW = datetime.datetime(2024, 5, 17, 14, 30, 15)
TODAY = NOW.date()
DT = datetime.datetime
D = datetime.date
T = datetime.time
TD = datetime.timedelta

# Every example from the spec, with the value it must produce at NOW.
SPEC_EXAMPLES: list[tuple[str, Any]] = [
    ("0", 0),
    ("7", 7),
    ("-100", -100),
    ("3.14", 3.14),
    ("0.5", 0.5),
    ('"hello"', "hello"),
    ("'world'", "world"),
    ("[1, 2, 3]", [1, 2, 3]),
    ('["item1", "item2"]', ["item1", "item2"]),
    ('{"key": "value"}', {"key": "value"}),
    ('{"name": "test", "count": 10}', {"name": "test", "count": 10}),
    ("True", True),
    ("False", False),
    ("None", None),
    ("datetime.now()", NOW),
    ("datetime(2024, 1, 1)", DT(2024, 1, 1)),
    ("datetime.combine(date.today(), time.min)", DT(2024, 5, 17)),
    ("datetime.combine(date.today() + timedelta(days=1), time.min)", DT(2024, 5, 18)),
    ("date.today()", TODAY),
    ("date.today() + timedelta(days=7)", D(2024, 5, 24)),
    ("date.today() - timedelta(days=30)", D(2024, 4, 17)),
    ("time.min", T.min),
    ("time.max", T.max),
    ("time(8, 30, 0)", T(8, 30)),
    ("timedelta(days=7)", TD(days=7)),
    ("timedelta(hours=6)", TD(hours=6)),
    ("timedelta(minutes=30)", TD(minutes=30)),
    ("datetime.datetime.now()", NOW),
    ("datetime.timedelta(days=7)", TD(days=7)),
    ("datetime.datetime(2024, 1, 1)", DT(2024, 1, 1)),
    (
        "datetime.datetime.combine(datetime.date.today(), datetime.time.min)",
        DT(2024, 5, 17),
    ),
    ("datetime.date(2024, 2, 29)", D(2024, 2, 29)),
    ("datetime.time(23, 59)", T(23, 59)),
    ("1 + 2", 3),
    ("len([1, 2, 3])", 3),
    ("json.loads('{\"a\": 1}')", {"a": 1}),
    ('json.dumps({"a": 1})', '{"a": 1}'),
]

LANGUAGE_FEATURES: list[tuple[str, Any]] = [
    ("(1, 'a')", (1, "a")),
    ("()", ()),
    ("{1, 2, 2}", {1, 2}),
    ("+5", 5),
    ("-(3)", -3),
    ("not 0", True),
    ("~5", -6),
    ("7 - 2 * 3", 1),
    ("7 / 2", 3.5),
    ("7 // 2", 3),
    ("7 % 3", 1),
    ("2 ** 10", 1024),
    ("2 ** -1", 0.5),
    ("1 << 4", 16),
    ("256 >> 4", 16),
    ("5 & 3", 1),
    ("5 | 3", 7),
    ("5 ^ 3", 6),
    ("1 < 2 <= 2 != 3", True),
    ("1 < 3 < 2", False),
    ("'a' in 'abc'", True),
    ("3 not in [1, 2]", True),
    ("None is None", True),
    ("1 is not None", True),
    ("0 or 'fallback'", "fallback"),
    ("1 and 0", 0),
    ("'' or [] or None", None),
    ("'yes' if 2 > 1 else 'no'", "yes"),
    ("[1, 2, 3][0]", 1),
    ("[1, 2, 3][-1]", 3),
    ('{"a": 1}["a"]', 1),
    ("'hello'[1:3]", "el"),
    ("[1, 2, 3, 4][::2]", [1, 3]),
    ("[1, 2, 3][::-1]", [3, 2, 1]),
    ("[1, 2] + [3]", [1, 2, 3]),
    ("'ab' * 3", "ababab"),
    ("3 * 'ab'", "ababab"),
    ("[0] * 3", [0, 0, 0]),
    ("('a',) * 2", ("a", "a")),
    ("'ab' * -1", ""),
    ("(1 +\n 2)", 3),
    ("  7  ", 7),
    ("2 ** 1000 * 2 ** 1000", 2**2000),
    ("(" * 150 + "1" + ")" * 150, 1),
    ("str(42)", "42"),
    ("int('42')", 42),
    ("float('1.5')", 1.5),
    ("bool([])", False),
    ("abs(-3)", 3),
    ("min(3, 1, 2)", 1),
    ("max([3, 1, 2])", 3),
    ("round(2.567, 2)", 2.57),
    ("round(7.5)", 8),
    ("sum([1, 2, 3])", 6),
    ("sum([timedelta(hours=1), timedelta(hours=2)], timedelta())", TD(hours=3)),
    ("sorted([3, 1, 2], reverse=True)", [3, 2, 1]),
    ("list('ab')", ["a", "b"]),
    ("dict(a=1)", {"a": 1}),
    ("len('hello')", 5),
    ("json.loads('[1, 2]')", [1, 2]),
    ("json.dumps({'b': 1, 'a': 2}, sort_keys=True)", '{"a": 2, "b": 1}'),
]

DATETIME_FEATURES: list[tuple[str, Any]] = [
    ("datetime.today()", NOW),
    ("datetime.now().date()", TODAY),
    ("datetime.datetime.now().date()", TODAY),
    ("datetime.now().time()", T(14, 30, 15)),
    ("datetime.now().replace(hour=0, minute=0, second=0)", DT(2024, 5, 17)),
    ("datetime.now().isoformat()", "2024-05-17T14:30:15"),
    ("date.today().strftime('%Y-%m-%d')", "2024-05-17"),
    ("date.today().weekday()", 4),
    ("date.today().isoweekday()", 5),
    ("date.today().year", 2024),
    ("datetime.now().hour", 14),
    ("timedelta(hours=6).total_seconds()", 21600.0),
    ("timedelta(days=2, seconds=5).days", 2),
    ("timedelta(days=2, seconds=5).seconds", 5),
    ("datetime.fromisoformat('2024-01-02T03:04:05')", DT(2024, 1, 2, 3, 4, 5)),
    ("datetime.strptime('2024-01-02', '%Y-%m-%d')", DT(2024, 1, 2)),
    ("date.fromisoformat('2024-01-02')", D(2024, 1, 2)),
    ("datetime.max.year", 9999),
    ("timedelta.max.days", 999999999),
    ("str(date.today())", "2024-05-17"),
    ("date.today() > date(2024, 1, 1)", True),
    ("datetime.now() - datetime.now()", TD(0)),
    # The clock classmethods reached through an instance still use `now`.
    ("date(2000, 1, 1).today()", TODAY),
    ("datetime(2000, 1, 1).now()", NOW),
    # Only `datetime.<name>` on the bare module name is rewritten, so the
    # datetime class's own date() method stays reachable.
    ("datetime.datetime.date(datetime(2024, 2, 3, 4))", D(2024, 2, 3)),
]


@pytest.mark.parametrize(
    ("expression", "expected"), SPEC_EXAMPLES + LANGUAGE_FEATURES + DATETIME_FEATURES
)
def test_accepted_expression_evaluates_to_expected_value(
    expression: str, expected: Any
) -> None:
    result = safe_eval(expression, now=NOW)

    assert result == expected
    # Exact types: True is not 1, a datetime is not a date.
    assert type(result) is type(expected)


def test_datetime_names_return_the_real_classes_instances() -> None:
    assert type(safe_eval("datetime(2024, 1, 1)")) is datetime.datetime
    assert type(safe_eval("date(2024, 1, 1)")) is datetime.date
    assert safe_eval("time.min") is datetime.time.min


def test_now_defaults_to_the_real_local_clock() -> None:
    before = datetime.datetime.now()
    result = safe_eval("datetime.now()")
    after = datetime.datetime.now()

    assert type(result) is datetime.datetime
    assert result.tzinfo is None
    assert before <= result <= after


def test_today_defaults_to_the_real_local_date() -> None:
    before = datetime.date.today()
    result = safe_eval("date.today()")
    after = datetime.date.today()

    assert type(result) is datetime.date
    assert result in (before, after)


def test_real_clock_is_read_once_per_expression() -> None:
    assert safe_eval("datetime.now() - datetime.now()") == datetime.timedelta(0)


def test_each_call_uses_its_own_now() -> None:
    other = datetime.datetime(2030, 1, 2, 3, 4, 5)

    assert safe_eval("datetime.now()", now=NOW) == NOW
    assert safe_eval("datetime.now()", now=other) == other
    assert safe_eval("date.today()", now=other) == other.date()


def test_now_of_a_datetime_subclass_comes_back_as_a_plain_datetime() -> None:
    class FrozenDatetime(datetime.datetime):
        pass

    result = safe_eval("datetime.now()", now=FrozenDatetime(2024, 1, 2, 3, 4, 5))

    assert type(result) is datetime.datetime
    assert result == datetime.datetime(2024, 1, 2, 3, 4, 5)


def test_aware_now_is_kept() -> None:
    aware = NOW.replace(tzinfo=datetime.UTC)

    assert safe_eval("datetime.now()", now=aware) == aware


def test_now_that_is_not_a_datetime_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="now must be a datetime.datetime"):
        safe_eval("1", now=datetime.date(2024, 1, 1))  # type: ignore[arg-type]
