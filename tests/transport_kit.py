"""Servers and a driver for the transport tests (tests/protocols): a misbehaving HTTP/1.1 server
(real sockets on 127.0.0.1, its own thread and event loop, one behaviour per request path),
nginx with our own config, and `calls()` running the `http` component on a chosen transport."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from wbsrun.core.ports import ActionOutcome, Runtime, UserHandle
from wbsrun.core.rate import RateGuard
from wbsrun.protocols.http import HttpComponent

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Route = Callable[
    [Reader, Writer, bytes], Awaitable[bool]
]  # → keep the connection for another request


def _response(status: str, body: bytes = b"", *headers: str, length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _send(writer: Writer, data: bytes, keep: bool = True) -> bool:
    writer.write(data)
    await writer.drain()
    return keep


async def ok(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, _response("200 OK", b'{"ok": true}', "Content-Type: application/json"))


async def garbage(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, b"HTCPCP/9.9 I'm a teapot, not a server\r\n\r\n")


async def truncated(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this", keep=False)


async def huge_headers(r: Reader, w: Writer, method: bytes) -> bool:
    head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n"
    return await _send(w, head)


async def dribble(r: Reader, w: Writer, method: bytes) -> bool:
    await _send(w, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(100):
        await asyncio.sleep(0.05)
        await _send(w, b"x")
    return True


async def silent(r: Reader, w: Writer, method: bytes) -> bool:
    async with asyncio.timeout(30):  # never answers; ends when the client goes away
        await r.read()
    return False


async def close_mid(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, b"HTTP/1.1 200 OK\r\nContent-Le", keep=False)


async def reset(r: Reader, w: Writer, method: bytes) -> bool:
    sock = w.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False  # closing with linger 0 sends RST


async def chunked(r: Reader, w: Writer, method: bytes) -> bool:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    return await _send(w, _response("200 OK", body, "Transfer-Encoding: chunked", length=False))


async def until_eof(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, _response("200 OK", b"body until close", length=False), keep=False)


async def close(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, _response("200 OK", b"bye", "Connection: close"), keep=False)


async def head(r: Reader, w: Writer, method: bytes) -> bool:
    if method == b"HEAD":  # announces the length of the body it does not send
        return await _send(w, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    return await _send(w, _response("200 OK", b"hello"))


async def no_content(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, b"HTTP/1.1 204 No Content\r\n\r\n")


async def not_modified(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")


async def interim(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, b"HTTP/1.1 100 Continue\r\n\r\n" + _response("200 OK", b"done"))


async def gzipped(r: Reader, w: Writer, method: bytes) -> bool:
    body = gzip.compress(b'{"packed": true}')
    return await _send(w, _response("200 OK", body, "Content-Encoding: gzip"))


async def deflated(r: Reader, w: Writer, method: bytes) -> bool:
    body = zlib.compress(b"deflated")
    return await _send(w, _response("200 OK", body, "Content-Encoding: deflate"))


async def bad_gzip(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, _response("200 OK", b"not gzip at all", "Content-Encoding: gzip"))


BIG = b'{"blob": "' + b"z" * 1_000_000 + b'"}'


async def big(r: Reader, w: Writer, method: bytes) -> bool:
    """1 MB of body, written with the head in one go: most of it arrives with the head."""
    return await _send(w, _response("200 OK", BIG, "Content-Type: application/json"))


_STREAM_PIECE = b"x" * 65536


async def _stream_forever(w: Writer, head: bytes, piece: bytes) -> bool:
    """The head, then `piece` again and again until the client goes away."""
    w.write(head)
    while True:
        w.write(piece)
        await w.drain()


async def endless_length(r: Reader, w: Writer, method: bytes) -> bool:
    """Announces 1 GiB, then streams without end (more than it announced, if let)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n"
    return await _stream_forever(w, head, _STREAM_PIECE)


async def endless_chunked(r: Reader, w: Writer, method: bytes) -> bool:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    return await _stream_forever(w, head, b"10000\r\n" + _STREAM_PIECE + b"\r\n")


async def endless_close(r: Reader, w: Writer, method: bytes) -> bool:
    """No length, not chunked: the body would end when the server closes; it never does."""
    return await _stream_forever(w, b"HTTP/1.1 200 OK\r\n\r\n", _STREAM_PIECE)


