"""A real aiohttp server on loopback (in a thread) that sets cookies and echoes what requests
carried, and the http component driven as one user against it."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from wbsrun.core.ports import ActionOutcome, LeaseProvider, Runtime, UserHandle
from wbsrun.core.rate import RateGuard
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.protocols.http import HttpComponent

TRANSPORTS = ("fast", "aiohttp")
SEEN: web.AppKey[list[dict[str, Any]]] = web.AppKey("seen", list)


async def _echo(request: web.Request) -> web.Response:
    """What arrived: method, path, Cookie, Authorization, Content-Type, the parsed form or
    multipart fields, the body's size and digest, the client certificate's subject."""
    fields: dict[str, Any] = {}
    # post() reads a multipart body from the stream itself: read() would consume it first.
    raw = b"" if request.content_type == "multipart/form-data" else await request.read()
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                fields[name] = {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            else:
                fields[name] = value
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    subject = dict(x[0] for x in peer["subject"]) if peer else None
    seen = {
        "method": request.method,
        "path": request.path,
        "cookie": request.headers.get("Cookie"),
        "authorization": request.headers.get("Authorization"),
        "content_type": request.headers.get("Content-Type"),
        "fields": fields,
        "size": len(raw) or request.content_length or 0,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "client": subject.get("commonName") if subject else None,
    }
    request.app[SEEN].append(seen)
    return web.json_response(seen)


async def _set(request: web.Request) -> web.Response:
    """`?c=VALUE` (repeatable): each a Set-Cookie header as given; `?to=PATH`: a 302 there."""
    headers: CIMultiDict[str] = CIMultiDict()
    for value in request.query.getall("c", []):
        headers.add("Set-Cookie", value)
    if "to" in request.query:
        headers["Location"] = request.query["to"]
        return web.Response(status=302, headers=headers)
    return web.Response(text="set", headers=headers)


class AppServer:
    """The app on 127.0.0.1 (https when given a context), served from its own thread."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.seen: list[dict[str, Any]] = []  # what each echoed request carried
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("app server did not start")

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app[SEEN] = self.seen
        app.router.add_route("*", "/set", _set)
        app.router.add_route("*", "/{tail:.*}", _echo)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.tls)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def log(self, level: str, message: str, user_id: str | None = None) -> None:
        self.lines.append((level, message))


def run_calls(
    transport: str,
    steps: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    scenario: str = "s",
    extras: Mapping[str, Any] | None = None,
    spec: ComponentSpec | None = None,
    leases: LeaseProvider | None = None,
    log: _Log | None = None,
) -> list[ActionOutcome]:
    """The calls in order as one user of `scenario`; then the user and component released."""

    async def main() -> list[ActionOutcome]:
        component = HttpComponent(spec)
        runtime = Runtime(
            log=log or _Log(),
            connection_limit=0,
            clock=time.monotonic,
            rate_guard=RateGuard(),
            leases=leases,
            extras={"transport": transport, **(extras or {})},
        )
        await component.init(runtime)
        user = UserHandle("u1", scenario, private_session=False)
        try:
            async with asyncio.timeout(20):
                return [await component.run_action(c, args, user) for c, args in steps]
        finally:
            await component.release_user(user)
            await component.release()

    return asyncio.run(main())


def tls_spec(**given: Any) -> ComponentSpec:
    from wbsrun.dsl.plan import TlsSpec  # here: the kit also runs against code without it

    spec = TlsSpec(
        ca_file=given.get("ca_file"),
        cert_file=given.get("cert_file"),
        key_file=given.get("key_file"),
        verify=given.get("verify", True),
    )
    return ComponentSpec("http", "1.0.0", "native", None, None, (), {}, tls=spec)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(where: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (CN wbsrun-client)
    it signed: openssl CLI, EC keys (fast)."""
    paths = {n: where / f"{n}.pem" for n in ("ca", "ca-key", "server", "server-key")}
    paths |= {n: where / f"{n}.pem" for n in ("client", "client-key")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-days", "1", "-subj", "/CN=wbsrun-test-ca",
        "-keyout", str(paths["ca-key"]), "-out", str(paths["ca"]),
    )  # fmt: skip
    for name, subject, ext in (
        ("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1"),
        ("client", "/CN=wbsrun-client", "extendedKeyUsage=clientAuth"),
    ):
        csr = where / f"{name}.csr"
        extfile = where / f"{name}.ext"
        extfile.write_text(ext + "\n")
        _openssl(
            "req", "-new", *ec, "-subj", subject,
            "-keyout", str(paths[f"{name}-key"]), "-out", str(csr),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(paths["ca"]),
            "-CAkey", str(paths["ca-key"]), "-CAcreateserial", "-days", "1",
            "-extfile", str(extfile), "-out", str(paths[name]),
        )  # fmt: skip
    return paths


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer()
    yield server
    server.stop()


@pytest.fixture
def tls_app(pki: dict[str, Path]) -> Iterator[AppServer]:
    """https with the CA's server certificate; a client certificate is asked for, optional."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"], pki["server-key"])
    context.load_verify_locations(pki["ca"])
    context.verify_mode = ssl.CERT_OPTIONAL
    server = AppServer(tls=context)
    yield server
    server.stop()
