"""How big and how costly an expression may be, and the checks that enforce it.

Source length, nesting, **, *, << and sequence repetition or concatenation are
checked before computing, so a bomb is refused without being built. Call results
(str(), json.dumps(), ...) are checked afterwards: their inputs are already
bounded, so they can only be a bounded multiple too big.
"""

from __future__ import annotations

import datetime
import itertools
from typing import Any

from .errors import UnsafeExpressionError

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

# The plain data an expression may produce, by how its size is counted.
DATETIME_TYPES: tuple[type, ...] = (
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
)
CONTAINER_TYPES: tuple[type, ...] = (list, tuple, set, frozenset, dict)
SCALAR_TYPES: tuple[type, ...] = (bool, float, type(None), *DATETIME_TYPES)
SEQUENCE_TYPES: tuple[type, ...] = (str, list, tuple)


def too_deep() -> UnsafeExpressionError:
    """The error for an expression (or JSON text) nested beyond MAX_NESTING_DEPTH."""
    return UnsafeExpressionError(
        f"Expression too deeply nested (at most {MAX_NESTING_DEPTH} levels)"
    )


def json_depth_ok(text: str) -> bool:
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


def check_power(base: int, exponent: int) -> None:
    """Refuse an integer ``base ** exponent`` whose result would be too large."""
    if abs(exponent) > MAX_POWER_EXPONENT:
        raise UnsafeExpressionError(
            f"Exponent too large (at most {MAX_POWER_EXPONENT})"
        )
    # |base| < 2**k, so |base ** e| < 2**(k*e): refuse before computing.
    if exponent > 0 and abs(base) > 1 and base.bit_length() * exponent > MAX_INT_BITS:
        raise UnsafeExpressionError(
            f"Integer result too large: at most {MAX_INT_BITS} bits"
        )


def check_shift(value: int, shift: int) -> None:
    """Refuse an integer ``value << shift`` whose result would be too large."""
    if shift > MAX_INT_BITS or value.bit_length() + shift > MAX_INT_BITS:
        raise UnsafeExpressionError(
            f"Integer result too large: at most {MAX_INT_BITS} bits"
        )


def check_product(left: int, right: int) -> None:
    """Refuse an integer ``left * right`` whose result would be too large."""
    if left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise UnsafeExpressionError(
            f"Integer result too large: at most {MAX_INT_BITS} bits"
        )


def check_format_argument(method: str, argument: object) -> None:
    """Refuse a long string argument to a datetime `method`.

    strftime() may size its buffer at 256 x the format length.
    """
    if isinstance(argument, str) and len(argument) > MAX_FORMAT_LENGTH:
        raise UnsafeExpressionError(
            f"String argument too long for {method}(): "
            f"at most {MAX_FORMAT_LENGTH} characters"
        )


class Budget:
    """What one evaluation has used: the size of each value and the total work."""

    def __init__(self) -> None:
        self._work = 0
        # id -> (container, size): the container is kept so its id stays unique.
        self._sizes: dict[int, tuple[object, int]] = {}

    def spend(self, size: int) -> None:
        """Count a value of `size` toward MAX_TOTAL_WORK; raise beyond it."""
        self._work += size
        if self._work > MAX_TOTAL_WORK:
            raise UnsafeExpressionError(
                f"Expression does too much work: its intermediate values may total "
                f"at most {MAX_TOTAL_WORK} items and characters"
            )

    def size(self, value: Any) -> int:
        """Size of value (see MAX_SEQUENCE_LENGTH); raises when it is too big."""
        kind = type(value)
        if kind is str:
            return self.limit(len(value), "characters")
        if kind is int:
            bits = value.bit_length()
            if bits > MAX_INT_BITS:
                raise UnsafeExpressionError(
                    f"Integer too large: at most {MAX_INT_BITS} bits"
                )
            # Large ints print as many digits, so they count toward the size.
            return 0 if bits <= 64 else bits * 3 // 10
        if kind in SCALAR_TYPES:
            return 0
        if kind not in CONTAINER_TYPES:
            raise UnsafeExpressionError(
                f"Values of type {kind.__name__} are not supported"
            )
        cached = self._sizes.get(id(value))
        if cached is not None and cached[0] is value:
            return cached[1]
        total = self.limit(len(value), "items")
        children = value
        if kind is dict:
            children = itertools.chain.from_iterable(value.items())
        for child in children:
            total = self.limit_total(total + self.size(child))
        self._sizes[id(value)] = (value, total)
        return total

    def remember(self, value: object, size: int) -> object:
        """Record a size computed before the operation, to avoid a re-walk."""
        if type(value) in CONTAINER_TYPES:
            self._sizes[id(value)] = (value, size)
        return value

    @staticmethod
    def limit(length: int, unit: str) -> int:
        """Refuse one string or container longer than MAX_SEQUENCE_LENGTH."""
        if length > MAX_SEQUENCE_LENGTH:
            raise UnsafeExpressionError(
                f"Result too long: at most {MAX_SEQUENCE_LENGTH} {unit}"
            )
        return length

    @staticmethod
    def limit_total(total: int) -> int:
        """Refuse a value whose nested items and characters exceed the limit."""
        if total > MAX_SEQUENCE_LENGTH:
            raise UnsafeExpressionError(
                f"Result too large: at most {MAX_SEQUENCE_LENGTH} items and "
                "characters in total, nested values included"
            )
        return total