@functools.cache
def gzip_bomb() -> bytes:
    """32 MiB of zeros, gzipped to ~32 KB, built piece by piece (never 32 MiB at once)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    return b"".join([*(packer.compress(zeros) for _ in range(32)), packer.flush()])


async def bomb(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, _response("200 OK", gzip_bomb(), "Content-Encoding: gzip"))


async def redirect(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, _response("302 Found", b"", "Location: /ok"))


async def redirect_loop(r: Reader, w: Writer, method: bytes) -> bool:
    return await _send(w, _response("302 Found", b"", "Location: /redirect-loop"))


def status(code: int) -> Route:
    async def answer(r: Reader, w: Writer, method: bytes) -> bool:
        return await _send(w, _response(f"{code} Status", b"{}"))

    return answer


ROUTES: dict[bytes, Route] = {
    b"/ok": ok,
    b"/garbage": garbage,
    b"/truncated": truncated,
    b"/huge-headers": huge_headers,
    b"/dribble": dribble,
    b"/silent": silent,
    b"/close-mid": close_mid,
    b"/reset": reset,
    b"/chunked": chunked,
    b"/until-eof": until_eof,
    b"/close": close,
    b"/head": head,
    b"/no-content": no_content,
    b"/not-modified": not_modified,
    b"/interim": interim,
    b"/gzip": gzipped,
    b"/deflate": deflated,
    b"/bad-gzip": bad_gzip,
    b"/big": big,
    b"/endless-length": endless_length,
    b"/endless-chunked": endless_chunked,
    b"/endless-close": endless_close,
    b"/gzip-bomb": bomb,
    b"/redirect": redirect,
    b"/redirect-loop": redirect_loop,
    b"/401": status(401),
    b"/404": status(404),
    b"/503": status(503),
}


class HostileServer:
    """Counts connections accepted and still open (server side), and requests per path."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.loop = asyncio.new_event_loop()
        self.accepted = 0
        self.open = 0
        self.requests: dict[str, int] = {}
        self.writers: set[Writer] = set()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("hostile server did not start")

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        )
        self.port = server.sockets[0].getsockname()[1]
        self.server = server
        ready.set()
        self.loop.run_forever()
        server.close()
        self.loop.run_until_complete(self._cancel_handlers())
        self.loop.close()

    async def _cancel_handlers(self) -> None:
        """Handlers still dribbling or silent at the end are cancelled, not left to the GC."""
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        self.accepted += 1
        self.open += 1
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        await reader.readexactly(int(value))
                self.requests[path.decode()] = self.requests.get(path.decode(), 0) + 1
                route = ROUTES.get(path.partition(b"?")[0], status(404))
                if not await route(reader, writer, method):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            self.open -= 1
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await writer.wait_closed()

    def drop_connections(self) -> None:
        """Close every open connection from the server side (call in the server's loop)."""
        for writer in list(self.writers):
            writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# -- nginx from Debian's packages (the Makefile installs it; without it these tests skip) ------

NGINX_CONF = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 3;
{temps}  server {{
    listen 127.0.0.1:{port};
    location = /status {{ stub_status; }}
    location = /ok {{ default_type application/json; return 200 '{{"ok": true}}'; }}
    location = /gzip {{
      gzip on; gzip_types application/json; gzip_min_length 0;
      default_type application/json; return 200 '{{"packed": "{padding}"}}';
    }}
    location = /empty {{ return 204; }}
    location = /moved {{ return 302 /ok; }}
    location = /denied {{ return 403; }}
    location = /broken {{ return 502; }}
    location / {{ return 404; }}
  }}
}}
"""


class Nginx:
    def __init__(self, where: Path) -> None:
        import socket

        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).is_file():
            pytest.skip("nginx is not installed (make test installs nginx-light)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        temps = "".join(
            f"  {k}_temp_path {where}/{k};\n"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = NGINX_CONF.format(dir=where, port=self.port, temps=temps, padding="x" * 300)
        (where / "nginx.conf").write_text(conf, encoding="utf-8")
        self.proc = subprocess.Popen(
            [binary, "-p", str(where), "-c", str(where / "nginx.conf")],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.accepted()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepted(self) -> int:
        """Connections nginx accepted so far, not counting this status read's own."""
        with urllib.request.urlopen(self.url("/status"), timeout=5) as resp:
            text = resp.read().decode()
        return int(text.splitlines()[2].split()[0]) - self.reads()

    def reads(self) -> int:
        self._reads = getattr(self, "_reads", 0) + 1
        return self._reads

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# -- the http component on one transport ---------------------------------------------------


class _Log:
    def log(self, level: str, message: str, user_id: str | None = None) -> None:
        pass


def runtime(transport: str) -> Runtime:
    return Runtime(
        log=_Log(),
        connection_limit=0,
        clock=time.monotonic,
        rate_guard=RateGuard(),
        extras={"transport": transport},
    )


def calls(
    transport: str, steps: Sequence[tuple[str, Mapping[str, Any]]], private: bool = False
) -> list[ActionOutcome]:
    """Run the calls in order as one user, then release the user and the component."""

    async def main() -> list[ActionOutcome]:
        component = HttpComponent()
        await component.init(runtime(transport))
        user = UserHandle("u1", "s", private_session=private)
        try:
            async with asyncio.timeout(20):
                return [await component.run_action(c, args, user) for c, args in steps]
        finally:
            await component.release_user(user)
            await component.release()

    return asyncio.run(main())


# -- fixtures (registered by tests/conftest.py) ------------------------------------------------


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself (openssl CLI) and its key."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    subprocess.run(
        [*command, "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def tls_hostile(self_signed: tuple[Path, Path]) -> Iterator[HostileServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    server = HostileServer(tls=context)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    server = Nginx(tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()
