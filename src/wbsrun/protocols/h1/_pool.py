"""Keep-alive connection pool per origin (scheme, host, port), with an optional total limit."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from typing import final

from wbsrun.protocols.h1._connection import H1Connection, Origin, origin_key
from wbsrun.protocols.h1._errors import ConnectFailed, Timeout, os_reason

__all__ = ["ConnectionPool", "PoolStatistics", "default_ssl_context"]

_DEFAULT_SSL: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """The system's trust store with hostname checks, built once (it costs milliseconds)."""
    global _DEFAULT_SSL
    if _DEFAULT_SSL is None:
        _DEFAULT_SSL = ssl.create_default_context()
    return _DEFAULT_SSL


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot: `open` = `idle` + `active`; the totals count since the pool was made."""

    open: int
    idle: int
    active: int
    connecting: int
    waiting: int
    opened_total: int
    reused_total: int
    closed_total: int
    failed_connects: int


@final
class ConnectionPool:
    """Hands out one idle or new connection per request; takes it back when the response is read.

    `limit` caps open + connecting connections across all origins (0 = no cap), as aiohttp's
    `TCPConnector(limit=…)` does; requests beyond it wait for a release. Idle connections are
    reused last-in first-out, so a quiet pool lets the oldest ones time out on the server.
    """

    def __init__(self, limit: int = 0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.limit = limit
        self._ssl = ssl_context
        # By `origin_key`: one string per origin, found by identity.
        self._idle: dict[str, list[H1Connection]] = {}
        self._open: set[H1Connection] = set()
        self._connecting = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._opened = 0
        self._reused = 0
        self._closed = 0
        self._failed = 0
        self._shut = False
        self._drained: asyncio.Future[None] | None = None

    def statistics(self) -> PoolStatistics:
        idle = sum(len(conns) for conns in self._idle.values())
        return PoolStatistics(
            open=len(self._open),
            idle=idle,
            active=len(self._open) - idle,
            connecting=self._connecting,
            waiting=len(self._waiters),
            opened_total=self._opened,
            reused_total=self._reused,
            closed_total=self._closed,
            failed_connects=self._failed,
        )

    def acquire_nowait(self, key: str) -> H1Connection | None:
        """An idle connection to the origin of `key` (`origin_key`), or None (then `acquire`
        connects or waits)."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                self._reused += 1
                return conn
        return None

    async def acquire(
        self, origin: Origin, connect_timeout: float | None, key: str | None = None
    ) -> H1Connection:
        """An open connection to `origin`: an idle one if any, else a new one. `key`: its
        `origin_key` where the caller holds it already."""
        if key is None:
            key = origin_key(origin)
        while True:
            conn = self.acquire_nowait(key)
            if conn is not None:
                return conn
            if not self.limit or len(self._open) + self._connecting < self.limit:
                return await self._connect(origin, key, connect_timeout)
            if self._evict_idle():
                continue
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: pass the turn on
                raise

    def release(self, conn: H1Connection, reusable: bool) -> None:
        """Give a connection back after its response: kept if `reusable`, else closed."""
        if reusable and conn.keep_alive and not conn.closed and not self._shut:
            idle = self._idle.get(conn.key)
            if idle is None:
                self._idle[conn.key] = [conn]
            else:
                idle.append(conn)
        else:
            conn.abort() if not reusable else conn.close()
        if self._waiters:
            self._wake()

    async def aclose(self, grace: float = 1.0) -> None:
        """Close idle connections now and wait (up to `grace`) for every transport to go."""
        self._shut = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        if self._open:
            self._drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._drained
        for conn in list(self._open):
            conn.abort()
        await asyncio.sleep(0)

    # -- internals ---------------------------------------------------------------------------
    async def _connect(self, origin: Origin, key: str, limit_s: float | None) -> H1Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        conn = H1Connection(origin, self._lost, key)
        tls = None
        if scheme == "https":
            tls = self._ssl if self._ssl is not None else default_ssl_context()
        self._connecting += 1
        try:
            async with asyncio.timeout(limit_s):
                await loop.create_connection(
                    lambda: conn, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError as timeout:
            self._failed += 1
            conn.abort()
            raise Timeout(f"connect timeout to {host}:{port}") from timeout
        # One name per handler: compiled (mypyc), a name bound by two handlers takes the
        # first one's type, and the second handler's exception fails that type check.
        except (OSError, ssl.SSLError) as exc:
            self._failed += 1
            raise ConnectFailed(f"cannot connect to {host}:{port}: {os_reason(exc)}") from exc
        except BaseException:
            self._failed += 1
            conn.abort()
            raise
        finally:
            self._connecting -= 1
            self._wake()
        self._opened += 1
        self._open.add(conn)
        return conn

    def _lost(self, conn: H1Connection) -> None:
        if conn in self._open:
            self._open.discard(conn)
            self._closed += 1
            idle = self._idle.get(conn.key)
            if idle and conn in idle:
                idle.remove(conn)
            if not self._open and self._drained is not None and not self._drained.done():
                self._drained.set_result(None)
            self._wake()

    def _evict_idle(self) -> bool:
        """At the limit with a request for another origin: close one idle connection."""
        for conns in self._idle.values():
            if conns:
                conn = conns.pop(0)
                conn.close()
                self._open.discard(conn)
                self._closed += 1
                return True
        return False

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
