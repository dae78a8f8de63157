"""The fast transport keeps a response head as raw bytes and parses its headers only when read:
the pairs must be exactly those httptools reports while streaming, however the response is cut
into chunks, and the request bytes it prepares once must stay right for every body."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import httptools
import pytest
import uvloop

from transport_kit import HostileServer, runtime
from wbsrun.core.ports import UserHandle
from wbsrun.protocols.h1 import (
    MAX_HEAD_BYTES,
    ConnectionPool,
    H1Client,
    H1Connection,
    ProtocolViolation,
    RawHeaders,
    header_pairs,
)
from wbsrun.protocols.http import HttpComponent, HttpResult

Pairs = list[tuple[bytes, bytes]]


class _Streaming:
    """What the transport reported before: headers collected by httptools' `on_header`."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: Pairs = []
        self.body = b""
        self.status = 0
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.status:  # trailers come after the head: not headers (nor for aiohttp)
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if self.status < 200:
            self.headers, self.status = [], 0
        else:
            self.done = True


class _Wire:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, data: tuple[bytes, ...]) -> None:
        self.written.append(b"".join(data))

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


RESPONSES = [
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}",
    b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"\r\n\r\n\r\nHTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 1\r\n\r\nz",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 4\r\n\r\ndone",
    b"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Spaces:   a b \t \r\nX-Obs: caf\xe9\r\n"
    b"Set-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Looks-Like-A-Head-End: \\r\\n\\r\\n\r\nContent-Length: 4\r\n\r\n"
    b"\r\n\r\n",
]


