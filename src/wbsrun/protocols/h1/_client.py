"""Requests over the pool: cached request heads, deadlines, redirects, gzip/deflate bodies."""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Final, final
from urllib.parse import quote, urljoin, urlsplit

from wbsrun.protocols.h1._connection import H1Connection, Origin, WriteBatch, origin_key
from wbsrun.protocols.h1._errors import (
    ConnectionLost,
    DecodeFailed,
    InvalidRequest,
    ProtocolViolation,
    Timeout,
    body_too_large,
)
from wbsrun.protocols.h1._head import RawHeaders, header_pairs
from wbsrun.protocols.h1._pool import ConnectionPool

__all__ = ["H1Client", "HeaderItems", "Reply", "Target", "Timeouts", "build_head", "parse_target"]

# status, header pairs (parsed from the raw head only when read), body (already de-gzipped),
# bytes sent (request heads and bodies) and received (response heads, framing and bodies as
# they came, compressed), redirects followed included
Reply = tuple[int, RawHeaders, bytes, int, int]
HeaderItems = tuple[tuple[str, str], ...]

MAX_REDIRECTS: Final = 10
_CACHE_LIMIT: Final = 10_000
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_DEFAULTS: Final = (
    ("accept", b"Accept: */*\r\n"),
    ("accept-encoding", b"Accept-Encoding: gzip, deflate\r\n"),
    ("user-agent", b"User-Agent: wbsrun\r\n"),
)
_SAFE_PATH: Final = "/%:@!$&'()*+,;=~-._?"
_CONTENT_ENCODING: Final = b"content-encoding:"
# A body this large goes to the socket behind its head instead of being copied after it.
_WRITE_APART: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds, None = no limit: `connect` a new connection, `read` silence between bytes,
    `total` the whole request (connect included, redirects included)."""

    connect: float | None = None
    read: float | None = None
    total: float | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed absolute URL: where to connect, what to send as Host and request target."""

    origin: Origin
    authority: str
    path: str


