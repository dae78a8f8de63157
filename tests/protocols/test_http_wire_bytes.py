"""The `http` component reports each call's HTTP status and its bytes on the wire, as a server
counting what it read and wrote sees them: exactly for the fast transport; for aiohttp,
reckoned from the heads and bodies it reports, exactly as long as a body has a
Content-Length (a chunked body's framing is not seen: docs/result.md "Bytes")."""

from __future__ import annotations

import gzip
import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from transport_kit import calls

_JSON = b'{"ok": true, "items": [1, 2, 3]}'
_GZ = gzip.compress(b"x" * 5000)
RESPONSES = {
    b"/ok": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_JSON), _JSON),
    b"/gone": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ngone",
    b"/gz": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_GZ), _GZ),
    b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"/moved": b"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n",
}


class _Counting(socketserver.StreamRequestHandler):
    """Answers keep-alive requests by path, counting the bytes read and written."""

    server: _Server

    def handle(self) -> None:
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = self.rfile.readline()
                if not line:
                    return
                head += line
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = self.rfile.read(length) if length else b""
            path = head.split(b" ", 2)[1]
            answer = RESPONSES[path]
            with self.server.lock:
                self.server.read += len(head) + len(body)
                self.server.written += len(answer)
            self.wfile.write(answer)
            self.wfile.flush()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Counting)
        self.lock = threading.Lock()
        self.read = 0
        self.written = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def take(self) -> tuple[int, int]:
        with self.lock:
            counts = (self.read, self.written)
            self.read = self.written = 0
        return counts


@pytest.fixture
def counting() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _steps(server: _Server) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("get", {"url": server.url("/ok")}),
        ("post", {"url": server.url("/ok"), "body": {"name": "x" * 300}}),
        ("get", {"url": server.url("/gone"), "headers": {"x-trace": "abc"}}),
        ("get", {"url": server.url("/gz")}),
        ("get", {"url": server.url("/moved"), "follow-redirects": True}),
    ]


@pytest.mark.parametrize("transport", ["fast", "aiohttp"])
def test_each_call_reports_its_status_and_the_bytes_the_server_saw(
    transport: str, counting: _Server
) -> None:
    outcomes = calls(transport, _steps(counting))
    assert [o.status for o in outcomes] == [200, 200, 503, 200, 200]
    assert all(o.requests == 1 for o in outcomes)
    read, written = counting.take()
    assert sum(o.bytes_sent for o in outcomes) == read
    assert sum(o.bytes_received for o in outcomes) == written
    # Per call as well: the POST carries its body, the gzip answer counts compressed.
    assert outcomes[1].bytes_sent > 300 + outcomes[0].bytes_sent - 10
    assert outcomes[3].bytes_received == len(RESPONSES[b"/gz"])
    # A redirect followed counts both exchanges.
    assert outcomes[4].bytes_received == len(RESPONSES[b"/moved"]) + len(RESPONSES[b"/ok"])


def test_the_fast_transport_counts_a_chunked_body_with_its_framing(counting: _Server) -> None:
    (outcome,) = calls("fast", [("get", {"url": counting.url("/chunked")})])
    assert outcome.value is not None
    assert outcome.value["body"] == "hello world"
    assert outcome.bytes_received == len(RESPONSES[b"/chunked"])


def test_aiohttp_counts_a_chunked_body_as_decoded(counting: _Server) -> None:
    (outcome,) = calls("aiohttp", [("get", {"url": counting.url("/chunked")})])
    framing = len(b"5\r\n\r\n6\r\n\r\n0\r\n\r\n")
    assert outcome.bytes_received == len(RESPONSES[b"/chunked"]) - framing


@pytest.mark.parametrize("transport", ["fast", "aiohttp"])
def test_a_call_answered_by_no_http_status_reports_status_0(transport: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: the connection is refused
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
        (outcome,) = calls(transport, [("get", {"url": url})])
    assert (outcome.error, outcome.status, outcome.requests) == ("resource-unavailable", 0, 1)
    assert (outcome.bytes_sent, outcome.bytes_received) == (0, 0)
