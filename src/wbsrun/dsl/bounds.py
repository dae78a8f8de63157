"""The text of values, and the bounds on every value an expression or a template builds.

Expressions are untrusted. `[['y'] * 99999] * 99999` is a small object graph (one inner list,
referenced 99,999 times) whose text is 10 GB, so sizes here are counted *unfolded*, the way
`str()`, a JSON encoder or a comparison walks the value, and each building operation checks its
result before allocating it where the size is known beforehand (`*`, `+`, `str()`), with walks
that stop as soon as a budget is spent. A value that passes has at most MAX_ITEMS items and
MAX_TEXT string characters, unfolded, so whatever later encodes or compares it stays bounded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "MAX_INT",
    "MAX_INT_DIGITS",
    "MAX_ITEMS",
    "MAX_TEXT",
    "LimitExceeded",
    "bounded_text",
    "check_concat",
    "check_items",
    "check_repeat",
    "is_mapping",
    "measure",
    "to_text",
]

MAX_TEXT: Final = 1 << 20
"""Longest string (characters; bytes for bytes) an expression or a template may build, and the
most string characters a built list may hold, unfolded: 1 MiB."""
MAX_ITEMS: Final = 100_000
"""Most items a built list may hold, unfolded: the items of nested lists and mappings count too,
once for every place they appear."""
MAX_INT: Final = 10**18
"""Largest magnitude an integer produced by arithmetic may have."""
MAX_INT_DIGITS: Final = 4_300
"""Longest string `int()` converts (Python's own default limit, kept when the interpreter's is
lifted: the conversion is quadratic)."""


class LimitExceeded(Exception):
    """A value would pass a limit; raised while evaluating, reported as `expression-limit`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- text conversion (shared with templates so that `str(x)` and `"{{x}}"` agree) ---


