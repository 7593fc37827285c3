"""Task parameter expressions: a whitelisted subset of Python, evaluated without eval().

Pure Python, no Django: validate.py holds the grammar and refuses anything outside
it, namespace.py the names and attributes an expression may reach, limits.py the
size and work limits, evaluate.py the evaluator behind safe_eval().
"""

from .errors import UnsafeExpressionError
from .evaluate import safe_eval
from .limits import (
    MAX_EXPRESSION_LENGTH,
    MAX_FORMAT_LENGTH,
    MAX_INT_BITS,
    MAX_NESTING_DEPTH,
    MAX_POWER_EXPONENT,
    MAX_SEQUENCE_LENGTH,
    MAX_TOTAL_WORK,
)
from .namespace import ALLOWED_ATTRIBUTES, ALLOWED_NAMES, allowed_help

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_NAMES",
    "MAX_EXPRESSION_LENGTH",
    "MAX_FORMAT_LENGTH",
    "MAX_INT_BITS",
    "MAX_NESTING_DEPTH",
    "MAX_POWER_EXPONENT",
    "MAX_SEQUENCE_LENGTH",
    "MAX_TOTAL_WORK",
    "UnsafeExpressionError",
    "allowed_help",
    "safe_eval",
]
