"""The fast transport's client and pool (wbsrun.protocols.h1) against the hostile server: keep-alive
reuse, bodies that end in every legal way, limits, cancellation, TLS, and `statistics()` showing
no connection left behind after any failure."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from transport_kit import HostileServer
from wbsrun.core import codes
from wbsrun.protocols.h1 import (
    PROTOCOL_ERROR,
    ConnectionPool,
    H1Client,
    InvalidRequest,
    PoolStatistics,
    Reply,
    Timeouts,
    TransportError,
)

T = TypeVar("T")


def drive(body: Callable[[H1Client, ConnectionPool], Awaitable[T]], **pool_kw: object) -> T:
    """Run `body` with a fresh client and pool under a deadline; the pool is closed after."""

    async def main() -> T:
        pool = ConnectionPool(**pool_kw)  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(15):
                return await body(H1Client(), pool)
        finally:
            await pool.aclose()
            assert pool.statistics().open == 0

    return asyncio.run(main())


async def settled(pool: ConnectionPool) -> PoolStatistics:
    """Statistics once closes in flight have been delivered (connection_lost is a callback)."""
    for _ in range(50):
        stats = pool.statistics()
        if stats.active == 0 and stats.connecting == 0:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)
    return pool.statistics()


def test_keep_alive_connection_is_reused_for_sequential_requests(hostile: HostileServer) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> PoolStatistics:
        for _ in range(5):
            status, _, raw, *_ = await client.request(pool, "GET", hostile.url("/ok"))
            assert (status, raw) == (200, b'{"ok": true}')
        return await settled(pool)

    stats = drive(body)
    assert (stats.opened_total, stats.reused_total, stats.idle, stats.active) == (1, 4, 1, 0)
    assert hostile.accepted == 1


def test_requests_of_every_method_to_one_origin_share_its_connection_and_origin_key(
    hostile: HostileServer,
) -> None:
    pool_keys: list[str] = []

    async def body(client: H1Client, pool: ConnectionPool) -> PoolStatistics:
        for method in ("GET", "POST", "DELETE", "GET"):
            status, _, _, *_ = await client.request(pool, method, hostile.url("/ok"))
            assert status == 200
        pool_keys.extend(pool._idle)
        return await settled(pool)

    client = H1Client()
    stats = drive(lambda _, pool: body(client, pool))
    assert (stats.opened_total, stats.reused_total, stats.idle) == (1, 3, 1)
    # One key string for the origin of every prepared request and of the connection: the
    # pool's idle map finds it by identity (the prepared requests keep the strings alive, so
    # equal ids mean one object).
    keys = {id(p.key) for p in client._prepared.values()}
    assert len(client._prepared) == 3
    assert len(keys) == 1
    assert list(pool_keys) == [next(iter(client._prepared.values())).key]
    assert pool_keys[0] is next(iter(client._prepared.values())).key


@pytest.mark.parametrize(
    ("method", "path"),
    [("HEAD", "/head"), ("GET", "/no-content"), ("GET", "/not-modified"), ("GET", "/interim")],
)
def test_answers_without_a_body_leave_the_connection_usable(
    hostile: HostileServer, method: str, path: str
) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> tuple[Reply, Reply]:
        first = await client.request(pool, method, hostile.url(path))
        second = await client.request(pool, "GET", hostile.url("/ok"))
        return first, second

    first, second = drive(body)
    assert first[2] in (b"", b"done")
    assert second[0] == 200
    assert hostile.accepted == 1  # the second request went over the same connection


@pytest.mark.parametrize("path", ["/close", "/until-eof"])
def test_connection_close_and_eof_bodies_are_read_and_not_reused(
    hostile: HostileServer, path: str
) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> PoolStatistics:
        status, _, raw, *_ = await client.request(pool, "GET", hostile.url(path))
        assert status == 200
        assert raw in (b"bye", b"body until close")
        await client.request(pool, "GET", hostile.url("/ok"))
        return await settled(pool)

    stats = drive(body)
    assert stats.opened_total == 2
    assert stats.reused_total == 0
    assert hostile.accepted == 2


FAILURES = [
    ("/garbage", None, PROTOCOL_ERROR),
    ("/huge-headers", None, PROTOCOL_ERROR),
    ("/truncated", None, codes.RESOURCE_UNAVAILABLE),
    ("/close-mid", None, codes.RESOURCE_UNAVAILABLE),
    ("/reset", None, codes.RESOURCE_UNAVAILABLE),
    ("/dribble", Timeouts(total=0.3), codes.NETWORK_TIMEOUT),
    ("/dribble", Timeouts(read=0.02), codes.NETWORK_TIMEOUT),
    ("/silent", Timeouts(read=0.2), codes.NETWORK_TIMEOUT),
]


@pytest.mark.parametrize(("path", "timeouts", "code"), FAILURES)
def test_failed_request_raises_its_code_and_leaves_no_connection_open(
    hostile: HostileServer, path: str, timeouts: Timeouts | None, code: str
) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> tuple[str, PoolStatistics]:
        with pytest.raises(TransportError) as info:
            await client.request(pool, "GET", hostile.url(path), timeouts=timeouts)
        return info.value.code, await settled(pool)

    got, stats = drive(body)
    assert got == code
    assert (stats.open, stats.idle, stats.active) == (0, 0, 0)
    assert stats.closed_total == stats.opened_total == 1


def test_undecodable_body_fails_but_its_intact_connection_stays_idle(
    hostile: HostileServer,
) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> tuple[str, PoolStatistics]:
        with pytest.raises(TransportError) as info:
            await client.request(pool, "GET", hostile.url("/bad-gzip"))
        return info.value.code, await settled(pool)

    got, stats = drive(body)
    assert got == codes.RESOURCE_UNAVAILABLE
    assert (stats.open, stats.idle, stats.active) == (1, 1, 0)


def test_the_read_timeout_is_silence_not_duration(hostile: HostileServer) -> None:
    """A byte every 50 ms keeps a 0.2 s read timeout alive; a 0.3 s total deadline does not."""

    async def body(client: H1Client, pool: ConnectionPool) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransportError) as info:
            await client.request(
                pool, "GET", hostile.url("/dribble"), timeouts=Timeouts(read=0.2, total=0.6)
            )
        assert "total" in str(info.value)
        return loop.time() - started

    assert 0.55 <= drive(body) < 2.0


def test_cancelled_request_closes_its_connection(hostile: HostileServer) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> PoolStatistics:
        task = asyncio.create_task(client.request(pool, "GET", hostile.url("/silent")))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await settled(pool)

    stats = drive(body)
    assert (stats.open, stats.active) == (0, 0)


def test_limit_caps_connections_and_queued_requests_all_complete(hostile: HostileServer) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> list[int]:
        replies = await asyncio.gather(
            *(client.request(pool, "GET", hostile.url("/ok")) for _ in range(20))
        )
        return [r[0] for r in replies]

    assert drive(body, limit=2) == [200] * 20
    assert hostile.accepted <= 2


def test_stale_keep_alive_connection_is_retried_once_on_a_new_one(hostile: HostileServer) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> PoolStatistics:
        await client.request(pool, "GET", hostile.url("/ok"))
        hostile.loop.call_soon_threadsafe(hostile.drop_connections)
        await asyncio.sleep(0.2)  # the server closed the idle connection meanwhile
        status, _, _, *_ = await client.request(pool, "GET", hostile.url("/ok"))
        assert status == 200
        return await settled(pool)

    stats = drive(body)
    assert stats.opened_total == 2


def test_header_with_line_break_is_refused_before_sending(hostile: HostileServer) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> None:
        with pytest.raises(InvalidRequest):
            await client.request(pool, "GET", hostile.url("/ok"), (("x-a", "1\r\nx-b: 2"),))

    drive(body)
    assert hostile.accepted == 0


def test_tls_with_a_trusted_self_signed_certificate_round_trips(
    tls_hostile: HostileServer, self_signed: tuple[Path, Path]
) -> None:
    trusting = ssl.create_default_context(cafile=str(self_signed[0]))

    async def body(client: H1Client, pool: ConnectionPool) -> Reply:
        await client.request(pool, "GET", tls_hostile.url("/ok"))
        return await client.request(pool, "GET", tls_hostile.url("/chunked"))

    status, _, raw, *_ = drive(body, ssl_context=trusting)
    assert (status, raw) == (200, b"hello world")
    assert tls_hostile.accepted == 1


def test_tls_with_an_untrusted_certificate_is_refused(tls_hostile: HostileServer) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> PoolStatistics:
        with pytest.raises(TransportError) as info:
            await client.request(pool, "GET", tls_hostile.url("/ok"))
        assert info.value.code == codes.RESOURCE_UNAVAILABLE
        return await settled(pool)

    stats = drive(body)
    assert (stats.open, stats.failed_connects) == (0, 1)


def test_waiting_for_a_connection_at_the_limit_counts_against_the_total_timeout(
    hostile: HostileServer,
) -> None:
    async def body(client: H1Client, pool: ConnectionPool) -> tuple[str, float]:
        holder = asyncio.create_task(client.request(pool, "GET", hostile.url("/silent")))
        await asyncio.sleep(0.1)  # the only connection is now busy, silently
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransportError) as info:
            await client.request(pool, "GET", hostile.url("/ok"), timeouts=Timeouts(total=0.3))
        waited = loop.time() - started
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        assert pool.statistics().waiting == 0
        return info.value.code, waited

    code, waited = drive(body, limit=1)
    assert code == codes.NETWORK_TIMEOUT
    assert 0.25 <= waited < 2.0