def to_text(value: Any) -> str:
    """Convert a value to the text a template shows for it, without any size bound.

    str as is; booleans `true`/`false`; None `null`; numbers `str()`; lists, tuples and dicts
    compact JSON (non-JSON leaves through `str()`); anything else `str()`. Never raises for
    plain data: a structure JSON cannot encode (cycles, odd keys) falls back to `str()`.
    Expressions and templates use `bounded_text`.
    """
    if isinstance(value, str):
        return value
    kind = type(value)
    if kind is int or kind is float:
        return str(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if kind is tuple and all(type(item) is str for item in value):
        # Frozen plan values (user.context scope_trace …) are rendered on every request; only
        # all-string tuples are memoised, since (1,) and (True,) are equal keys.
        return _tuple_text(value)
    if isinstance(value, list | tuple | dict | Mapping):
        return _json_text(value)
    return str(value)


def _json_default(value: Any) -> Any:
    # Frozen mappings (MappingProxyType) are mappings, not their repr.
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _json_text(value: Any) -> str:
    try:
        return json.dumps(
            dict(value) if isinstance(value, Mapping) and not isinstance(value, dict) else value,
            separators=(",", ":"),
            ensure_ascii=False,
            default=_json_default,
        )
    except (TypeError, ValueError, RecursionError):
        return str(value)


@lru_cache(maxsize=1024)
def _tuple_text(value: tuple[str, ...]) -> str:
    return _json_text(value)


# type → is it a Mapping. `isinstance(x, Mapping)` on anything but a dict runs the ABC's
# `__instancecheck__` in Python (~0.3 µs); a pass reads ~7 fields of non-dict mappings (HTTP
# results, the workbook view). Bounded: the types a run meets are few.
_MAPPING_KINDS: dict[type, bool] = {}


def is_mapping(value: Any) -> bool:
    """`isinstance(value, Mapping)`, remembered per type."""
    kind = type(value)
    if kind is dict:
        return True
    known = _MAPPING_KINDS.get(kind)
    if known is None:
        known = isinstance(value, Mapping)
        if len(_MAPPING_KINDS) < 256:
            _MAPPING_KINDS[kind] = known
    return known


# --- sizes ---


def measure(value: Any, max_items: int, max_chars: int) -> tuple[int, int]:
    """`value`'s unfolded (items, string characters).

    Stops as soon as either passes its maximum, so the walk costs at most `max_items` steps
    (a cycle is infinitely large and stops there too); the pair returned then exceeds a
    maximum but is not the full size. Mapping keys count as characters, values as items.
    """
    kind = type(value)
    if kind is str or kind is bytes or kind is bytearray:
        return 0, len(value)
    if kind is int or kind is float or kind is bool or value is None:
        return 0, 0
    if kind is list or kind is tuple:
        # The common case, a short list of scalars, without the walk's stack.
        items = len(value)
        if items > max_items:
            return items, 0
        chars = 0
        for item in value:
            kind = type(item)
            if kind is str:
                chars += len(item)
            elif not (kind is int or kind is float or kind is bool or item is None):
                return _walk(value, max_items, max_chars)
        return items, chars
    return _walk(value, max_items, max_chars)


def _walk(value: Any, max_items: int, max_chars: int) -> tuple[int, int]:
    items = 0
    chars = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is int or kind is float or kind is bool or item is None:
            continue
        if kind is str or kind is bytes or kind is bytearray:
            chars += len(item)
            if chars > max_chars:
                break
        elif kind is list or kind is tuple:
            items += len(item)
            if items > max_items:
                break
            stack.extend(item)
        elif is_mapping(item):
            items += len(item)
            if items > max_items:
                break
            for key in item:
                if isinstance(key, str):
                    chars += len(key)
            if chars > max_chars:
                break
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            items += len(item)
            if items > max_items:
                break
            stack.extend(item)
        elif isinstance(item, (str, bytes, bytearray)):
            chars += len(item)
            if chars > max_chars:
                break
    return items, chars


def _over(what: str, items: int, chars: int, max_items: int, max_chars: int) -> None:
    if items > max_items:
        raise LimitExceeded(f"{what} would hold more than {MAX_ITEMS:,} items (counted unfolded)")
    if chars > max_chars:
        raise LimitExceeded(
            f"{what} would hold more than {MAX_TEXT:,} characters of strings (counted unfolded)"
        )


def check_items(values: list[Any]) -> None:
    """Refuse a list literal's new list when it holds more than the limits, unfolded."""
    items, chars = measure(values, MAX_ITEMS, MAX_TEXT)
    if items > MAX_ITEMS or chars > MAX_TEXT:
        _over("a list", items, chars, MAX_ITEMS, MAX_TEXT)


def check_repeat(left: Any, right: Any) -> None:
    """Refuse `'x' * n` / `[x] * n` before it allocates more than the limits, unfolded."""
    if type(right) is int or type(right) is bool:
        sequence, count = left, int(right)
    elif type(left) is int or type(left) is bool:
        sequence, count = right, int(left)
    else:
        return
    if count <= 0:
        return
    if isinstance(sequence, (str, bytes, bytearray)):
        size = len(sequence) * count
        if size > MAX_TEXT:
            raise LimitExceeded(
                f"'*' would build a string of {size:,} characters (max {MAX_TEXT:,})"
            )
    elif isinstance(sequence, (list, tuple)):
        # Budgets divided by `count`: the walk stops at the first item too many.
        items, chars = measure(sequence, MAX_ITEMS // count, MAX_TEXT // count)
        if items * count > MAX_ITEMS or chars * count > MAX_TEXT:
            _over("'*'", items * count, chars * count, MAX_ITEMS, MAX_TEXT)


def check_concat(left: Any, right: Any) -> None:
    """Refuse `a + b` on strings or lists before it allocates more than the limits, unfolded."""
    if isinstance(left, (list, tuple)):
        if isinstance(right, (list, tuple)):
            items, chars = measure(left, MAX_ITEMS, MAX_TEXT)
            more_items, more_chars = measure(right, MAX_ITEMS - items, MAX_TEXT - chars)
            if items + more_items > MAX_ITEMS or chars + more_chars > MAX_TEXT:
                _over("'+'", items + more_items, chars + more_chars, MAX_ITEMS, MAX_TEXT)
    elif isinstance(left, (str, bytes, bytearray)) and isinstance(right, (str, bytes, bytearray)):
        size = len(left) + len(right)
        if size > MAX_TEXT:
            raise LimitExceeded(
                f"'+' would build a string of {size:,} characters (max {MAX_TEXT:,})"
            )


# --- bounded text ---


def _text_size(value: Any, budget: int) -> int:
    """The length of `to_text(value)` for a list or mapping, give or take escapes.

    Strings count their characters and quotes (JSON escapes can add up to 5 characters per
    character: `bounded_text` checks the text it gets); stops once past `budget`.
    """
    kind = type(value)
    if kind is list or kind is tuple:
        # The common case, a short list of strings and small numbers, without the stack.
        size = 2 + 21 * len(value)  # brackets; per item a separator and up to 20 digits
        if size > budget:
            return _text_walk(value, budget)
        for item in value:
            kind = type(item)
            if kind is str:
                size += len(item) + 2
            elif not ((kind is int and -MAX_INT <= item <= MAX_INT) or item is None):
                return _text_walk(value, budget)
        return size
    return _text_walk(value, budget)


def _text_walk(value: Any, budget: int) -> int:
    size = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            size += len(item) + 3  # quotes and a separator
        elif kind is int:
            size += item.bit_length() * 1233 // 4096 + 3  # digits (≥ log10), sign, separator
        elif kind is float:
            size += len(repr(item)) + 1
        elif kind is bool or item is None:
            size += 6
        elif (
            kind is list
            or kind is tuple
            or (not is_mapping(item) and isinstance(item, (list, tuple)))
        ):
            size += 2 + len(item)  # brackets, and at least one character per item
            if size > budget:
                break
            stack.extend(item)
        elif is_mapping(item):
            size += 2 + len(item)
            if size > budget:
                break
            for key in item:
                size += (len(key) if isinstance(key, str) else len(str(key))) + 3
            stack.extend(item.values())
        elif isinstance(item, (str, bytes, bytearray)):
            size += len(item) + 3
        else:
            size += len(str(item)) + 3
        if size > budget:
            break
    return size


def bounded_text(value: Any) -> str:
    """`to_text(value)`, refused when the text it builds would pass MAX_TEXT characters.

    A string is its own text (nothing is built); a list or mapping is sized before it is
    encoded, so `str([['y'] * 99999] * 99999)` stops after a walk of about MAX_TEXT steps.
    """
    if isinstance(value, str):
        return value
    kind = type(value)
    if kind is int or kind is float or kind is bool or value is None:
        return to_text(value)
    if (kind is list or kind is tuple or is_mapping(value)) and (
        _text_size(value, MAX_TEXT) > MAX_TEXT
    ):
        raise LimitExceeded(f"str() would build more than {MAX_TEXT:,} characters")
    text = to_text(value)
    if len(text) > MAX_TEXT:
        raise LimitExceeded(f"str() would build {len(text):,} characters (max {MAX_TEXT:,})")
    return text
