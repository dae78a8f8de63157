"""One HTTP/1.1 client connection: an asyncio Protocol fed to httptools' response parser."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast, final

import httptools

from wbsrun.protocols.h1._errors import (
    ConnectionLost,
    ProtocolViolation,
    Timeout,
    TransportError,
)

__all__ = ["MAX_HEAD_BYTES", "H1Connection", "Origin"]

# (scheme, host, port): what a keep-alive connection can be reused for.
Origin = tuple[str, str, int]

# A response head (status line + headers) longer than this is refused: a hostile server must
# not make the client buffer without bound. aiohttp refuses lines over 8 KiB.
MAX_HEAD_BYTES: Final = 64 * 1024

_NO_BODY_STATUS: Final = frozenset({204, 304})


def _too_large() -> ProtocolViolation:
    return ProtocolViolation(f"response head larger than {MAX_HEAD_BYTES} bytes")


@final
class H1Connection(asyncio.Protocol):
    """Sends one request at a time (no pipelining) and collects its response.

    Response state lives on the connection and is reset per request, so a request allocates
    only its waiter future and the header/body lists. The client reads `status`, `headers`
    (raw `(name, value)` byte pairs, decoded later and only if asked) and `body()`.
    """

    __slots__ = (
        "_body",
        "_buffered",
        "_head_bytes",
        "_head_request",
        "_in_head",
        "_on_close",
        "_parser",
        "_waiter",
        "closed",
        "headers",
        "keep_alive",
        "last_read",
        "origin",
        "received",
        "status",
        "track_reads",
        "transport",
        "uses",
    )

    def __init__(self, origin: Origin, on_close: Callable[[H1Connection], None]) -> None:
        self.origin = origin
        self._on_close = on_close
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._head_request = False
        self._in_head = True
        self._head_bytes = 0  # header names + values of this answer
        self._buffered = 0  # bytes fed while the head was still incomplete
        self.keep_alive = True
        self.closed = False
        self.received = False  # any byte of the current response arrived
        self.track_reads = False
        self.last_read = 0.0
        self.uses = 0  # requests sent: a reused connection may have gone stale while idle

    # -- driven by the client ---------------------------------------------------------------
    def send(self, data: bytes, waiter: asyncio.Future[None], head_request: bool) -> None:
        """Write one request; `waiter` completes when its final response has been read."""
        assert self.transport is not None
        assert self._waiter is None
        self._waiter = waiter
        self.status = 0
        self.headers = []
        self._body = []
        self._head_request = head_request
        self._in_head = True
        self._head_bytes = 0
        self._buffered = 0
        self.received = False
        self.transport.write(data)

    def body(self) -> bytes:
        parts = self._body
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def fail(self, exc: TransportError) -> None:
        """End the current request with `exc` and drop the connection (never reused)."""
        self.keep_alive = False
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
        if self.track_reads:
            self.last_read = asyncio.get_running_loop().time()
        if self._waiter is None:
            # Bytes nobody asked for (no pipelining): the connection cannot be trusted.
            self.abort()
            return
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

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost settles the request

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep_alive = False
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
    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _too_large()  # httptools re-raises it as HttpParserCallbackError
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._in_head = False
        if self._head_request and self.status >= 200:
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
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self.status < 200 and self.status != 101:
            # Interim response (100 Continue, 103 Early Hints): the final one follows.
            self.headers = []
            self._in_head = True
            self._head_bytes = 0
            self._buffered = 0
            return
        self.keep_alive = self._parser.should_keep_alive()
        self._complete()

    def _complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif waiter is None:
            self.keep_alive = False  # a response to no request

    def _ends_at_eof(self) -> bool:
        if self._head_request or self.status in _NO_BODY_STATUS:
            return False
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length":
                return False
            if lower == b"transfer-encoding" and b"chunked" in value.lower():
                return False
        return True
