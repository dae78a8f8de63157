"""One HTTP/1.1 client connection: an asyncio Protocol fed to httptools' response parser."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Final, cast, final

import httptools

from wbsrun.protocols.h1._errors import (
    ConnectionLost,
    ProtocolViolation,
    Timeout,
    TransportError,
    body_too_large,
)
from wbsrun.protocols.h1._head import head_field_bytes, header_pairs

__all__ = ["MAX_HEAD_BYTES", "H1Connection", "Origin", "origin_key"]

# (scheme, host, port): what a keep-alive connection can be reused for.
Origin = tuple[str, str, int]


def origin_key(origin: Origin) -> str:
    """The origin as the pool's idle map keys it. Compiled, an `Origin` is held unboxed (a C
    struct), so a tuple key is boxed anew at every lookup, hashed, and compared item by item
    with the stored one (cold at 1,000 users); one string per origin, shared by the client's
    prepared requests and their connections, is found by identity with its hash cached."""
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


# A response head (status line + headers) longer than this is refused: a hostile server must
# not make the client buffer without bound. aiohttp refuses lines over 8 KiB.
MAX_HEAD_BYTES: Final = 64 * 1024

_NO_BODY_STATUS: Final = frozenset({204, 304})
_HEAD_END: Final = b"\r\n\r\n"
# The shortest status line llhttp accepts ("HTTP/1.1 200"): a blank line found sooner is one
# of the empty lines it skips before a response.
_SHORTEST_STATUS_LINE: Final = 12


# Read from the head only when a body spans reads (its first read did not finish it).
_CONTENT_LENGTH: Final = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]+)", re.IGNORECASE)


def _too_large() -> ProtocolViolation:
    return ProtocolViolation(f"response head larger than {MAX_HEAD_BYTES} bytes")


@final
class WriteBatch:
    """Request writes of one loop, sent together once the callbacks of this iteration ran.

    A write to a loopback socket runs the receiving side's TCP path in the sender's system
    call. Sent one at a time between a runner's Python work, each such call found the kernel's
    caches cold: 12 µs a request inside wbsrun against 5.5 µs in a bare client loop (py-spy,
    1,000 users). Sent back to back at the end of the iteration they cost what the bare loop's
    do (measured: −20 µs CPU a request for the reference scenario). The delay is one loop
    iteration; the write order per connection is unchanged (one request at a time)."""

    __slots__ = ("_pending", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pending: list[tuple[asyncio.Transport, bytes, bytes | None]] = []

    def add(self, transport: asyncio.Transport, data: bytes, tail: bytes | None) -> None:
        if not self._pending:
            self.loop.call_soon(self._flush)
        self._pending.append((transport, data, tail))

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        for transport, data, tail in batch:
            if transport.is_closing():
                continue  # closed meanwhile: connection_lost fails the request's waiter
            if tail is None:
                transport.write(data)
            else:
                transport.writelines((data, tail))


@final
class H1Connection(asyncio.Protocol):
    """Sends one request at a time (no pipelining) and collects its response.

    Response state lives on the connection and is reset per request, so a request allocates
    only its waiter future, its head and its body. The client reads `status`, `head` (the raw
    head, status line to blank line: headers are parsed from it only when someone reads them,
    see _head.py) and `body()`.
    """

    __slots__ = (
        "_body",
        "_body_rest",
        "_buffered",
        "_chunks",
        "_head_request",
        "_head_start",
        "_in_head",
        "_length_checked",
        "_limit",
        "_on_close",
        "_parser",
        "_size",
        "_waiter",
        "closed",
        "head",
        "keep_alive",
        "key",
        "last_read",
        "origin",
        "received",
        "status",
        "track_reads",
        "transport",
        "uses",
        "wire",
    )

    def __init__(
        self, origin: Origin, on_close: Callable[[H1Connection], None], key: str | None = None
    ) -> None:
        self.origin = origin
        self.key = key if key is not None else origin_key(origin)
        self._on_close = on_close
        # No `on_header`: httptools then makes no per-header objects or calls (see _head.py).
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.head = b""
        # The body's first chunk, and any further ones (most bodies come in one).
        self._body = b""
        self._body_rest: list[bytes] | None = None
        # What arrived while a head was incomplete; `_head_start`: where the current head
        # begins in their concatenation (past interim 1xx heads).
        self._chunks: list[bytes] = []
        self._head_start = 0
        self._head_request = False
        self._in_head = True
        self._buffered = 0  # bytes fed while the head was still incomplete
        # The response body limit (bytes, 0: none), the body bytes received so far, and
        # whether the final head's Content-Length was compared with the limit.
        self._limit = 0
        self._size = 0
        self._length_checked = False
        self.keep_alive = True
        self.closed = False
        self.received = False  # any byte of the current response arrived
        self.track_reads = False
        self.last_read = 0.0
        self.uses = 0  # requests sent: a reused connection may have gone stale while idle
        self.wire = 0  # bytes of the current response received (heads, framing and body)

    # -- driven by the client ---------------------------------------------------------------
    def send(
        self,
        data: bytes,
        waiter: asyncio.Future[None],
        head_request: bool,
        tail: bytes | None = None,
        writes: WriteBatch | None = None,
        limit: int = 0,
    ) -> None:
        """Write one request (`data`, then `tail` if any: a large body, written without first
        copying it behind the head); `waiter` completes when its final response is read.

        A response body over `limit` bytes (0: no limit) fails `waiter` with BodyTooLarge
        and drops the connection: at once when its Content-Length says so, else as soon as
        the bytes received cross it."""
        assert self.transport is not None
        assert self._waiter is None
        self._waiter = waiter
        self.status = 0
        self._body = b""
        self._body_rest = None
        self._head_request = head_request
        self._in_head = True
        self._buffered = 0
        self._limit = limit
        self._size = 0
        self._length_checked = False
        self.received = False
        self.wire = 0
        if writes is not None:
            writes.add(self.transport, data, tail)
        elif tail is None:
            self.transport.write(data)
        else:
            self.transport.writelines((data, tail))

    def body(self) -> bytes:
        """The body, taken: the connection keeps no reference to it (it would hold a body
        joined from chunks twice, as chunks here and joined in the result, while idle)."""
        first, rest = self._body, self._body_rest
        self._body = b""
        self._body_rest = None
        if rest is None:
            return first
        # Chunks and joined copy coexist only for this call (≤ 2 × max-body at its end).
        return b"".join([first, *rest])

    def fail(self, exc: TransportError) -> None:
        """End the current request with `exc` and drop the connection (never reused)."""
        self.keep_alive = False
        self._body = b""  # what was received of a failed body is not kept
        self._body_rest = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def timed_out(self, what: str) -> None:
        self.fail(Timeout(f"{what} timeout"))

    def abort(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without inheriting from it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.wire += len(data)
        if self.track_reads:
            self.last_read = asyncio.get_running_loop().time()
        if self._waiter is None:
            # Bytes nobody asked for (no pipelining): the connection cannot be trusted.
            self.abort()
            return
        if self._in_head:
            self._chunks.append(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__ if isinstance(exc.__context__, TransportError) else None
            self.fail(cause or ProtocolViolation(f"malformed response: {exc}"))
            return
        if self._in_head:
            # Still no end of the head: httptools buffers it, so bound what it may buffer.
            # (A chunk that completes the head may also carry any amount of body.)
            self._buffered += len(data)
            if self._buffered > MAX_HEAD_BYTES:
                self.fail(_too_large())
        elif not self._length_checked and self._waiter is not None:
            # A body that did not end in the read that ended its head: fail at once if its
            # announced length is over the limit (a body that did end costs no look).
            self._length_checked = True
            self._check_length()

    def _check_length(self) -> None:
        limit = self._limit
        if not limit:
            return
        found = _CONTENT_LENGTH.search(self.head)
        if found is not None:
            size = int(found.group(1))
            if size > limit:
                self.fail(body_too_large(size, limit, "announces"))

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost settles the request

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep_alive = False
        self._chunks.clear()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if not self._in_head and self._ends_at_eof():
                waiter.set_result(None)  # body delimited by the close (no length, not chunked)
            else:
                where = "in the response body" if not self._in_head else "before a response"
                detail = f": {exc}" if exc else ""
                waiter.set_exception(ConnectionLost(f"connection closed {where}{detail}"))
        self._on_close(self)

    # -- httptools callbacks -----------------------------------------------------------------
    def on_headers_complete(self) -> None:
        chunks = self._chunks
        buf = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        start = self._head_start
        end = buf.find(_HEAD_END, start)
        if end - start < _SHORTEST_STATUS_LINE:
            start = len(buf) - len(buf[start:].lstrip(b"\r\n"))
            end = buf.find(_HEAD_END, start)
            if end < 0:  # pragma: no cover - llhttp accepts no other end of a head
                raise ProtocolViolation("response head without its blank line")
        end += len(_HEAD_END)
        # A copy, not the chunk: a saved result must not keep the body it arrived with.
        head = buf[start:end]
        if end - start > MAX_HEAD_BYTES and head_field_bytes(head) > MAX_HEAD_BYTES:
            raise _too_large()  # httptools re-raises it as HttpParserCallbackError
        self.head = head
        self.status = status = self._parser.get_status_code()
        self._in_head = False
        if status < 200 and status != 101:
            # An interim head: the final one follows it, in this buffer or in later chunks.
            self._head_start = end
            if len(chunks) > 1:
                chunks[:] = [buf]
            return
        chunks.clear()
        self._head_start = 0
        if self._head_request and status >= 200:
            # llhttp cannot be told a response answers HEAD, so it would wait for the body
            # that Content-Length announces: finish here and parse the next one afresh.
            self.keep_alive = self._parser.should_keep_alive()
            self._parser = httptools.HttpResponseParser(self)
            self._complete()

    def on_body(self, body: bytes) -> None:
        if self._waiter is None:
            # A body after a finished answer (a HEAD answer with one): the stream is out of step.
            self.keep_alive = False
            return
        size = self._size + len(body)
        self._size = size
        if size > self._limit and self._limit:
            # httptools re-raises it as HttpParserCallbackError: data_received fails the
            # request with it and drops the connection, reading no more.
            raise body_too_large(size, self._limit, "reached")
        if not self._body:
            self._body = body
        elif self._body_rest is None:
            self._body_rest = [body]
        else:
            self._body_rest.append(body)

    def on_message_complete(self) -> None:
        if self.status < 200 and self.status != 101:
            # Interim response (100 Continue, 103 Early Hints): the final one follows.
            self._in_head = True
            self._buffered = 0
            return
        self.keep_alive = self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif waiter is None:
            self.keep_alive = False  # a response to no request

    def _complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif waiter is None:
            self.keep_alive = False  # a response to no request

    def _ends_at_eof(self) -> bool:
        if self._head_request or self.status in _NO_BODY_STATUS:
            return False
        for name, value in header_pairs(self.head):
            lower = name.lower()
            if lower == b"content-length":
                return False
            if lower == b"transfer-encoding" and b"chunked" in value.lower():
                return False
        return True
