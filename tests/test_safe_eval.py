"""safe_eval: accepted expressions, refused ones, runtime errors and resource limits."""

from __future__ import annotations

import ast
import datetime
from pathlib import Path
from typing import Any

import pytest

from scheduler_app import safe_eval as safe_eval_module
from scheduler_app.safe_eval import (
    ALLOWED_NAMES,
    MAX_EXPRESSION_LENGTH,
    MAX_FORMAT_LENGTH,
    MAX_INT_BITS,
    MAX_NESTING_DEPTH,
    MAX_POWER_EXPONENT,
    MAX_SEQUENCE_LENGTH,
    MAX_TOTAL_WORK,
    UnsafeExpressionError,
    allowed_help,
    safe_eval,
)

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


HOSTILE: list[tuple[str, str]] = [
    # Dunder and introspection access.
    ("().__class__.__bases__[0].__subclasses__()", r"Attribute '__\w+__' is not"),
    ("datetime.__class__", r"Attribute '__class__' is not allowed"),
    ("[].__class__", r"Attribute '__class__' is not allowed"),
    ('"".__class__.__mro__', r"Attribute '__mro__' is not allowed"),
    ("datetime.now().__class__", r"Attribute '__class__' is not allowed"),
    ("json.__dict__", r"Attribute '__dict__' is not allowed"),
    ("date.mro()", r"Attribute 'mro' is not allowed"),
    ("datetime.now.__self__", r"Attribute '__self__' is not allowed"),
    ("'abc'.upper()", r"Attribute 'upper' is not allowed"),
    ("json.load('x')", r"Attribute 'load' is not allowed"),
    ("len.now()", r"Attribute 'now' is not allowed on 'len'"),
    ("json.loads.now()", r"'json\.loads' can only be called"),
    ("datetime.utcnow()", r"Attribute 'utcnow' is not allowed; use datetime.now\(\)"),
    # Imports and dangerous builtins.
    ("__import__('os')", r"Name '__import__' is not allowed"),
    ("open('/etc/passwd')", r"Name 'open' is not allowed"),
    ("exec('1')", r"Name 'exec' is not allowed"),
    ("eval('1')", r"Name 'eval' is not allowed"),
    ("compile('1', '', 'eval')", r"Name 'compile' is not allowed"),
    ("getattr(datetime, 'now')", r"Name 'getattr' is not allowed"),
    ("globals()", r"Name 'globals' is not allowed"),
    ("vars()", r"Name 'vars' is not allowed"),
    ("type(1)", r"Name 'type' is not allowed"),
    ("range(3)", r"Name 'range' is not allowed"),
    ("os.system('ls')", r"Name 'os' is not allowed\. Allowed names: .*datetime"),
    ("now()", r"Name 'now' is not allowed"),
    # Syntax that would allow functions, loops or assignment.
    ("lambda: 1", r"Lambda functions are not allowed"),
    ("[x for x in range(3)]", r"Comprehensions are not allowed"),
    ("{x for x in 'ab'}", r"Comprehensions are not allowed"),
    ("{x: 1 for x in 'ab'}", r"Comprehensions are not allowed"),
    ("list(x for x in 'ab')", r"Generator expressions are not allowed"),
    ("(x := 1)", r"Assignment expressions \(:=\) are not allowed"),
    ("[*[1, 2]]", r"Unpacking with \* is not allowed"),
    ("len(*['ab'])", r"Unpacking with \* is not allowed"),
    ("{**{'a': 1}}", r"Unpacking with \*\* is not allowed"),
    ("dict(**{'a': 1})", r"Unpacking with \*\* is not allowed"),
    ("f'{1}'", r"f-strings are not allowed"),
    ("f'{1:>999999999}'", r"f-strings are not allowed"),
    ("(yield)", r"yield is not allowed"),
    ("await x", r"await is not allowed"),
    ("1 @ 2", r"Operator @ is not allowed"),
    ("b'x'", r"Constants of type bytes are not allowed"),
    ("1j", r"Constants of type complex are not allowed"),
    ("...", r"Constants of type ellipsis are not allowed"),
    ("'%s' % 1", r"String formatting with % is not allowed"),
    # Refused even where it would never run.
    ("1 if True else __import__('os')", r"Name '__import__' is not allowed"),
    ("False and open('x')", r"Name 'open' is not allowed"),
    # Callables, types and modules never become values.
    ("datetime.now", r"'datetime\.now' can only be called"),
    ("datetime.datetime", r"'datetime' can only be called"),
    ("[len]", r"'len' can only be called"),
    ("sorted(['a'], key=len)", r"'len' can only be called"),
    ("json", r"'json' can only be used as json\.loads"),
    ("time.min()", r"'time\.min' cannot be called"),
    ("json(1)", r"'json' cannot be called"),
    ("datetime.now()()", r"Only named functions and methods can be called"),
    ("[len][0]('a')", r"Only named functions and methods can be called"),
    ("datetime.now(1)", r"now\(\) takes no arguments here"),
    ("json.dumps([1], indent=2)", r"json\.dumps\(\) accepts only .*sort_keys"),
    ("json.loads('1', strict=False)", r"json\.loads\(\) accepts no keyword"),
    ("[1, 2][0:1, 0]", r"Slices are only allowed directly inside"),
    ("(-8) ** 0.5", r"Values of type complex are not supported"),
    # Statements.
    ("import os", r"Not a single expression: found an import"),
    ("from os import path", r"Not a single expression: found an import"),
    ("x = 1", r"Not a single expression: found an assignment"),
    ("1; 2", r"Not a single expression: found 2 statements"),
    ("del x", r"Not a single expression: found a statement \(delete\)"),
]


