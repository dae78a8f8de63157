"""What the `http` component asks of a transport, and the fast one (protocols/h1) behind it."""

from __future__ import annotations

import ssl
from collections.abc import Coroutine, Mapping
from typing import Any, Final, Protocol, final

from wbsrun.core.ports import UserHandle
from wbsrun.protocols.h1 import ConnectionPool, H1Client, HeaderItems, PoolStatistics, Timeouts

__all__ = ["DEFAULT_TRANSPORT", "TRANSPORTS", "FastTransport", "HeaderItems", "Transport"]

TRANSPORTS: Final = ("fast", "aiohttp")
DEFAULT_TRANSPORT: Final = "fast"


class Transport(Protocol):
    """Sends one request (following redirects when asked) and returns (status, headers, body,
    bytes sent, bytes received): the bytes on the wire, redirects included (the aiohttp
    transport's are reckoned from what it reports: see docs/result.md "Bytes").

    `headers` is whatever HttpResult can decode lazily (h1.RawHeaders or a multidict); the body
    is already gzip/deflate-decoded. Failures are raised as `h1.TransportError` subclasses,
    whose `code` is the DSL §9 error code, whichever transport raised them. A body larger
    than `max_body` bytes (announced, received or decoded) raises `h1.BodyTooLarge` and drops
    the connection without reading the rest.
    """

    name: str

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
    ) -> tuple[int, Any, bytes, int, int]: ...

    def statistics(self) -> Mapping[str, int]: ...

    async def release_user(self, user: UserHandle) -> None: ...

    async def close(self) -> None: ...


@final
class FastTransport:
    """HTTP/1.1 on asyncio Protocols + httptools: one shared pool, or a private one per user."""

    name = "fast"
    _STATE_KEY: Final = "http.pool"

    def __init__(self, connection_limit: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._client = H1Client()
        self._ssl = ssl_context  # None: the system's trust store (h1.default_ssl_context)
        self._shared = ConnectionPool(limit=connection_limit, ssl_context=ssl_context)
        # Private pools of users not released yet: closed with the transport at the end.
        self._private: set[ConnectionPool] = set()

    def _pool(self, user: UserHandle) -> ConnectionPool:
        if not user.private_session:
            return self._shared
        pool: ConnectionPool | None = user.state.get(self._STATE_KEY)
        if pool is None:
            pool = user.state[self._STATE_KEY] = ConnectionPool(ssl_context=self._ssl)
            self._private.add(pool)
        return pool

    def request(
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
    ) -> Coroutine[Any, Any, tuple[int, Any, bytes, int, int]]:
        # The client's coroutine itself: one coroutine frame less per request.
        if user.private_session:
            pool: ConnectionPool | None = user.state.get(self._STATE_KEY)
            if pool is None:
                pool = self._pool(user)
        else:
            pool = self._shared
        return self._client.request(
            pool, method, url, headers, body, content_type, timeouts, follow_redirects, max_body
        )

    def shared_pool(self) -> ConnectionPool:
        return self._shared

    def statistics(self) -> Mapping[str, int]:
        stats: PoolStatistics = self._shared.statistics()
        return {
            "open": stats.open,
            "idle": stats.idle,
            "active": stats.active,
            "opened_total": stats.opened_total,
            "private_pools": len(self._private),
        }

    async def release_user(self, user: UserHandle) -> None:
        pool: ConnectionPool | None = user.state.pop(self._STATE_KEY, None)
        if pool is not None:
            self._private.discard(pool)
            await pool.aclose()

    async def close(self) -> None:
        await self._shared.aclose()
        for pool in list(self._private):
            await pool.aclose(grace=0.1)
        self._private.clear()
