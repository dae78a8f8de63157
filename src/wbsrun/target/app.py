"""The asset server: lean aiohttp handlers, fault knobs, counters, many loopback listeners."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import os
import random
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from wbsrun.errors import RunError
from wbsrun.target.api import (
    API_ROUTES,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_SESSIONS,
    DemoApi,
    api_route,
)
from wbsrun.target.process import KNOB_NAMES, TargetKnobs, update_knobs

__all__ = [
    "DEFAULT_ASSET",
    "HANG_MAX_S",
    "ServeConfig",
    "TargetApp",
    "bind_sockets",
    "serve",
]

# Byte for byte the reference bundle's payloads/asset.json, so the demo needs no file.
DEFAULT_ASSET = (
    b'{"id": "asset-001", "kind": "config", "payload": {"region": "cn-north", "replicas": 3, '
    b'"tags": ["http", "asset-refresh"]}}\n'
)
# `hang` holds a request at most this long, so a forgotten knob cannot pin connections forever.
HANG_MAX_S = 300.0
_BIND_ATTEMPTS = 8
_JSON = "application/json"
_ROUTES = (
    "GET /asset",
    "POST /asset",
    "DELETE /asset",
    "GET /health",
    "HEAD /health",
    *API_ROUTES,
    "other",
)
_DELETED = b'{"deleted":true}'
_FAST_ROUTES = {"GET": "GET /asset", "POST": "POST /asset", "DELETE": "DELETE /asset"}

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything the child process needs to serve; built by `wbsrun.target.__main__`."""

    hosts: tuple[str, ...]
    port: int = 0
    knobs: TargetKnobs = TargetKnobs()  # noqa: RUF009 - frozen, so sharing it is safe
    seed: int = 0
    asset: bytes = DEFAULT_ASSET
    backlog: int = 4096
    watch_stdin: bool = False
    api_max_items: int = DEFAULT_MAX_ITEMS
    api_max_sessions: int = DEFAULT_MAX_SESSIONS


class _Host:
    """Per-listening-address state; one handler is bound to each, so no per-request lookup."""

    __slots__ = ("faulty", "knobs", "name", "received")

    def __init__(self, name: str, knobs: TargetKnobs) -> None:
        self.name = name
        self.knobs = knobs
        self.faulty = knobs.faulty
        self.received = 0


