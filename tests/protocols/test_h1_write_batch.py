"""Request writes are batched per loop iteration (h1/_connection.py WriteBatch)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from wbsrun.protocols.h1._connection import H1Connection, WriteBatch
from wbsrun.protocols.h1._errors import ConnectionLost

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _server(seen: list[bytes]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readuntil(b"\r\n\r\n")
                seen.append(line)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away: the end of this connection
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _connect(server: asyncio.Server) -> H1Connection:
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: H1Connection(("http", "127.0.0.1", port), lambda _: None), "127.0.0.1", port
    )
    return conn


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_requests_sent_in_one_iteration_each_reach_the_server_once_and_get_their_answer(
    loop_factory: type[asyncio.AbstractEventLoop],
) -> None:
    async def main() -> list[bytes]:
        seen: list[bytes] = []
        server = await _server(seen)
        conns = [await _connect(server) for _ in range(20)]
        loop = asyncio.get_running_loop()
        batch = WriteBatch(loop)
        waiters = [loop.create_future() for _ in conns]
        for i, (conn, waiter) in enumerate(zip(conns, waiters, strict=True)):
            request = f"GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
            conn.send(request, waiter, False, None, batch)
        assert seen == []  # nothing written before the loop runs the batch
        async with asyncio.timeout(5):
            await asyncio.gather(*waiters)
        assert [conn.status for conn in conns] == [200] * 20
        assert [conn.body() for conn in conns] == [b"ok"] * 20
        for conn in conns:
            conn.abort()
        server.close()
        return seen

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        seen = runner.run(main())
    assert sorted(seen) == sorted(
        f"GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for i in range(20)
    )


def test_a_connection_closed_before_the_batch_is_written_fails_its_request() -> None:
    async def main() -> tuple[BaseException | None, list[bytes]]:
        seen: list[bytes] = []
        server = await _server(seen)
        conn = await _connect(server)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        conn.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", waiter, False, None, WriteBatch(loop))
        conn.abort()  # before the loop runs the batch: nothing may be written
        async with asyncio.timeout(5):
            with pytest.raises(ConnectionLost):
                await waiter
        await asyncio.sleep(0.05)
        server.close()
        return waiter.exception(), seen

    error, seen = asyncio.run(main())
    assert isinstance(error, ConnectionLost)
    assert seen == []
