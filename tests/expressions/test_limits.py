"""safe_eval: resource limits refuse bombs before computing them, and allow up to them."""

from __future__ import annotations

import datetime

import pytest

from scheduler_app.expressions import (
    MAX_EXPRESSION_LENGTH,
    MAX_FORMAT_LENGTH,
    MAX_INT_BITS,
    MAX_NESTING_DEPTH,
    MAX_POWER_EXPONENT,
    MAX_SEQUENCE_LENGTH,
    MAX_TOTAL_WORK,
    UnsafeExpressionError,
    safe_eval,
)

NOW = datetime.datetime(2024, 5, 17, 14, 30, 15)


BOMBS: list[tuple[str, str]] = [
    ("9**9**9", r"Exponent too large \(at most 1000\)"),
    ("2**100000", r"Exponent too large \(at most 1000\)"),
    ("10**10**10", r"Exponent too large \(at most 1000\)"),
    ("(-2) ** -100000", r"Exponent too large \(at most 1000\)"),
    ("16 ** 1000", r"Integer result too large: at most 4096 bits"),
    (
        "2**1000 * 2**1000 * 2**1000 * 2**1000 * 2**1000",
        r"Integer result too large: at most 4096 bits",
    ),
    ("1 << 10**9", r"Integer result too large: at most 4096 bits"),
    ("1 << 4096", r"Integer result too large: at most 4096 bits"),
    ("0x" + "f" * 2000, r"Integer too large: at most 4096 bits"),
    ("int('9' * 4000)", r"Integer too large: at most 4096 bits"),
    ("'a' * 10**9", r"Result too long: at most 100000 characters"),
    ("10**9 * 'a'", r"Result too long: at most 100000 characters"),
    ("'a' * 10**6 * 10**6", r"Result too long: at most 100000 characters"),
    ("'a' * 100001", r"Result too long: at most 100000 characters"),
    ("'a' * 99999 + 'bb'", r"Result too long: at most 100000 characters"),
    ("[0] * 10**9", r"Result too long: at most 100000 items"),
    ("[1] * 10**7", r"Result too long: at most 100000 items"),
    ("(1,) * 10**9", r"Result too long: at most 100000 items"),
    ("[0] * 100001", r"Result too long: at most 100000 items"),
    ("[0] * 99999 + [0, 0]", r"Result too long: at most 100000 items"),
    # Repeating a container of containers: few objects, huge when printed.
    ("[[0] * 1000] * 1000", r"Result too large: at most 100000 items"),
    ("[[0] * 100000] * 100000 == []", r"Result too large: at most 100000 items"),
    ("[2**1000 * 2**1000] * 200", r"Result too large: at most 100000 items"),
    ("str([[0] * 1000] * 99)", r"Result too long: at most 100000 characters"),
    ("json.loads('[' * 1000 + ']' * 1000)", r"JSON too deeply nested"),
    ("json.loads('[' + '0,' * 10**6 + '0]')", r"Result too long"),
    ("json.loads('\"' + 'a' * 10**6 + '\"')", r"Result too long"),
    ("round(1, -10**18)", r"round\(\) ndigits must be an integer between"),
    ("sum([[0]] * 50000, [])", r"sum\(\) only adds numbers or timedeltas"),
    ("datetime.now().strftime('%Y' * 1001)", r"String argument too long"),
    ("'%0999999999d' % 1", r"String formatting with % is not allowed"),
    ("(" * 500 + "1" + ")" * 500, r"Expression too deeply nested \(at most 50"),
    ("[" * 200 + "]" * 200, r"Expression too deeply nested \(at most 50"),
    ("[" * 60 + "]" * 60, r"Expression too deeply nested \(at most 50"),
    # Each operation is small enough; together they would take seconds.
    (
        "[" + ", ".join(["len(sorted([0] * 99999))"] * 12) + "]",
        r"Expression does too much work: .* at most 1000000",
    ),
    ("-" * 5000 + "1", r"Expression too deeply nested"),
    # Beyond the parser's own stack (about 6,000 levels), which it reports as
    # MemoryError or RecursionError, still within MAX_EXPRESSION_LENGTH.
    ("-" * 6000 + "1", r"Expression too deeply nested"),
    ("~" * 9999 + "1", r"Expression too deeply nested"),
    ("+" * 7000 + "1", r"Expression too deeply nested"),
    ("not " * 2499 + "1", r"Expression too deeply nested"),
    ("[" * 6000, r"Expression too deeply nested"),
    ("1" + "**1" * 3000, r"Expression too deeply nested"),
    ("1" + " + 1" * 2000, r"Expression too deeply nested"),
    ("1" * 10_001, r"Expression too long: at most 10000 characters"),
    ("[" + "0, " * 100_001 + "]", r"Expression too long: at most 10000 characters"),
]


@pytest.mark.parametrize(("expression", "message"), BOMBS)
def test_resource_bomb_is_refused_before_it_is_computed(
    expression: str, message: str
) -> None:
    # Without its check each of these would hang or eat gigabytes (and trip
    # the pytest-timeout); no cause means a limit refused it, not a failure.
    with pytest.raises(UnsafeExpressionError, match=message) as caught:
        safe_eval(expression, now=NOW)

    assert caught.value.__context__ is None or isinstance(
        caught.value.__context__, SyntaxError | RecursionError | MemoryError
    )


def test_values_up_to_the_limits_are_accepted() -> None:
    assert len(safe_eval("'a' * 100000")) == MAX_SEQUENCE_LENGTH
    assert len(safe_eval("[0] * 100000")) == MAX_SEQUENCE_LENGTH
    assert safe_eval("2 ** 1000") == 2**MAX_POWER_EXPONENT
    assert safe_eval("1 << 4095") == 1 << (MAX_INT_BITS - 1)
    assert safe_eval("[" * 40 + "]" * 40) is not None
    assert safe_eval("7" + " " * (MAX_EXPRESSION_LENGTH - 1)) == 7


def test_limits_have_the_documented_values() -> None:
    assert MAX_EXPRESSION_LENGTH == 10_000
    assert MAX_NESTING_DEPTH == 50
    assert MAX_POWER_EXPONENT == 1_000
    assert MAX_INT_BITS == 4_096
    assert MAX_SEQUENCE_LENGTH == 100_000
    assert MAX_FORMAT_LENGTH == 1_000
    assert MAX_TOTAL_WORK == 1_000_000
