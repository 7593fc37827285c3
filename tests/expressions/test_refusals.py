"""safe_eval: refused expressions, runtime errors and malformed input."""

from __future__ import annotations

import datetime

import pytest

from scheduler_app.expressions import UnsafeExpressionError, safe_eval

NOW = datetime.datetime(2024, 5, 17, 14, 30, 15)


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
