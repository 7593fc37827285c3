"""safe_eval(): evaluate a checked expression tree to plain data, never eval().

The evaluator dispatches on the node type through a table of small methods; each
value it produces is checked to be plain data and counted against the limits.
"""

from __future__ import annotations

import ast
import datetime
import functools
from collections.abc import Callable
from typing import Any

from .errors import UnsafeExpressionError
from .limits import (
    CONTAINER_TYPES,
    SCALAR_TYPES,
    SEQUENCE_TYPES,
    Budget,
    check_format_argument,
    check_power,
    check_product,
    check_shift,
    too_deep,
)
from .namespace import (
    DATETIME_ATTRIBUTES,
    JSON,
    NAMESPACE,
    is_date_family,
    is_datetime_family,
    json_dumps,
    json_loads,
)
from .validate import (
    BINARY_OPERATORS,
    COMPARISONS,
    UNARY_OPERATORS,
    checked_tree,
    source,
)


def safe_eval(expression: str, *, now: datetime.datetime | None = None) -> Any:
    """Evaluate a parameter expression; raise UnsafeExpressionError if refused.

    `now` is what datetime.now() returns (and date.today() its date); when None
    the real local clock is read once per call.
    """
    if now is not None and not isinstance(now, datetime.datetime):
        raise TypeError(f"now must be a datetime.datetime, not {type(now).__name__}")
    if now is not None and type(now) is not datetime.datetime:
        # A subclass (e.g. from a time-freezing library) would fail the exact
        # type checks that keep values plain; copy it into the real class.
        now = datetime.datetime.combine(now.date(), now.timetz())
    tree = checked_tree(expression)
    try:
        return _Evaluator(now).value(tree.body)
    except UnsafeExpressionError:
        raise
    except RecursionError as exc:
        raise too_deep() from exc
    except Exception as exc:  # allowed code failed: report it, never leak it raw
        raise UnsafeExpressionError(_describe_error(exc)) from exc


def _is_int(value: object) -> bool:
    return type(value) in (int, bool)


def _describe_error(exc: Exception) -> str:
    """A human message for an exception raised by allowed code."""
    if isinstance(exc, ZeroDivisionError):
        return "Division by zero"
    if isinstance(exc, KeyError):
        return f"Key not found: {exc.args[0]!r}" if exc.args else "Key not found"
    if isinstance(exc, IndexError):
        return f"Index out of range: {exc}"
    if isinstance(exc, OverflowError):
        return f"Value out of range: {exc}"
    if isinstance(exc, RecursionError):
        return "Value too deeply nested"
    if isinstance(exc, ValueError):
        return f"Invalid value: {exc}"
    if isinstance(exc, TypeError):
        return f"Type error: {exc}"
    if isinstance(exc, AttributeError):
        return f"Attribute error: {exc}"
    if isinstance(exc, MemoryError):
        return "Out of memory while evaluating the expression"
    return f"{type(exc).__name__}: {exc}"


