"""The items of a JSON array file, one at a time, from a byte offset (dsl/rows.py).

An incremental reader of our own rather than a dependency (ijson): the items are objects of
at most MAX_ROW bytes, so finding where one ends only needs its brackets matched outside
strings, and `json.loads` parses it. Memory: the item being read, and a read buffer that
starts at 4 KiB and doubles while the item is longer."""

from __future__ import annotations

import json
import re
from typing import IO, Any, Final

__all__ = ["JsonItemError", "array_start", "read_item"]

_FIRST_CHUNK: Final = 4096
# A whole string (skipped), a quote that opens a string the buffer cuts, or a bracket.
# (The string is written "unrolled": ten times faster on long strings than `(?:[^"\\]|\\.)*`.)
_TOKENS: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[{}\[\]]', re.DOTALL)
_SPACE: Final = re.compile(rb"[ \t\r\n]*")

Position = tuple[int, int]


class JsonItemError(Exception):
    """`line` is where the item starts; `after` where the next one may (None: cannot skip)."""

    def __init__(self, line: int, message: str, after: Position | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.after = after


def array_start(f: IO[bytes]) -> Position:
    """The position just inside the file's opening `[`; JsonItemError when there is none."""
    f.seek(0)
    head = f.read(_FIRST_CHUNK)
    head_text = head.removeprefix(b"\xef\xbb\xbf")
    skipped = len(head) - len(head_text)
    space = _SPACE.match(head_text)
    i = space.end() if space else 0
    if i >= len(head_text) or head_text[i : i + 1] != b"[":
        raise JsonItemError(1, "a JSON source must be one array of objects")
    return skipped + i + 1, head_text.count(b"\n", 0, i)


def read_item(
    f: IO[bytes], at: Position, first: bool, max_row: int
) -> tuple[dict[str, Any] | None, Position]:
    """The object at `at` (None after the last) and the position after it."""
    offset, line = at
    f.seek(offset)
    buf = f.read(_FIRST_CHUNK)
    i = _skip(buf, 0)
    if not first and buf[i : i + 1] == b",":
        i = _skip(buf, i + 1)
    elif not first and buf[i : i + 1] not in (b"]", b""):
        raise JsonItemError(line + 1 + buf.count(b"\n", 0, i), "expected ',' or ']'")
    start_line = line + 1 + buf.count(b"\n", 0, i)
    if buf[i : i + 1] == b"]":
        return None, at
    if not buf[i:]:
        raise JsonItemError(start_line, "the array is not closed (no ']')")
    if buf[i : i + 1] != b"{":
        raise JsonItemError(start_line, "an item of the array is not an object")
    size = _FIRST_CHUNK
    while True:
        end = _item_end(buf, i)
        if end is not None:
            break
        if len(buf) - i > max_row:
            raise JsonItemError(start_line, f"an item longer than {max_row:,} bytes")
        more = f.read(size)
        size *= 2
        if not more:
            raise JsonItemError(start_line, "the array ends inside an item")
        buf += more
    after = (offset + end, line + buf.count(b"\n", 0, end))
    if end - i > max_row:
        raise JsonItemError(start_line, f"an item longer than {max_row:,} bytes", after)
    try:
        value = json.loads(buf[i:end].decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise JsonItemError(start_line, f"not UTF-8 text: {exc.reason}", after) from None
    except json.JSONDecodeError as exc:
        raise JsonItemError(
            start_line + exc.lineno - 1, f"invalid JSON: {exc.msg}", after
        ) from None
    return value, after


def _skip(buf: bytes, i: int) -> int:
    space = _SPACE.match(buf, i)
    return space.end() if space else i


def _item_end(buf: bytes, start: int) -> int | None:
    """Where the object opening at `start` closes (exclusive); None: not in `buf` yet."""
    depth = 0
    for token in _TOKENS.finditer(buf, start):
        text = token.group()
        if text[0] == 0x22:  # '"'
            if len(text) == 1:
                return None  # a string the buffer cuts
            continue
        depth += 1 if text in (b"{", b"[") else -1
        if depth == 0:
            return token.end()
    return None