class TargetApp:
    """Request handling, knob state and counters for one target process (single-threaded)."""

    def __init__(
        self,
        hosts: Sequence[str],
        knobs: TargetKnobs = TargetKnobs(),  # noqa: B008 - frozen, so sharing it is safe
        seed: int = 0,
        asset: bytes = DEFAULT_ASSET,
        api: DemoApi | None = None,
    ) -> None:
        self.hosts = {name: _Host(name, knobs) for name in hosts}
        self.asset = asset
        self.api = api or DemoApi()
        self._start_knobs = knobs
        self._global = knobs
        self._overrides: dict[str, dict[str, Any]] = {}
        self._rng = random.Random(seed)
        self.received = 0
        self.responded = 0
        self.by_route: dict[str, int] = dict.fromkeys(_ROUTES, 0)
        self.by_status: dict[int, int] = {200: 0}  # pre-seeded: the fast path just adds

    # -- request path -------------------------------------------------------------------------

    def handler_for(self, host: str) -> Handler:
        """The aiohttp low-level handler for requests that arrive on `host`."""
        state = self.hosts[host]
        asset = self.asset

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            # Fast path for the load itself (/asset without knobs): one coroutine, no lookups
            # beyond what is unavoidable. Keeps the target within ~3% of a bare aiohttp handler.
            method = request.method
            route = _FAST_ROUTES.get(method)
            if route is None or state.faulty or request.raw_path != "/asset":
                return await self._dispatch(request, state)
            self.received += 1
            state.received += 1
            self.by_route[route] += 1
            if method == "GET":
                body = asset
            elif method == "POST":
                body = b'{"stored":true,"bytes":%d}' % len(await request.read())
            else:
                body = _DELETED
            resp = web.Response(body=body, content_type=_JSON)
            try:
                await resp.prepare(request)
                await resp.write_eof()
            except ConnectionError:
                return resp
            self.responded += 1
            self.by_status[200] += 1
            return resp

        return handle

    async def _dispatch(self, request: web.BaseRequest, host: _Host) -> web.StreamResponse:
        path = request.raw_path
        if "?" in path:
            path = path.partition("?")[0]
        method = request.method
        if path.startswith("/__"):
            admin = await self._admin(request, method, path)
            if admin is not None:
                return admin
        if path.startswith("/api/"):
            return await self._api(request, host, api_route(method, path))
        route = f"{method} {path}"
        if route not in self.by_route:
            route = "other"
        self.received += 1
        host.received += 1
        self.by_route[route] += 1
        if path == "/asset":
            if method == "GET":
                return await self._asset(request, host, self.asset)
            if method == "POST":
                size = len(await request.read())
                return await self._asset(request, host, b'{"stored":true,"bytes":%d}' % size)
            if method == "DELETE":
                return await self._asset(request, host, _DELETED)
            return await self._send(
                request, web.Response(status=405, headers={"Allow": "GET, POST, DELETE"})
            )
        if path == "/health" and method in ("GET", "HEAD"):
            if host.knobs.hang:
                # A hung server hangs its health endpoint too; cancelled when the client leaves.
                await asyncio.sleep(HANG_MAX_S)
                return await self._send(request, web.Response(status=504, text="hang limit"))
            if host.knobs.fail_health:
                return await self._send(request, web.Response(status=503, text="unhealthy"))
            return await self._send(request, web.Response(text="ok"))
        return await self._send(request, web.Response(status=404, text="not found"))

    async def _api(
        self, request: web.BaseRequest, host: _Host, route: str | None
    ) -> web.StreamResponse:
        # The demo API (target/api.py): counted by route, under the same knobs as /asset.
        self.received += 1
        host.received += 1
        self.by_route[route or "other"] += 1
        if host.faulty:
            injected = await self._inject(request, host)
            if injected is not None:
                return injected
        return await self._send(request, await self.api.handle(request, route))

    async def _asset(
        self, request: web.BaseRequest, host: _Host, body: bytes
    ) -> web.StreamResponse:
        if host.faulty:
            injected = await self._inject(request, host)
            if injected is not None:
                return injected
        return await self._send(request, web.Response(body=body, content_type=_JSON))

    async def _inject(self, request: web.BaseRequest, host: _Host) -> web.StreamResponse | None:
        """Apply the host's knobs: the injected answer, or None when the request goes on."""
        knobs = host.knobs
        if knobs.hang:
            # Cancelled as soon as the client goes away (handler_cancellation=True).
            await asyncio.sleep(HANG_MAX_S)
            return await self._send(request, web.Response(status=504, text="hang limit"))
        delay = knobs.latency_ms
        if knobs.jitter_ms:
            delay += self._rng.uniform(0, knobs.jitter_ms)
        if delay:
            await _sleep_at_least(delay / 1000)
        if knobs.close:
            request.protocol.force_close()
            return web.Response(status=500)  # never written: the transport is gone
        status = knobs.status
        if status is None and knobs.error_rate and self._rng.random() < knobs.error_rate:
            status = 500
        if status is not None and status != 200:
            text = f'{{"error":"injected","status":{status}}}'
            return await self._send(
                request, web.Response(status=status, text=text, content_type=_JSON)
            )
        return None

    async def _send(self, request: web.BaseRequest, resp: web.Response) -> web.StreamResponse:
        # Writing here rather than leaving it to aiohttp lets us count only what really went out.
        try:
            await resp.prepare(request)
            await resp.write_eof()
        except ConnectionError:
            return resp  # the client left; aiohttp notices on its own write and stays quiet
        self.responded += 1
        status = resp.status
        self.by_status[status] = self.by_status.get(status, 0) + 1
        return resp

    # -- admin routes (never counted) ---------------------------------------------------------

    async def _admin(self, request: web.BaseRequest, method: str, path: str) -> web.Response | None:
        if path == "/__stats" and method == "GET":
            return web.json_response(self.snapshot())
        if path == "/__stats/reset" and method == "POST":
            self.reset_stats()
            return web.json_response({"reset": True})
        if path == "/__control":
            if method == "POST":
                try:
                    payload = json.loads(await request.read() or b"{}")
                    self.apply_control(payload)
                except ValueError as exc:
                    return web.json_response({"error": str(exc)}, status=400)
                return web.json_response(self.knob_state())
            if method == "GET":
                return web.json_response(self.knob_state())
        return None

    def snapshot(self) -> dict[str, Any]:
        """The counters as served by GET /__stats (zero entries left out)."""
        return {
            "received": self.received,
            "responded": self.responded,
            "by_route": {k: v for k, v in self.by_route.items() if v},
            "by_host": {h.name: h.received for h in self.hosts.values() if h.received},
            "by_status": {str(k): v for k, v in sorted(self.by_status.items()) if v},
        }

    def reset_stats(self) -> None:
        """Zero every counter."""
        self.received = 0
        self.responded = 0
        self.by_route = dict.fromkeys(_ROUTES, 0)
        self.by_status = {200: 0}
        for host in self.hosts.values():
            host.received = 0

    def apply_control(self, payload: object) -> None:
        """Apply one /__control document; ValueError (nothing changed) when any part is invalid."""
        if not isinstance(payload, dict):
            raise ValueError("control body must be a JSON object")
        changes = dict(payload)
        host = changes.pop("host", None)
        reset = changes.pop("reset", False)
        if not isinstance(reset, bool):
            raise ValueError(f"'reset' must be true or false, got {reset!r}")
        if host is not None:
            canonical = _canonical_host(host)
            if canonical not in self.hosts:
                raise ValueError(f"host {host!r} is not served here (hosts: {self._host_hint()})")
            host = canonical
        unknown = sorted(set(changes) - set(KNOB_NAMES))
        if unknown:
            raise ValueError(f"unknown knob(s) {unknown}; known knobs: {', '.join(KNOB_NAMES)}")
        if host is None:
            base = self._start_knobs if reset else self._global
            new_global = update_knobs(base, changes)
            if reset:
                self._overrides.clear()
            self._global = new_global
        else:
            override = {} if reset else dict(self._overrides.get(host, {}))
            override.update(changes)
            update_knobs(self._global, override)  # validate before storing
            if override:
                self._overrides[host] = override
            else:
                self._overrides.pop(host, None)
        self._refresh()

    def knob_state(self) -> dict[str, Any]:
        """Global knobs and per-host overrides, as answered by /__control."""
        return {
            "global": {name: getattr(self._global, name) for name in KNOB_NAMES},
            "hosts": {h: dict(o) for h, o in self._overrides.items()},
        }

    def _refresh(self) -> None:
        for name, host in self.hosts.items():
            override = self._overrides.get(name)
            host.knobs = update_knobs(self._global, override) if override else self._global
            host.faulty = host.knobs.faulty

    def _host_hint(self) -> str:
        names = list(self.hosts)
        return ", ".join(names[:3]) + (f", ... ({len(names)} in all)" if len(names) > 3 else "")