class _Evaluator:
    """Walks a validated tree; one instance per safe_eval() call."""

    def __init__(self, now: datetime.datetime | None) -> None:
        self._now = now
        self._budget = Budget()
        self._handlers: dict[type, Callable[[Any], Any]] = {
            ast.Constant: self._constant,
            ast.Name: self._name,
            ast.List: self._list,
            ast.Tuple: self._tuple,
            ast.Set: self._set,
            ast.Dict: self._dict,
            ast.UnaryOp: self._unary,
            ast.BinOp: self._binary,
            ast.BoolOp: self._boolean,
            ast.Compare: self._compare,
            ast.IfExp: self._if_expression,
            ast.Call: self._call,
            ast.Attribute: self._attribute,
            ast.Subscript: self._subscript,
            ast.Slice: self._slice,
        }

    def value(self, node: ast.AST) -> Any:
        """Evaluate node to plain data: no functions, types or modules escape."""
        result = self._handlers[type(node)](node)
        self._budget.spend(self._check_value(result, node))
        return result

    def _check_value(self, value: object, node: ast.AST) -> int:
        """The size of value, refusing anything that is not plain data."""
        kind = type(value)
        if kind in CONTAINER_TYPES or kind in SCALAR_TYPES or kind in (int, str):
            return self._budget.size(value)
        text = source(node)
        if callable(value):
            raise UnsafeExpressionError(
                f"'{text}' can only be called, e.g. {text}(...), not used as a value"
            )
        if value is JSON:
            raise UnsafeExpressionError(
                "'json' can only be used as json.loads(...) or json.dumps(...)"
            )
        raise UnsafeExpressionError(
            f"Values of type {kind.__name__} are not supported (from '{text}')"
        )

    # Node handlers -----------------------------------------------------------

    def _constant(self, node: ast.Constant) -> Any:
        return node.value

    def _name(self, node: ast.Name) -> Any:
        return NAMESPACE[node.id]

    def _list(self, node: ast.List) -> list[Any]:
        return [self.value(item) for item in node.elts]

    def _tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return tuple(self.value(item) for item in node.elts)

    def _set(self, node: ast.Set) -> set[Any]:
        return {self.value(item) for item in node.elts}

    def _dict(self, node: ast.Dict) -> dict[Any, Any]:
        result = {}
        for key_node, value_node in zip(node.keys, node.values, strict=False):
            key = self.value(key_node)  # type: ignore[arg-type]
            result[key] = self.value(value_node)
        return result

    def _unary(self, node: ast.UnaryOp) -> Any:
        return UNARY_OPERATORS[type(node.op)](self.value(node.operand))

    def _binary(self, node: ast.BinOp) -> Any:
        left = self.value(node.left)
        right = self.value(node.right)
        kind = type(node.op)
        if kind is ast.Mult:
            return self._multiply(left, right)
        if (
            kind is ast.Add
            and type(left) is type(right)
            and isinstance(left, SEQUENCE_TYPES)
        ):
            unit = "characters" if isinstance(left, str) else "items"
            budget = self._budget
            budget.limit(len(left) + len(right), unit)
            size = budget.limit_total(budget.size(left) + budget.size(right))
            return budget.remember(left + right, size)
        if kind is ast.Pow and _is_int(left) and _is_int(right):
            check_power(left, right)
        if kind is ast.LShift and _is_int(left) and _is_int(right):
            check_shift(left, right)
        if kind is ast.Mod and isinstance(left, str):
            # "%0999999999d" % 1 would allocate a gigabyte.
            raise UnsafeExpressionError("String formatting with % is not allowed")
        return BINARY_OPERATORS[kind](left, right)

    def _multiply(self, left: Any, right: Any) -> Any:
        if _is_int(left) and _is_int(right):
            check_product(left, right)
            return left * right
        sequence, count = (left, right) if _is_int(right) else (right, left)
        if type(sequence) in SEQUENCE_TYPES and _is_int(count):
            if count <= 0:
                return sequence[:0]
            unit = "characters" if isinstance(sequence, str) else "items"
            budget = self._budget
            budget.limit(len(sequence) * count, unit)
            size = budget.limit_total(budget.size(sequence) * count)
            return budget.remember(sequence * count, size)
        return left * right

    def _boolean(self, node: ast.BoolOp) -> Any:
        # Short-circuit exactly like Python: return the deciding operand.
        is_and = isinstance(node.op, ast.And)
        result: Any = None
        for operand in node.values:
            result = self.value(operand)
            if bool(result) is not is_and:
                return result
        return result

    def _compare(self, node: ast.Compare) -> Any:
        left = self.value(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=False):
            right = self.value(comparator)
            if not COMPARISONS[type(op)](left, right):
                return False
            left = right
        return True

    def _if_expression(self, node: ast.IfExp) -> Any:
        if self.value(node.test):
            return self.value(node.body)
        return self.value(node.orelse)

    def _subscript(self, node: ast.Subscript) -> Any:
        container = self.value(node.value)
        if isinstance(node.slice, ast.Slice):
            bounds = (node.slice.lower, node.slice.upper, node.slice.step)
            key: Any = slice(
                *(None if part is None else self.value(part) for part in bounds)
            )
        else:
            key = self.value(node.slice)
        return container[key]

    # Attributes and calls ----------------------------------------------------

    def _object(self, node: ast.AST) -> Any:
        """The object an attribute is read from: a name may be a type or json."""
        if isinstance(node, ast.Name):
            return NAMESPACE[node.id]
        return self.value(node)

    def _attribute(self, node: ast.Attribute) -> Any:
        return self._get_attribute(self._object(node.value), node)

    def _slice(self, node: ast.Slice) -> Any:
        raise UnsafeExpressionError("Slices are only allowed directly inside [...]")

    def _get_attribute(self, obj: Any, node: ast.Attribute) -> Any:
        attr = node.attr
        if obj is JSON:
            if attr == "loads":
                return json_loads
            if attr == "dumps":
                return json_dumps
            raise UnsafeExpressionError(f"Attribute '{attr}' is not allowed on json")
        if not is_datetime_family(obj) or attr not in DATETIME_ATTRIBUTES:
            raise UnsafeExpressionError(
                f"Attribute '{attr}' is not allowed on '{source(node.value)}' "
                f"(a {type(obj).__name__})"
            )
        if attr in ("now", "today") and is_date_family(obj):
            # Instances reach the classmethods too (`date(2000, 1, 1).today()`),
            # so every route to the clock goes through the injected `now`.
            return functools.partial(self._clock, obj, attr)
        return getattr(obj, attr)

    def _clock(self, owner: Any, attr: str, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            raise UnsafeExpressionError(f"{attr}() takes no arguments here")
        if self._now is None:
            # Read the real clock once so every now() in one expression agrees.
            self._now = datetime.datetime.now()
        is_datetime = owner is datetime.datetime or type(owner) is datetime.datetime
        return self._now if is_datetime else self._now.date()

    def _call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Attribute):
            owner = self._object(node.func.value)
            function = self._get_attribute(owner, node.func)
        else:
            owner = None
            function = NAMESPACE[node.func.id]  # type: ignore[attr-defined]
        if not callable(function):
            raise UnsafeExpressionError(f"'{source(node.func)}' cannot be called")
        args = [self.value(arg) for arg in node.args]
        kwargs = {kw.arg: self.value(kw.value) for kw in node.keywords}
        if owner is not None and is_datetime_family(owner):
            for argument in [*args, *kwargs.values()]:
                check_format_argument(node.func.attr, argument)  # type: ignore[attr-defined]
        return function(*args, **kwargs)
