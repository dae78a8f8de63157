"""A response head kept as the bytes it arrived as; its header pairs are parsed only when read.

Collecting headers through httptools' `on_header` callback costs a Python call and two bytes
objects per header on every response, and a list of tuples that a saved result then holds
(~1.4 KiB). Most responses are never asked for their headers, so the connection keeps the raw
head (status line to blank line, one bytes object) and this re-parses it with httptools itself
when someone does ask: the pairs are exactly what llhttp would have reported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import final, overload

import httptools

__all__ = ["RawHeaders", "head_field_bytes", "header_pairs"]


@final
class _Collector:
    __slots__ = ("pairs",)

    def __init__(self) -> None:
        self.pairs: list[tuple[bytes, bytes]] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.pairs.append((name, value))


def header_pairs(head: bytes) -> list[tuple[bytes, bytes]]:
    """The `(name, value)` pairs of a head the connection's parser has already accepted."""
    collector = _Collector()
    # The head ends at its blank line, so the parser stops there (waiting for a body at most).
    # A 101 answer with `Upgrade` stops llhttp after its head, every pair already reported.
    with contextlib.suppress(httptools.HttpParserUpgrade):
        httptools.HttpResponseParser(collector).feed_data(head)
    return collector.pairs


def head_field_bytes(head: bytes) -> int:
    """Header names + values: what MAX_HEAD_BYTES bounds (before heads were kept raw, too)."""
    return sum(len(name) + len(value) for name, value in header_pairs(head))


@final
class RawHeaders(Sequence[tuple[bytes, bytes]]):
    """A response's headers as `(name, value)` byte pairs, parsed from `head` on each read.

    Nothing parsed is kept: the one reader that reads often (HttpResult) keeps its own map,
    and a result saved for the rest of the run then holds a single bytes object.
    """

    __slots__ = ("head",)

    def __init__(self, head: bytes) -> None:
        self.head = head

    def pairs(self) -> list[tuple[bytes, bytes]]:
        return header_pairs(self.head)

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(header_pairs(self.head))

    def __len__(self) -> int:
        return len(header_pairs(self.head))

    @overload
    def __getitem__(self, index: int) -> tuple[bytes, bytes]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[bytes, bytes]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tuple[bytes, bytes] | Sequence[tuple[bytes, bytes]]:
        return header_pairs(self.head)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RawHeaders):
            return self.pairs() == other.pairs()
        if isinstance(other, list | tuple):
            return self.pairs() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RawHeaders({self.pairs()!r})"