def _canonical_host(host: object) -> str | None:
    # Hosts are keyed by their compressed form; accept "[::1]" or "0:0:0:0:0:0:0:1" as well.
    if not isinstance(host, str):
        return None
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).compressed
    except ValueError:
        return None


async def _sleep_at_least(seconds: float) -> None:
    # Loop timers may fire a hair early; a client must never see less than the set latency.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    await asyncio.sleep(seconds)
    remaining = deadline - loop.time()
    if remaining > 0:
        await asyncio.sleep(remaining + 0.001)


def _make_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def bind_sockets(hosts: Sequence[str], port: int) -> tuple[list[socket.socket], int]:
    """Bind every host on one port (port 0: the first host picks it; retried if taken later)."""
    attempts = _BIND_ATTEMPTS if port == 0 else 1
    for attempt in range(attempts):
        socks: list[socket.socket] = []
        try:
            first = _make_socket(hosts[0], port)
            socks.append(first)
            chosen = first.getsockname()[1]
            socks.extend(_make_socket(host, chosen) for host in hosts[1:])
            return socks, chosen
        except OSError as exc:
            for sock in socks:
                sock.close()
            host = hosts[len(socks)]
            host_text = f"[{host}]" if ":" in host else host
            if port == 0 and exc.errno == errno.EADDRINUSE and socks:
                if attempt + 1 < attempts:
                    continue
                raise RunError(
                    f"no port was free on all {len(hosts)} hosts after {attempts} attempts "
                    f"(last: {host_text} taken)"
                ) from exc
            where = f"{host_text}:{port or '(any port)'}"
            raise RunError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


async def serve(config: ServeConfig, on_ready: Callable[[int], None]) -> None:
    """Listen on every host, call `on_ready(port)`, serve until SIGTERM/SIGINT (or stdin EOF)."""
    loop = asyncio.get_running_loop()
    api = DemoApi(config.api_max_items, config.api_max_sessions)
    app = TargetApp(config.hosts, config.knobs, config.seed, config.asset, api)
    socks, port = bind_sockets(config.hosts, config.port)
    servers: list[asyncio.AbstractServer] = []
    web_servers: list[web.Server] = []
    try:
        for host, sock in zip(config.hosts, socks, strict=True):
            # handler_cancellation: a request whose client left (hang, latency) stops at once.
            web_server = web.Server(
                app.handler_for(host), handler_cancellation=True, access_log=None
            )
            web_servers.append(web_server)
            servers.append(await loop.create_server(web_server, sock=sock, backlog=config.backlog))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.watch_stdin:
        _watch_stdin(loop, stop)
    on_ready(port)
    await stop.wait()
    for server in servers:
        server.close()
    for web_server in web_servers:
        web_server.pre_shutdown()
    # Short grace: in-flight requests get a moment, a hanging one must not delay the exit.
    await asyncio.gather(*(ws.shutdown(0.25) for ws in web_servers))


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    if sys.stdin is None:  # started with fd 0 closed: there is no lifeline to watch
        return
    fd = sys.stdin.fileno()

    def on_readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, on_readable)