def parse_target(url: str, credentials: bool = False) -> Target:
    """Split an http(s) URL; anything else is an InvalidRequest naming what was wrong.

    `credentials`: accept `user:password@` (aiohttp sends it as basic auth; this client not).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"bad URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidRequest(f"bad URL {url!r}: expected an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise InvalidRequest(f"bad URL {url!r}: no host")
    if not credentials and (parts.username is not None or parts.password is not None):
        raise InvalidRequest(
            f"bad URL {url!r}: credentials in URLs are not supported by the fast transport"
            " (send an Authorization header, or use transport: aiohttp)"
        )
    default = 443 if scheme == "https" else 80
    authority = parts.netloc.rpartition("@")[2]
    if port == default:
        authority = authority.rpartition(":")[0] if not authority.endswith("]") else authority
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if not path.isascii() or " " in path:
        path = quote(path, safe=_SAFE_PATH)
    return Target((scheme, host, port or default), authority, path)


def _check(text: str, what: str) -> str:
    if "\r" in text or "\n" in text:
        raise InvalidRequest(f"CR or LF in header {what}: {text!r}")
    return text


def build_head(
    method: str, target: Target, headers: HeaderItems, content_type: str | None
) -> bytes:
    """The request line and headers, without Content-Length and the closing blank line."""
    given = {name.lower() for name, _ in headers}
    lines = [f"{method} {target.path} HTTP/1.1\r\n".encode()]
    if "host" not in given:
        lines.append(f"Host: {target.authority}\r\n".encode())
    lines.extend(
        f"{_check(name, 'name')}: {_check(value, 'value')}\r\n".encode() for name, value in headers
    )
    lines.extend(line for name, line in _DEFAULTS if name not in given)
    if content_type is not None and "content-type" not in given:
        lines.append(f"Content-Type: {content_type}\r\n".encode())
    return b"".join(lines)


@final
class _Watch:
    """One timer per request that has deadlines: total, and read (silence) re-armed lazily."""

    __slots__ = ("conn", "deadline", "handle", "loop", "read")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: H1Connection,
        deadline: float | None,
        read: float | None,
    ) -> None:
        self.loop, self.conn, self.deadline, self.read = loop, conn, deadline, read
        if read is not None:
            conn.track_reads = True
            conn.last_read = loop.time()
        self.handle = loop.call_at(self._next(), self._fire)

    def _next(self) -> float:
        at = self.deadline if self.deadline is not None else float("inf")
        if self.read is not None:
            at = min(at, self.conn.last_read + self.read)
        return at

    def _fire(self) -> None:
        now = self.loop.time()
        if self.deadline is not None and now >= self.deadline:
            self.conn.timed_out("total")
        elif self.read is not None and now - self.conn.last_read >= self.read:
            self.conn.timed_out("read")
        else:
            self.handle = self.loop.call_at(self._next(), self._fire)

    def cancel(self) -> None:
        self.handle.cancel()
        self.conn.track_reads = False


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    """`zlib.decompress`, producing at most `limit` + 1 bytes (0: no limit): a small
    compressed body must not expand without bound (1 MB of zeros gzips to 1 KB)."""
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1) if limit else inflater.decompress(body)
    if limit and len(out) > limit:
        raise body_too_large(len(out), limit, "decodes to more than")
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


def _decode(head: bytes, body: bytes, limit: int = 0) -> bytes:
    """gzip/deflate bodies decompressed, as aiohttp does by default; BodyTooLarge when the
    decoded body would exceed `limit` bytes (0: no limit)."""
    # `find`, not `in`: CPython 3.11's bytes `in` is slower for the same search.
    if head.lower().find(_CONTENT_ENCODING) < 0:
        return body  # no such header: nothing to parse (a value may match: parsed below)
    for name, value in header_pairs(head):
        if len(name) == 16 and name.lower() == b"content-encoding":
            coding = value.strip().lower()
            try:
                if coding in (b"gzip", b"x-gzip"):
                    return _inflate(body, 16 + zlib.MAX_WBITS, limit)
                if coding == b"deflate":
                    try:
                        return _inflate(body, zlib.MAX_WBITS, limit)
                    except zlib.error:
                        return _inflate(body, -zlib.MAX_WBITS, limit)  # raw deflate
            except zlib.error as exc:
                raise DecodeFailed(f"cannot decode {coding.decode()} body: {exc}") from None
    return body


def _location(head: bytes) -> str | None:
    for name, value in header_pairs(head):
        if len(name) == 8 and name.lower() == b"location":
            return value.decode("latin-1")
    return None


@final
class _Prepared:
    """One request shape's bytes, built once: the head, the whole request when it has no
    body, and the head with the Content-Length of the body size last sent."""

    __slots__ = ("bare", "head", "key", "origin", "sized", "sized_length", "target")

    def __init__(self, method: str, target: Target, key: str, head: bytes) -> None:
        self.target = target
        self.origin = target.origin
        self.key = key  # the client's one `origin_key` string for this origin
        self.head = head
        self.bare = head + (b"Content-Length: 0\r\n\r\n" if method in _BODY_METHODS else b"\r\n")
        self.sized = b""
        self.sized_length = -1

    def with_body(self, body: bytes) -> tuple[bytes, bytes | None]:
        """The request as (bytes, None), or (head, body) for a body not worth copying."""
        size = len(body)
        if size != self.sized_length:
            # A scenario posts the same payload (or one of a few sizes) again and again.
            self.sized = b"%sContent-Length: %d\r\n\r\n" % (self.head, size)
            self.sized_length = size
        if size >= _WRITE_APART:
            return self.sized, body
        return self.sized + body, None


_RequestKey = tuple[str, str, HeaderItems, str | None]


@final
class H1Client:
    """Stateless apart from its cache: pools are passed per request (shared or per user)."""

    __slots__ = ("_keys", "_prepared", "_writes")

    def __init__(self) -> None:
        # Bounded (cleared when full): a scenario renders the same few URLs and header sets
        # over and over, so a request usually costs one dict look-up, not a rebuild.
        self._prepared: dict[_RequestKey, _Prepared] = {}
        # One `origin_key` string per origin for every prepared request: the pool's idle map
        # finds it by identity, its hash cached (a GET and a POST to one URL would otherwise
        # make equal strings, not the same one).
        self._keys: dict[str, str] = {}
        # Request writes of this client's loop, sent together once an iteration (WriteBatch).
        self._writes: WriteBatch | None = None

    def _batch(self, waiter: asyncio.Future[None]) -> WriteBatch:
        writes = self._writes
        loop = waiter.get_loop()
        if writes is None or writes.loop is not loop:
            writes = self._writes = WriteBatch(loop)  # first use, or a client reused on a new loop
        return writes

    def target(self, url: str) -> Target:
        """Where `url` goes, as a request to it would (InvalidRequest if it cannot)."""
        return parse_target(url)

    def _prepare(self, key: _RequestKey) -> _Prepared:
        method, url, headers, content_type = key
        target = parse_target(url)
        keys = self._keys
        fresh = origin_key(target.origin)
        okey = keys.get(fresh)
        if okey is None:
            if len(keys) >= _CACHE_LIMIT:
                keys.clear()
            okey = keys[fresh] = fresh
        prepared = _Prepared(
            method, target, okey, build_head(method, target, headers, content_type)
        )
        if len(self._prepared) >= _CACHE_LIMIT:
            self._prepared.clear()
        self._prepared[key] = prepared
        return prepared

    async def request(
        self,
        pool: ConnectionPool,
        method: str,
        url: str,
        headers: HeaderItems = (),
        body: bytes | None = None,
        content_type: str | None = None,
        timeouts: Timeouts | None = None,
        follow_redirects: bool = False,
        max_body: int = 0,
    ) -> Reply:
        """One request (and its redirects when asked); raises TransportError subclasses.

        `headers` is a tuple of (name, value) pairs: hashable, so it keys the request cache.
        `max_body`: the largest body accepted, as received and as decoded (0: no limit).
        """
        key = (method, url, headers, content_type)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepare(key)
        if timeouts is not None or follow_redirects:
            return await self._request(
                pool,
                prepared,
                method,
                url,
                headers,
                body,
                content_type,
                timeouts,
                follow_redirects,
                max_body,
            )
        if body is None:
            data, tail = prepared.bare, None
        else:
            data, tail = prepared.with_body(body)
        conn = pool.acquire_nowait(prepared.key)
        if conn is None:
            loop = asyncio.get_running_loop()
            return await self._exchange(
                pool, loop, prepared, data, tail, method, None, None, 0, max_body
            )
        # The usual case, inline (one coroutine for the whole request): an idle connection,
        # no deadline, no redirect.
        conn.uses += 1
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lost = False
        try:
            conn.send(data, waiter, method == "HEAD", tail, self._batch(waiter), max_body)
            await waiter
        except ConnectionLost:
            pool.release(conn, False)
            if conn.received:
                raise
            lost = True  # retried below: a compiled coroutine must not suspend in a handler
        except BaseException:
            pool.release(conn, False)
            raise
        if lost:
            # A kept-alive connection the server closed while it sat idle: the request never
            # reached it, so one retry on a fresh connection is safe.
            loop = asyncio.get_running_loop()
            return await self._exchange(
                pool, loop, prepared, data, tail, method, None, None, 1, max_body
            )
        status, head, raw, wire = conn.status, conn.head, conn.body(), conn.wire
        pool.release(conn, True)
        sent = len(data) if tail is None else len(data) + len(tail)
        return (
            status,
            RawHeaders(head),
            _decode(head, raw, max_body) if raw else raw,
            sent,
            wire,
        )

    async def _request(
        self,
        pool: ConnectionPool,
        prepared: _Prepared,
        method: str,
        url: str,
        headers: HeaderItems,
        body: bytes | None,
        content_type: str | None,
        timeouts: Timeouts | None,
        follow_redirects: bool,
        max_body: int,
    ) -> Reply:
        """With deadlines or redirects to follow."""
        loop = asyncio.get_running_loop()
        deadline = None
        if timeouts is not None and timeouts.total is not None:
            deadline = loop.time() + timeouts.total
        sent = received = 0  # of the redirects followed before
        for _ in range(MAX_REDIRECTS + 1):
            if body is None:
                data, tail = prepared.bare, None
            else:
                data, tail = prepared.with_body(body)
            reply = await self._exchange(
                pool, loop, prepared, data, tail, method, timeouts, deadline, 0, max_body
            )
            status, headers_in, raw, out, came = reply
            sent += out
            received += came
            if not follow_redirects or status not in _REDIRECTS:
                return status, headers_in, raw, sent, received
            location = _location(headers_in.head)
            if location is None:
                return status, headers_in, raw, sent, received
            url = urljoin(url, location)
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, body, content_type = "GET", None, None
            key = (method, url, headers, content_type)
            found = self._prepared.get(key)
            prepared = found if found is not None else self._prepare(key)
        raise ProtocolViolation(f"more than {MAX_REDIRECTS} redirects")

    @staticmethod
    async def _acquire_by(
        pool: ConnectionPool, prepared: _Prepared, budget: float | None, deadline: float
    ) -> H1Connection:
        """Waiting for a pooled connection (at the pool's limit) counts against `total`."""
        try:
            async with asyncio.timeout_at(deadline):
                return await pool.acquire(prepared.origin, budget, prepared.key)
        except TimeoutError:
            raise Timeout("total timeout before a connection was free") from None

    async def _exchange(
        self,
        pool: ConnectionPool,
        loop: asyncio.AbstractEventLoop,
        prepared: _Prepared,
        data: bytes,
        tail: bytes | None,
        method: str,
        timeouts: Timeouts | None,
        deadline: float | None,
        first_attempt: int,
        max_body: int,
    ) -> Reply:
        connect = timeouts.connect if timeouts is not None else None
        read = timeouts.read if timeouts is not None else None
        for attempt in range(first_attempt, 2):
            conn = pool.acquire_nowait(prepared.key)  # the usual case: no coroutine
            if conn is None:
                if deadline is None:
                    conn = await pool.acquire(prepared.origin, connect, prepared.key)
                else:
                    left = max(deadline - loop.time(), 0.0)
                    budget = left if connect is None else min(connect, left)
                    conn = await self._acquire_by(pool, prepared, budget, deadline)
            reused = conn.uses > 0
            conn.uses += 1
            waiter: asyncio.Future[None] = loop.create_future()
            watch = (
                _Watch(loop, conn, deadline, read)
                if deadline is not None or read is not None
                else None
            )
            retry = False
            try:
                conn.send(data, waiter, method == "HEAD", tail, self._batch(waiter), max_body)
                await waiter
            except ConnectionLost:
                pool.release(conn, False)
                # A kept-alive connection the server closed while it sat idle: the request
                # never reached it, so one retry on a fresh connection is safe.
                if attempt != 0 or not reused or conn.received:
                    raise
                retry = True  # not `continue` here: mypyc compiles no continue in try/finally
            except BaseException:
                pool.release(conn, False)
                raise
            finally:
                if watch is not None:
                    watch.cancel()
            if retry:
                continue
            status, head, body, wire = conn.status, conn.head, conn.body(), conn.wire
            pool.release(conn, True)
            sent = len(data) if tail is None else len(data) + len(tail)
            return (
                status,
                RawHeaders(head),
                _decode(head, body, max_body) if body else body,
                sent,
                wire,
            )
        raise AssertionError("unreachable")  # pragma: no cover
