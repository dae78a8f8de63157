"""The aiohttp transport (`transport: aiohttp`): one shared session, or a private one per user."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any, Final, final

import aiohttp
from yarl import URL

from wbsrun.core.ports import UserHandle
from wbsrun.protocols._transport import HeaderItems
from wbsrun.protocols.h1 import (
    ConnectFailed,
    ConnectionLost,
    InvalidRequest,
    ProtocolViolation,
    Timeout,
    Timeouts,
    TransportError,
    body_too_large,
    os_reason,
)

__all__ = ["AiohttpTransport", "translate"]

_URL_CACHE: Final = 10_000
_MAX_REDIRECTS: Final = 10


def translate(exc: BaseException) -> TransportError:
    """aiohttp's failures as the fast transport's, so both yield the same error codes."""
    # Order matters: aiohttp's timeout errors are also OSErrors / ClientErrors, and its
    # certificate errors are also ValueErrors (through ssl.SSLCertVerificationError).
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError):
        return Timeout(text)
    if isinstance(exc, aiohttp.ClientConnectorError):
        # The errno's text, as the fast transport says it (`Connection refused`).
        return ConnectFailed(f"{text}: {os_reason(exc.os_error)}")
    if isinstance(exc, aiohttp.InvalidURL):
        return InvalidRequest(text)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientOSError
        | aiohttp.ClientPayloadError
        | ConnectionError,
    ):
        return ConnectionLost(text)
    if isinstance(exc, ValueError | TypeError):
        return InvalidRequest(text)
    return ProtocolViolation(text)


async def _read(resp: aiohttp.ClientResponse, limit: int, method: str) -> bytes:
    """The body, as the fast transport bounds it: over `limit` bytes (0: none) announced or
    received (decoded: aiohttp's stream is), BodyTooLarge and the connection closed, not
    released to the pool with the rest unread. Not `resp.read()`: it reads all there is."""
    if not limit:
        return await resp.read()
    length = resp.content_length
    bodiless = method == "HEAD" or resp.status in (204, 304)  # a length, but no body
    if length is not None and length > limit and not bodiless:
        resp.close()
        raise body_too_large(length, limit, "announces")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await resp.content.readany()  # what is buffered: at most aiohttp's high water
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            chunks.clear()
            resp.close()
            raise body_too_large(size, limit, "reached")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _head_bytes(first_line: int, headers: Any) -> int:
    """A head's size: its first line (with its CRLF), `name: value\r\n` per header, the
    blank line."""
    size = first_line + 2
    for name, value in headers:
        size += len(name) + len(value) + 4
    return size


def _wire(resp: aiohttp.ClientResponse, body_out: int, body_in: int) -> tuple[int, int]:
    """The bytes sent and received, reckoned from what aiohttp reports (it does not count
    them): each request's line, headers as sent and body; each response's status line, raw
    headers and body as announced by Content-Length, else as decoded (a chunked or compressed
    body without a length: the framing and compression are not seen)."""
    sent = received = 0
    for r in (*resp.history, resp):
        info = r.request_info
        line = len(info.method) + len(info.url.raw_path_qs) + 12  # "M /p HTTP/1.1\r\n"
        sent += _head_bytes(line, ((k, v) for k, v in info.headers.items()))
        received += _head_bytes(15 + len(r.reason or ""), r.raw_headers)  # "HTTP/1.1 200 OK\r\n"
        length = r.content_length
        if r is resp:
            sent += body_out
            received += length if length is not None else body_in
        elif length is not None:
            received += length
    return sent, received


@final
class AiohttpTransport:
    """aiohttp sessions; kept for what the fast transport does not do (see architecture.md)."""

    name = "aiohttp"
    _STATE_KEY: Final = "http.session"

    def __init__(self, connection_limit: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._limit = connection_limit
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._shared: aiohttp.ClientSession | None = None
        # Private sessions of users not released yet: closed with the transport at the end.
        self._private: set[aiohttp.ClientSession] = set()
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}
        # Parsed URLs by text: yarl parsing (host, IP validation) costs ~10 µs a request, and
        # a scenario renders the same few URLs again and again. Bounded: cleared when full.
        self._urls: dict[str, URL] = {}

    def _session(self, user: UserHandle) -> aiohttp.ClientSession:
        if user.private_session:
            session: aiohttp.ClientSession | None = user.state.get(self._STATE_KEY)
            if session is None:
                # Cookies live in the http component's jar (protocols/cookies.py), as on
                # the fast transport: aiohttp's own would store them a second time.
                session = user.state[self._STATE_KEY] = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl),
                    timeout=aiohttp.ClientTimeout(total=None),
                    cookie_jar=aiohttp.DummyCookieJar(),
                )
                self._private.add(session)
            return session
        if self._shared is None:
            # Cookies are per user, in the http component's jar: the session keeps none.
            self._shared = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._shared

    def _timeout(self, timeouts: Timeouts) -> aiohttp.ClientTimeout:
        cached = self._timeouts.get(timeouts)
        if cached is None:
            cached = self._timeouts[timeouts] = aiohttp.ClientTimeout(
                total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.read
            )
        return cached

    def _url(self, url: str) -> URL:
        target = self._urls.get(url)
        if target is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            target = self._urls[url] = URL(url)
        return target

    async def request(
        self,
        user: UserHandle,
        method: str,
        url: str,
        headers: HeaderItems,
        body: bytes | None,
        content_type: str | None,
        timeouts: Timeouts | None,
        follow_redirects: bool,
        max_body: int,
    ) -> tuple[int, Any, bytes, int, int]:
        kwargs: dict[str, Any] = {"allow_redirects": follow_redirects}
        if follow_redirects:
            kwargs["max_redirects"] = _MAX_REDIRECTS
        if content_type is not None and not any(k.lower() == "content-type" for k, _ in headers):
            headers = (*headers, ("Content-Type", content_type))
        if headers:
            kwargs["headers"] = headers
        if body is not None:
            kwargs["data"] = body
        if timeouts is not None:
            kwargs["timeout"] = self._timeout(timeouts)
        try:
            target = self._url(url)
            async with self._session(user).request(method, target, **kwargs) as resp:
                raw = await _read(resp, max_body, method)
                sent, received = _wire(resp, len(body) if body is not None else 0, len(raw))
                return resp.status, resp.headers, raw, sent, received
        except (aiohttp.ClientError, OSError, ValueError, TypeError, TimeoutError) as exc:
            raise translate(exc) from exc

    def statistics(self) -> Mapping[str, int]:
        return {}

    async def release_user(self, user: UserHandle) -> None:
        session: aiohttp.ClientSession | None = user.state.pop(self._STATE_KEY, None)
        if session is not None:
            self._private.discard(session)
            await session.close()

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()
            self._shared = None
        for session in list(self._private):
            await session.close()
        self._private.clear()
        # Let aiohttp finish closing transports before the loop goes away.
        await asyncio.sleep(0)
