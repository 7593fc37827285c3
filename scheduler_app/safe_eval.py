"""Evaluate task parameter expressions by walking a whitelisted AST, never eval()."""

from __future__ import annotations

import ast
import datetime
import functools
import itertools
import json
import operator
from collections.abc import Callable
from typing import Any

# Limits. Source length, nesting, **, *, << and sequence repetition or
# concatenation are checked before computing, so a bomb is refused without being
# built. Call results (str(), json.dumps(), ...) are checked afterwards: their
# inputs are already bounded, so they can only be a bounded multiple too big.
MAX_EXPRESSION_LENGTH = 10_000  # characters of source text
MAX_NESTING_DEPTH = 50  # AST levels; also the nesting limit for json.loads input
MAX_POWER_EXPONENT = 1_000  # abs(exponent) for integer ** and round() ndigits
MAX_INT_BITS = 4_096  # bit length of any integer value or result
# Total size of a value: items of containers (nested ones included) plus the
# characters of strings and, for integers above 64 bits, roughly their digits.
MAX_SEQUENCE_LENGTH = 100_000
MAX_FORMAT_LENGTH = 1_000  # characters of a string passed to a datetime method
# Sum of the sizes of every intermediate value. Each value feeds one operation
# and an operation costs about the size of its inputs and output, so this bounds
# the total time of an expression (many sorted() of big lists, for example).
MAX_TOTAL_WORK = 1_000_000


class UnsafeExpressionError(ValueError):
    """Raised for any refused or failing expression; str(e) is a human message."""


class _JsonNamespace:
    """Stands in for the json module: only loads() and dumps() are reachable."""

    def __repr__(self) -> str:
        return "json"


_JSON = _JsonNamespace()
_DATETIME_TYPES: tuple[type, ...] = (
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
)
_CONTAINER_TYPES: tuple[type, ...] = (list, tuple, set, frozenset, dict)
_SCALAR_TYPES: tuple[type, ...] = (bool, float, type(None), *_DATETIME_TYPES)
_SEQUENCE_TYPES: tuple[type, ...] = (str, list, tuple)

_DATETIME_ATTRIBUTES = frozenset(
    {
        "now",
        "today",
        "combine",
        "fromisoformat",
        "strptime",
        "min",
        "max",
        "date",
        "time",
        "replace",
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "microsecond",
        "weekday",
        "isoweekday",
        "isoformat",
        "strftime",
        "timestamp",
        "total_seconds",
        "days",
        "seconds",
        "microseconds",
    }
)
_JSON_ATTRIBUTES = frozenset({"loads", "dumps"})
ALLOWED_ATTRIBUTES: frozenset[str] = _DATETIME_ATTRIBUTES | _JSON_ATTRIBUTES

# `datetime.datetime.now()` is how the seed's examples were written (module
# style); those four module attributes are rewritten to the bare names.
_MODULE_STYLE_NAMES = frozenset({"datetime", "date", "time", "timedelta"})


def _json_depth_ok(text: str) -> bool:
    """Whether brackets outside JSON strings nest at most MAX_NESTING_DEPTH deep."""
    depth = 0
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                return False
        elif char in "]}":
            depth -= 1
    return True


