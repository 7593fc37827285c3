"""The grammar of an expression and the checks that refuse anything outside it.

An expression is parsed, checked for depth, and every node of its tree is checked
against the tables below, even in branches that would not run, before anything is
evaluated. The operator tables also say what each operator computes: the evaluator
looks them up.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

from .errors import UnsafeExpressionError
from .limits import MAX_EXPRESSION_LENGTH, MAX_NESTING_DEPTH, too_deep
from .namespace import ALLOWED_ATTRIBUTES, MODULE_STYLE_NAMES, NAMES_HINT, NAMESPACE


def _is_in(left: Any, right: Any) -> bool:
    return left in right


def _is_not_in(left: Any, right: Any) -> bool:
    return left not in right


BINARY_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
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
UNARY_OPERATORS: dict[type, Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
COMPARISONS: dict[type, Callable[[Any, Any], Any]] = {
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
    *BINARY_OPERATORS,
    *UNARY_OPERATORS,
    *COMPARISONS,
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


def checked_tree(expression: str) -> ast.Expression:
    """Parse and check an expression; return its tree ready to evaluate, or raise.

    Module-style names (`datetime.datetime`) are rewritten to the bare ones.
    """
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
    return tree


def source(node: ast.AST) -> str:
    """A short source snippet for messages."""
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


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
        raise too_deep() from exc
    except SyntaxError as exc:
        if "too many nested" in (exc.msg or ""):
            raise too_deep() from exc
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
            raise too_deep()
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


class _ModuleStyleRewriter(ast.NodeTransformer):
    """Rewrite `datetime.datetime` (and .date, .time, .timedelta) to the bare name."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        # Checked on the original node, before visiting children, so that
        # `datetime.datetime.date` stays the method and does not become `date`.
        if (
            isinstance(node.value, ast.Name)
            and node.value.id == "datetime"
            and node.attr in MODULE_STYLE_NAMES
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
        if isinstance(node, ast.Name) and node.id not in NAMESPACE:
            raise UnsafeExpressionError(
                f"Name '{node.id}' is not allowed. Allowed names: {NAMES_HINT}"
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
            f"Only named functions and methods can be called, not '{source(node.func)}'"
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