def _cuts(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    for at in range(1, len(data)):
        yield [data[:at], data[at:]]
    yield [data[i : i + 1] for i in range(len(data))]


def _exchange(loop: asyncio.AbstractEventLoop, chunks: list[bytes]) -> H1Connection:
    conn = H1Connection(("http", "h", 80), lambda _: None)
    conn.connection_made(_Wire())  # type: ignore[arg-type]
    waiter: asyncio.Future[None] = loop.create_future()
    conn.send(b"GET / HTTP/1.1\r\n\r\n", waiter, False)
    for chunk in chunks:
        conn.data_received(chunk)
    assert waiter.done()
    assert waiter.exception() is None
    return conn


@pytest.mark.parametrize("response", RESPONSES)
def test_raw_heads_give_the_headers_httptools_streams_in_every_cut(response: bytes) -> None:
    expected = _Streaming()
    expected.parser.feed_data(response)
    assert expected.done
    loop = asyncio.new_event_loop()
    try:
        for chunks in _cuts(response):
            conn = _exchange(loop, chunks)
            assert conn.status == expected.status
            assert header_pairs(conn.head) == expected.headers
            assert list(RawHeaders(conn.head)) == expected.headers
            assert conn.body() == expected.body
            assert conn.head.startswith(b"HTTP/1.1 2")
            assert conn.head.endswith(b"\r\n\r\n")
    finally:
        loop.close()


def test_the_head_limit_counts_header_names_and_values_as_before() -> None:
    def head_of(field_bytes: int) -> bytes:
        value = b"v" * (field_bytes - len(b"X-Big") - len(b"Content-Length") - 1)
        return b"HTTP/1.1 200 OK\r\nX-Big: " + value + b"\r\nContent-Length: 0\r\n\r\n"

    loop = asyncio.new_event_loop()
    try:
        conn = _exchange(loop, [head_of(MAX_HEAD_BYTES)])  # longer than the limit on the wire
        assert conn.status == 200
        conn = H1Connection(("http", "h", 80), lambda _: None)
        conn.connection_made(_Wire())  # type: ignore[arg-type]
        waiter: asyncio.Future[None] = loop.create_future()
        conn.send(b"GET / HTTP/1.1\r\n\r\n", waiter, False)
        conn.data_received(head_of(MAX_HEAD_BYTES + 1))
        assert isinstance(waiter.exception(), ProtocolViolation)
    finally:
        loop.close()


def test_a_result_reads_raw_heads_and_shrinking_keeps_them_as_they_are() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Id: 7\r\nX-Id: 8\r\n\r\n"
    raw = RawHeaders(head)
    result = HttpResult(200, b'{"id": 7}', raw, 1.23456)
    before = dict(result)
    assert before["headers"] == {"content-type": "application/json", "x-id": "8"}
    assert before["latency_ms"] == result.latency_ms == 1.235
    result.shrink()
    assert result._headers is raw
    assert raw.head is head
    assert dict(result) == before
    assert raw == [(b"Content-Type", b"application/json"), (b"X-Id", b"7"), (b"X-Id", b"8")]
    assert len(raw) == 3
    assert raw[1] == (b"X-Id", b"7")


def test_shrinking_pairs_with_a_nul_inside_keeps_the_pairs() -> None:
    pairs = [(b"X-A", b"a\0b")]
    result = HttpResult(200, b"", pairs, 0.0)
    result.shrink()
    assert result._headers is pairs
    assert result["headers"] == {"x-a": "a\0b"}


async def _echo_server() -> tuple[asyncio.Server, int, list[tuple[bytes, bytes]]]:
    """Answers each request with the sha256 of its body; records (head, body) per request."""
    seen: list[tuple[bytes, bytes]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                seen.append((head, body))
                digest = gzip.compress(hashlib.sha256(body).hexdigest().encode())
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(digest), digest)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def test_prepared_requests_carry_each_body_whole_with_its_own_length() -> None:
    bodies = [b"", b"a", b"bb", b"a", b"x" * 70_000, b"y" * 70_000, b"z" * 200_000, b"a"]

    async def main() -> tuple[list[tuple[int, bytes]], list[tuple[bytes, bytes]]]:
        server, port, seen = await _echo_server()
        client, pool = H1Client(), ConnectionPool()
        url = f"http://127.0.0.1:{port}/asset"
        try:
            replies = []
            async with asyncio.timeout(10):
                for body in bodies:
                    status, _, digest, *_ = await client.request(
                        pool, "POST", url, (("x-n", "1"),), body, "application/json"
                    )
                    replies.append((status, digest))
                status, _, digest, *_ = await client.request(pool, "POST", url, (("x-n", "1"),))
                replies.append((status, digest))
            return replies, seen
        finally:
            await pool.aclose()
            server.close()

    replies, seen = asyncio.run(main())
    expected = [hashlib.sha256(b).hexdigest().encode() for b in [*bodies, b""]]
    assert replies == [(200, digest) for digest in expected]
    assert [body for _, body in seen] == [*bodies, b""]
    for head, body in seen:
        assert b"\r\nContent-Length: %d\r\n" % len(body) in head
        assert head.count(b"Content-Length") == 1


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_large_body_written_apart_from_its_head_arrives_whole_over_tls(
    tls_hostile: HostileServer, self_signed: tuple[Path, Path], loop_kind: str
) -> None:
    """The server reads each Content-Length body before it answers: a short or split body
    would leave the second request unanswered or garbled on the same connection."""
    trusting = ssl.create_default_context(cafile=str(self_signed[0]))
    big = b"q" * 300_000

    async def main() -> list[int]:
        client, pool = H1Client(), ConnectionPool(ssl_context=trusting)
        try:
            async with asyncio.timeout(10):  # a short body would leave the server waiting
                first = await client.request(pool, "POST", tls_hostile.url("/ok"), (), big, "x/y")
                second = await client.request(pool, "POST", tls_hostile.url("/ok"), (), b"tiny")
            return [first[0], second[0], pool.statistics().opened_total]
        finally:
            await pool.aclose()

    if loop_kind == "uvloop":
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            got = runner.run(main())
    else:
        got = asyncio.run(main())
    assert got == [200, 200, 1]
    assert tls_hostile.requests["/ok"] == 2


@pytest.mark.parametrize("transport", ["fast", "aiohttp"])
def test_trailers_are_not_headers_on_either_transport(transport: str) -> None:
    """aiohttp drops a chunked body's trailers; the fast transport (which once listed them
    among the headers) now reads headers from the head only, so both give the same map."""
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n"
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> dict[str, object]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        component = HttpComponent()
        await component.init(runtime(transport))
        try:
            url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            async with asyncio.timeout(10):
                outcome = await component.run_action(
                    "get", {"url": url}, UserHandle("u", "s", False)
                )
            assert outcome.value is not None
            return dict(outcome.value)
        finally:
            await component.release()
            server.close()

    result = asyncio.run(main())
    assert result["body"] == "hello"
    assert result["headers"] == {"transfer-encoding": "chunked", "trailer": "X-Sum"}


def test_the_headers_of_an_upgrade_answer_are_readable() -> None:
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    assert header_pairs(head) == [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