@pytest.mark.parametrize(("expression", "message"), HOSTILE)
def test_hostile_expression_is_refused(expression: str, message: str) -> None:
    with pytest.raises(UnsafeExpressionError, match=message):
        safe_eval(expression, now=NOW)


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


RUNTIME_ERRORS: list[tuple[str, str]] = [
    ("1/0", r"Division by zero"),
    ("1 % 0", r"Division by zero"),
    ("datetime(2024, 13, 1)", r"Invalid value: month must be in 1\.\.12"),
    ('{"a": 1}["b"]', r"Key not found: 'b'"),
    ('int("abc")', r"Invalid value: invalid literal for int\(\)"),
    ("[1][5]", r"Index out of range: list index out of range"),
    ("1 + 'a'", r"Type error: unsupported operand"),
    ("len(5)", r"Type error: object of type 'int' has no len\(\)"),
    ("date.today() < 5", r"Type error: '<' not supported"),
    ("timedelta(days=1).year", r"has no attribute 'year'"),
    ("timedelta(days=10**10)", r"Value out of range"),
    ("date.today() + timedelta(days=999999999)", r"Value out of range"),
    ("json.loads('{bad')", r"Invalid JSON: Expecting property name"),
    ("json.loads(1)", r"json\.loads\(\) expects a string, got int"),
    ("json.dumps(date.today())", r"not JSON serializable"),
    ("datetime.strptime('x', '%Y')", r"does not match format"),
    ("sum(['a'])", r"sum\(\) only adds numbers or timedeltas, not str"),
]


@pytest.mark.parametrize(("expression", "message"), RUNTIME_ERRORS)
def test_runtime_error_in_allowed_code_becomes_a_clear_refusal(
    expression: str, message: str
) -> None:
    with pytest.raises(UnsafeExpressionError, match=message):
        safe_eval(expression, now=NOW)


def test_runtime_error_keeps_the_original_exception_as_cause() -> None:
    with pytest.raises(UnsafeExpressionError) as caught:
        safe_eval("1/0")

    assert isinstance(caught.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize("value", [None, 5, b"7", ["7"]])
def test_non_string_input_is_refused(value: object) -> None:
    with pytest.raises(UnsafeExpressionError, match="Expected an expression string"):
        safe_eval(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_expression_is_refused(text: str) -> None:
    with pytest.raises(UnsafeExpressionError, match="Empty expression"):
        safe_eval(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2", r"Syntax error at column 3: "),
        ("   1 2", r"Syntax error at column 6: "),
        ("(1,\n 2 3)", r"Syntax error at line 2, column 2: "),
        ("\n1 2", r"Syntax error at line 2, column 3: "),
        ("1 +", r"Syntax error at the end of the expression"),
        ("a\x00b", r"Syntax error"),
    ],
)
def test_syntax_error_names_its_position(text: str, message: str) -> None:
    with pytest.raises(UnsafeExpressionError, match=message):
        safe_eval(text)


def test_error_is_a_value_error() -> None:
    assert issubclass(UnsafeExpressionError, ValueError)


def test_allowed_names_cover_the_documented_names() -> None:
    documented = {"datetime", "date", "time", "timedelta", "json", "len"}

    assert documented | {"True", "False", "None"} <= ALLOWED_NAMES
    assert isinstance(ALLOWED_NAMES, frozenset)
    assert not {"eval", "exec", "open", "getattr", "type", "__import__"} & ALLOWED_NAMES


def test_allowed_functions_and_types_cannot_be_used_as_values() -> None:
    for name in ALLOWED_NAMES - {"True", "False", "None", "json"}:
        with pytest.raises(UnsafeExpressionError, match="can only be called"):
            safe_eval(name)


def test_limits_have_the_documented_values() -> None:
    assert MAX_EXPRESSION_LENGTH == 10_000
    assert MAX_NESTING_DEPTH == 50
    assert MAX_POWER_EXPONENT == 1_000
    assert MAX_INT_BITS == 4_096
    assert MAX_SEQUENCE_LENGTH == 100_000
    assert MAX_FORMAT_LENGTH == 1_000
    assert MAX_TOTAL_WORK == 1_000_000


def test_allowed_help_is_one_line_naming_the_helpers() -> None:
    text = allowed_help()

    assert "\n" not in text
    for word in ("datetime", "date", "time", "timedelta", "json", "len"):
        assert word in text


def _module_tree() -> ast.Module:
    return ast.parse(Path(safe_eval_module.__file__).read_text(encoding="utf-8"))


def test_module_never_calls_eval_exec_or_compile() -> None:
    called = {
        node.func.id
        for node in ast.walk(_module_tree())
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }

    assert not called & {"eval", "exec", "compile", "__import__"}


def test_module_is_pure_python_without_django() -> None:
    imported: set[str] = set()
    for node in ast.walk(_module_tree()):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")

    assert not {name for name in imported if name.split(".")[0] == "django"}