def _json_loads(text: object, **options: object) -> Any:
    """json.loads() limited to a str argument of bounded nesting."""
    if options:
        # object_hook, parse_int, cls... would take callables or run code.
        raise UnsafeExpressionError("json.loads() accepts no keyword arguments")
    if not isinstance(text, str):
        raise UnsafeExpressionError(
            f"json.loads() expects a string, got {type(text).__name__}"
        )
    # The C decoder recurses per level; refuse deep input before it runs.
    if not _json_depth_ok(text):
        raise UnsafeExpressionError(
            f"JSON too deeply nested (at most {MAX_NESTING_DEPTH} levels)"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnsafeExpressionError(f"Invalid JSON: {exc}") from exc


def _json_dumps(value: object, **options: object) -> str:
    """json.dumps() without indent/default/cls, which could blow up or run code."""
    if set(options) - {"sort_keys"}:
        raise UnsafeExpressionError(
            "json.dumps() accepts only the keyword argument sort_keys"
        )
    return json.dumps(value, sort_keys=bool(options.get("sort_keys", False)))


def _round(number: Any, ndigits: int | None = None) -> Any:
    """round() with bounded ndigits: int.__round__ computes 10 ** -ndigits."""
    if ndigits is None:
        return round(number)
    if type(ndigits) is not int or abs(ndigits) > MAX_POWER_EXPONENT:
        raise UnsafeExpressionError(
            f"round() ndigits must be an integer between -{MAX_POWER_EXPONENT} "
            f"and {MAX_POWER_EXPONENT}"
        )
    return round(number, ndigits)


def _sum(items: Any, start: Any = 0) -> Any:
    """sum() of numbers or timedeltas only: summing lists or strings is quadratic."""
    values = list(items)
    for value in [start, *values]:
        if not isinstance(value, (int, float, datetime.timedelta)):
            raise UnsafeExpressionError(
                f"sum() only adds numbers or timedeltas, not {type(value).__name__}"
            )
    return sum(values, start)


_BUILTINS: dict[str, Any] = {
    "abs": abs,
    "bool": bool,
    "dict": dict,
    "float": float,
    "int": int,
    "len": len,
    "list": list,
    "max": max,
    "min": min,
    "round": _round,
    "sorted": sorted,
    "str": str,
    "sum": _sum,
}
_NAMESPACE: dict[str, Any] = {
    "datetime": datetime.datetime,
    "date": datetime.date,
    "time": datetime.time,
    "timedelta": datetime.timedelta,
    "json": _JSON,
    **_BUILTINS,
}
ALLOWED_NAMES: frozenset[str] = frozenset(_NAMESPACE) | {"True", "False", "None"}
_NAMES_HINT = ", ".join(sorted(_NAMESPACE))


def _is_in(left: Any, right: Any) -> bool:
    return left in right


def _is_not_in(left: Any, right: Any) -> bool:
    return left not in right


_BINARY_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.BitAnd: operator.and_,
}
_UNARY_OPERATORS: dict[type, Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
_COMPARISONS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: _is_in,
    ast.NotIn: _is_not_in,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_STRUCTURAL_NODES: tuple[type, ...] = (
    ast.Expression,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Dict,
    ast.UnaryOp,
    ast.BinOp,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.keyword,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
)
_ALLOWED_NODES: tuple[type, ...] = (
    *_STRUCTURAL_NODES,
    *_BINARY_OPERATORS,
    *_UNARY_OPERATORS,
    *_COMPARISONS,
)
_REFUSED_NODE_MESSAGES: dict[type, str] = {
    ast.Lambda: "Lambda functions are not allowed",
    ast.ListComp: "Comprehensions are not allowed (they would allow loops)",
    ast.SetComp: "Comprehensions are not allowed (they would allow loops)",
    ast.DictComp: "Comprehensions are not allowed (they would allow loops)",
    ast.GeneratorExp: "Generator expressions are not allowed (they would allow loops)",
    ast.NamedExpr: "Assignment expressions (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed; use str() and + instead",
    ast.FormattedValue: "f-strings are not allowed; use str() and + instead",
    ast.Starred: "Unpacking with * is not allowed",
    ast.MatMult: "Operator @ is not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}
_CONSTANT_TYPES: tuple[type, ...] = (bool, int, float, str, type(None))
_STATEMENT_NAMES: dict[type, str] = {
    ast.Import: "an import",
    ast.ImportFrom: "an import",
    ast.Assign: "an assignment",
    ast.AugAssign: "an assignment",
    ast.AnnAssign: "an assignment",
}


def allowed_help() -> str:
    """One line describing what expressions may use, for admin help text."""
    return (
        "Python literals (numbers, strings, lists, tuples, sets, dicts, True, False, "
        "None), arithmetic, comparisons, and/or/not, x if c else y, indexing; "
        "datetime, date, time, timedelta (e.g. date.today() - timedelta(days=30)), "
        f"json.loads, json.dumps and {', '.join(sorted(_BUILTINS))}."
    )


def _source(node: ast.AST) -> str:
    """A short source snippet for messages."""
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _too_deep() -> UnsafeExpressionError:
    return UnsafeExpressionError(
        f"Expression too deeply nested (at most {MAX_NESTING_DEPTH} levels)"
    )


def _parse(text: str, prefix: str) -> ast.Expression:
    """Parse one expression, turning parser failures into clear messages.

    `prefix` is the leading whitespace stripped off, to report true positions.
    """
    try:
        return ast.parse(text, mode="eval")
    except (RecursionError, MemoryError) as exc:
        # CPython's parser reports a nesting beyond its stack (about 6,000 levels,
        # e.g. "-" * 6000 + "1", within MAX_EXPRESSION_LENGTH) as MemoryError, or
        # RecursionError in other versions: either way the input is too deep.
        raise _too_deep() from exc
    except SyntaxError as exc:
        if "too many nested" in (exc.msg or ""):
            raise _too_deep() from exc
        statement = _statement_kind(text)
        if statement:
            raise UnsafeExpressionError(
                f"Not a single expression: found {statement}. Write one expression "
                "such as date.today() - timedelta(days=1)"
            ) from exc
        raise UnsafeExpressionError(_syntax_message(exc, prefix)) from exc
    except ValueError as exc:  # e.g. null bytes on some Python versions
        raise UnsafeExpressionError(f"Syntax error: {exc}") from exc


def _syntax_message(exc: SyntaxError, prefix: str) -> str:
    if exc.offset is None:
        return f"Syntax error: {exc.msg}"
    if exc.offset == 0:  # the parser ran out of input, e.g. "1 +"
        return f"Syntax error at the end of the expression: {exc.msg}"
    line = (exc.lineno or 1) + prefix.count("\n")
    column = exc.offset
    if (exc.lineno or 1) == 1:
        column += len(prefix) - prefix.rfind("\n") - 1
    if line > 1:
        return f"Syntax error at line {line}, column {column}: {exc.msg}"
    return f"Syntax error at column {column}: {exc.msg}"


def _statement_kind(text: str) -> str | None:
    """Describe the statement(s) in text when it parses as statements, else None."""
    try:
        module = ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(module.body) > 1:
        return f"{len(module.body)} statements"
    if len(module.body) == 1 and not isinstance(module.body[0], ast.Expr):
        kind = type(module.body[0])
        return _STATEMENT_NAMES.get(kind, f"a statement ({kind.__name__.lower()})")
    return None


def _check_depth(tree: ast.AST) -> None:
    """Refuse deep trees iteratively, before any recursive walk can overflow."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


class _ModuleStyleRewriter(ast.NodeTransformer):
    """Rewrite `datetime.datetime` (and .date, .time, .timedelta) to the bare name."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        # Checked on the original node, before visiting children, so that
        # `datetime.datetime.date` stays the method and does not become `date`.
        if (
            isinstance(node.value, ast.Name)
            and node.value.id == "datetime"
            and node.attr in _MODULE_STYLE_NAMES
        ):
            return ast.copy_location(ast.Name(id=node.attr, ctx=ast.Load()), node)
        self.generic_visit(node)
        return node


def _validate(tree: ast.Expression) -> None:
    """Refuse forbidden syntax anywhere, even in branches that would not run."""
    nodes = list(ast.walk(tree))
    # Syntax first, then names, then attributes: `os.system()` is about `os`.
    for node in nodes:
        _validate_syntax(node)
    for node in nodes:
        if isinstance(node, ast.Name) and node.id not in _NAMESPACE:
            raise UnsafeExpressionError(
                f"Name '{node.id}' is not allowed. Allowed names: {_NAMES_HINT}"
            )
    for node in nodes:
        if isinstance(node, ast.Attribute):
            _validate_attribute_name(node.attr)


def _validate_syntax(node: ast.AST) -> None:
    kind = type(node)
    if kind in _REFUSED_NODE_MESSAGES:
        raise UnsafeExpressionError(_REFUSED_NODE_MESSAGES[kind])
    if not isinstance(node, _ALLOWED_NODES):
        raise UnsafeExpressionError(f"{kind.__name__} is not allowed")
    if isinstance(node, ast.Constant) and type(node.value) not in _CONSTANT_TYPES:
        raise UnsafeExpressionError(
            f"Constants of type {type(node.value).__name__} are not allowed"
        )
    if isinstance(node, ast.Dict) and None in node.keys:
        raise UnsafeExpressionError("Unpacking with ** is not allowed")
    if isinstance(node, ast.keyword) and node.arg is None:
        raise UnsafeExpressionError("Unpacking with ** is not allowed")
    if isinstance(node, ast.Call) and not isinstance(
        node.func, (ast.Name, ast.Attribute)
    ):
        raise UnsafeExpressionError(
            "Only named functions and methods can be called, not "
            f"'{_source(node.func)}'"
        )


def _validate_attribute_name(attr: str) -> None:
    if attr.startswith("_"):
        raise UnsafeExpressionError(
            f"Attribute '{attr}' is not allowed (names starting with _ never are)"
        )
    if attr == "utcnow":
        # Naive UTC would disagree with the run's `now`; one clock is enough.
        raise UnsafeExpressionError(
            "Attribute 'utcnow' is not allowed; use datetime.now()"
        )
    if attr not in ALLOWED_ATTRIBUTES:
        raise UnsafeExpressionError(
            f"Attribute '{attr}' is not allowed. Allowed attributes: "
            f"{', '.join(sorted(ALLOWED_ATTRIBUTES))}"
        )


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
        self._work = 0
        # id -> (container, size): the container is kept so its id stays unique.
        self._sizes: dict[int, tuple[object, int]] = {}
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

    # Values and their size -------------------------------------------------

    def value(self, node: ast.AST) -> Any:
        """Evaluate node to plain data: no functions, types or modules escape."""
        result = self._handlers[type(node)](node)
        self._work += self._check_value(result, node)
        if self._work > MAX_TOTAL_WORK:
            raise UnsafeExpressionError(
                f"Expression does too much work: its intermediate values may total "
                f"at most {MAX_TOTAL_WORK} items and characters"
            )
        return result

    def _check_value(self, value: object, node: ast.AST) -> int:
        """The size of value, refusing anything that is not plain data."""
        kind = type(value)
        if kind in _CONTAINER_TYPES or kind in _SCALAR_TYPES or kind in (int, str):
            return self._size(value)
        source = _source(node)
        if callable(value):
            raise UnsafeExpressionError(
                f"'{source}' can only be called, e.g. {source}(...), "
                "not used as a value"
            )
        if value is _JSON:
            raise UnsafeExpressionError(
                "'json' can only be used as json.loads(...) or json.dumps(...)"
            )
        raise UnsafeExpressionError(
            f"Values of type {kind.__name__} are not supported (from '{source}')"
        )

    def _size(self, value: Any) -> int:
        """Size of value (see MAX_SEQUENCE_LENGTH); raises when it is too big."""
        kind = type(value)
        if kind is str:
            return self._limit(len(value), "characters")
        if kind is int:
            bits = value.bit_length()
            if bits > MAX_INT_BITS:
                raise UnsafeExpressionError(
                    f"Integer too large: at most {MAX_INT_BITS} bits"
                )
            # Large ints print as many digits, so they count toward the size.
            return 0 if bits <= 64 else bits * 3 // 10
        if kind in _SCALAR_TYPES:
            return 0
        if kind not in _CONTAINER_TYPES:
            raise UnsafeExpressionError(
                f"Values of type {kind.__name__} are not supported"
            )
        cached = self._sizes.get(id(value))
        if cached is not None and cached[0] is value:
            return cached[1]
        total = self._limit(len(value), "items")
        children = value
        if kind is dict:
            children = itertools.chain.from_iterable(value.items())
        for child in children:
            total = self._limit_total(total + self._size(child))
        self._sizes[id(value)] = (value, total)
        return total

    @staticmethod
    def _limit(length: int, unit: str) -> int:
        if length > MAX_SEQUENCE_LENGTH:
            raise UnsafeExpressionError(
                f"Result too long: at most {MAX_SEQUENCE_LENGTH} {unit}"
            )
        return length

    @staticmethod
    def _limit_total(total: int) -> int:
        if total > MAX_SEQUENCE_LENGTH:
            raise UnsafeExpressionError(
                f"Result too large: at most {MAX_SEQUENCE_LENGTH} items and "
                "characters in total, nested values included"
            )
        return total

    def _remember(self, value: object, size: int) -> object:
        """Record a size computed before the operation, to avoid a re-walk."""
        if type(value) in _CONTAINER_TYPES:
            self._sizes[id(value)] = (value, size)
        return value

    # Node handlers -----------------------------------------------------------

    def _constant(self, node: ast.Constant) -> Any:
        return node.value

    def _name(self, node: ast.Name) -> Any:
        return _NAMESPACE[node.id]

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
        return _UNARY_OPERATORS[type(node.op)](self.value(node.operand))

    def _binary(self, node: ast.BinOp) -> Any:
        left = self.value(node.left)
        right = self.value(node.right)
        kind = type(node.op)
        if kind is ast.Mult:
            return self._multiply(left, right)
        if (
            kind is ast.Add
            and type(left) is type(right)
            and isinstance(left, _SEQUENCE_TYPES)
        ):
            unit = "characters" if isinstance(left, str) else "items"
            self._limit(len(left) + len(right), unit)
            size = self._limit_total(self._size(left) + self._size(right))
            return self._remember(left + right, size)
        if kind is ast.Pow and _is_int(left) and _is_int(right):
            self._check_power(left, right)
        if (
            kind is ast.LShift
            and _is_int(left)
            and _is_int(right)
            and (right > MAX_INT_BITS or left.bit_length() + right > MAX_INT_BITS)
        ):
            raise UnsafeExpressionError(
                f"Integer result too large: at most {MAX_INT_BITS} bits"
            )
        if kind is ast.Mod and isinstance(left, str):
            # "%0999999999d" % 1 would allocate a gigabyte.
            raise UnsafeExpressionError("String formatting with % is not allowed")
        return _BINARY_OPERATORS[kind](left, right)

    def _multiply(self, left: Any, right: Any) -> Any:
        if _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise UnsafeExpressionError(
                    f"Integer result too large: at most {MAX_INT_BITS} bits"
                )
            return left * right
        sequence, count = (left, right) if _is_int(right) else (right, left)
        if type(sequence) in _SEQUENCE_TYPES and _is_int(count):
            if count <= 0:
                return sequence[:0]
            unit = "characters" if isinstance(sequence, str) else "items"
            if len(sequence) * count > MAX_SEQUENCE_LENGTH:
                raise UnsafeExpressionError(
                    f"Result too long: at most {MAX_SEQUENCE_LENGTH} {unit}"
                )
            size = self._limit_total(self._size(sequence) * count)
            return self._remember(sequence * count, size)
        return left * right

    @staticmethod
    def _check_power(base: int, exponent: int) -> None:
        if abs(exponent) > MAX_POWER_EXPONENT:
            raise UnsafeExpressionError(
                f"Exponent too large (at most {MAX_POWER_EXPONENT})"
            )
        # |base| < 2**k, so |base ** e| < 2**(k*e): refuse before computing.
        if (
            exponent > 0
            and abs(base) > 1
            and base.bit_length() * exponent > MAX_INT_BITS
        ):
            raise UnsafeExpressionError(
                f"Integer result too large: at most {MAX_INT_BITS} bits"
            )

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
            if not _COMPARISONS[type(op)](left, right):
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
            return _NAMESPACE[node.id]
        return self.value(node)

    def _attribute(self, node: ast.Attribute) -> Any:
        return self._get_attribute(self._object(node.value), node)

    def _slice(self, node: ast.Slice) -> Any:
        raise UnsafeExpressionError("Slices are only allowed directly inside [...]")

    def _get_attribute(self, obj: Any, node: ast.Attribute) -> Any:
        attr = node.attr
        if obj is _JSON:
            if attr == "loads":
                return _json_loads
            if attr == "dumps":
                return _json_dumps
            raise UnsafeExpressionError(f"Attribute '{attr}' is not allowed on json")
        if not _is_datetime_family(obj) or attr not in _DATETIME_ATTRIBUTES:
            raise UnsafeExpressionError(
                f"Attribute '{attr}' is not allowed on '{_source(node.value)}' "
                f"(a {type(obj).__name__})"
            )
        if attr in ("now", "today") and _is_date_family(obj):
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
            function = _NAMESPACE[node.func.id]  # type: ignore[attr-defined]
        if not callable(function):
            raise UnsafeExpressionError(f"'{_source(node.func)}' cannot be called")
        args = [self.value(arg) for arg in node.args]
        kwargs = {kw.arg: self.value(kw.value) for kw in node.keywords}
        if owner is not None and _is_datetime_family(owner):
            # strftime() may size its buffer at 256 x the format length.
            for argument in [*args, *kwargs.values()]:
                if isinstance(argument, str) and len(argument) > MAX_FORMAT_LENGTH:
                    raise UnsafeExpressionError(
                        f"String argument too long for {node.func.attr}(): "
                        f"at most {MAX_FORMAT_LENGTH} characters"
                    )
        return function(*args, **kwargs)


def _is_datetime_family(obj: object) -> bool:
    """Whether obj is one of the datetime classes or an instance of one."""
    # Identity, not ==: data values must never be compared against classes.
    return any(obj is kind or type(obj) is kind for kind in _DATETIME_TYPES)


def _is_date_family(obj: object) -> bool:
    """Whether obj is date/datetime (class or instance): the ones with a clock."""
    return any(
        obj is kind or type(obj) is kind for kind in (datetime.date, datetime.datetime)
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
    if not isinstance(expression, str):
        raise UnsafeExpressionError(
            f"Expected an expression string, got {type(expression).__name__}"
        )
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise UnsafeExpressionError(
            f"Expression too long: at most {MAX_EXPRESSION_LENGTH} characters "
            f"(got {len(expression)})"
        )
    text = expression.strip()
    if not text:
        raise UnsafeExpressionError("Empty expression")
    # Leading whitespace would be an IndentationError; strip it, keep positions.
    prefix = expression[: len(expression) - len(expression.lstrip())]
    tree = _parse(text, prefix)
    _check_depth(tree)
    tree = _ModuleStyleRewriter().visit(tree)
    _validate(tree)
    try:
        return _Evaluator(now).value(tree.body)
    except UnsafeExpressionError:
        raise
    except RecursionError as exc:
        raise _too_deep() from exc
    except Exception as exc:  # allowed code failed: report it, never leak it raw
        raise UnsafeExpressionError(_describe_error(exc)) from exc
