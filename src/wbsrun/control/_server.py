"""The control endpoint: JSON over HTTP on loopback, in the run's own loop (aiohttp).

Every request carries `Authorization: Bearer TOKEN` (the token printed at the start); the
handlers call only `RunControl`'s methods. Errors are problem objects (RFC 9457) with 400,
401, 404, 405, 409 or 413. The API is described by `openapi.json` beside this module.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from wbsrun.core.control import ControlError, RunControl

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ControlAddress",
    "ControlServer",
    "ControlSettings",
    "is_loopback",
    "new_token",
    "openapi_document",
    "write_token",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9465
# A control request is a few dozen bytes: anything much larger is refused unread (413).
MAX_BODY = 16 * 1024
_STATUS_OF = {"invalid": 400, "not-found": 404, "conflict": 409}
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
}
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    """A fresh random token (192 bits)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ControlAddress:
    """`--control [HOST:]PORT`: 127.0.0.1 unless a host is given; port 0: any free one."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ControlAddress:
        raw = text.strip()
        host, sep, port = raw.rpartition(":")
        if not sep:
            host, port = DEFAULT_HOST, raw
        bracketed = host.startswith("[") and host.endswith("]")
        if bracketed:
            host = host[1:-1]
        bad_host = (sep and not host) or (":" in host and not bracketed)
        if bad_host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(
                f"'{text}': expected [HOST:]PORT with PORT 0-65535 (0: any free), an IPv6 "
                "host in brackets ([::1]:9465)"
            )
        return cls(host, int(port))

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def openapi_document() -> dict[str, Any]:
    """The endpoint's OpenAPI 3.1 description, as shipped in the package."""
    text = resources.files("wbsrun.control").joinpath("openapi.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def problem(status: int, detail: str) -> web.Response:
    """An RFC 9457 problem object."""
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status}
    body["detail"] = detail
    headers = {"WWW-Authenticate": 'Bearer realm="wbsrun"'} if status == 401 else None
    return web.json_response(
        body, status=status, content_type="application/problem+json", headers=headers
    )


class ControlServer:
    """Serves one run's `RunControl` at `address` until `close()`; start it in the run's loop."""

    def __init__(self, control: RunControl, address: ControlAddress, token: str) -> None:
        self.control = control
        self.address = address
        self.token = token
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.router.add_get("/v1/status", self._status)
        app.router.add_post("/v1/pause", self._pause)
        app.router.add_post("/v1/resume", self._resume)
        app.router.add_post("/v1/scale", self._scale)
        app.router.add_post("/v1/stop", self._stop)
        app.router.add_get("/v1/openapi.json", self._openapi)
        return app

    async def start(self) -> ControlAddress:
        """Listening; the address bound (the port chosen when 0 was asked)."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.address.host, self.address.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        port = self.address.port
        for server in runner.addresses:
            port = int(server[1])
            break
        return ControlAddress(self.address.host, port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- middleware and handlers ----------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """The token first (compared in constant time), then routing and body errors as
        problem objects."""
        given = request.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.token.encode()
        )
        if not ok:
            return problem(401, "a valid 'Authorization: Bearer TOKEN' header is required")
        try:
            return await handler(request)
        except ControlError as exc:
            return problem(_STATUS_OF[exc.kind], exc.message)
        except web.HTTPException as exc:
            if exc.status not in _TITLES:
                raise
            out = problem(exc.status, f"{request.method} {request.path}: {exc.reason}")
            if "Allow" in exc.headers:
                out.headers["Allow"] = exc.headers["Allow"]
            return out

    def _ok(self) -> web.Response:
        return web.json_response(self.control.status())

    async def _status(self, request: web.Request) -> web.Response:
        return self._ok()

    async def _pause(self, request: web.Request) -> web.Response:
        self.control.pause()
        return self._ok()

    async def _resume(self, request: web.Request) -> web.Response:
        self.control.resume()
        return self._ok()

    async def _stop(self, request: web.Request) -> web.Response:
        self.control.stop()
        return self._ok()

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def _scale(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return problem(400, 'the body must be JSON: {"scenario": NAME, "users": N}')
        if not isinstance(body, dict):
            return problem(400, 'the body must be an object: {"scenario": NAME, "users": N}')
        unknown = sorted(set(body) - {"scenario", "users"})
        if unknown:
            return problem(400, f"unknown field(s) {', '.join(unknown)}: expected scenario, users")
        scenario, users = body.get("scenario"), body.get("users")
        if not isinstance(scenario, str):
            return problem(400, f"'scenario' must be a scenario's name, got {str(scenario)[:60]}")
        if isinstance(users, float) and users.is_integer() and abs(users) < 2**53:
            users = int(users)  # 7.0 is an integer to JSON Schema (the OpenAPI document's type)
        if isinstance(users, bool) or not isinstance(users, int):
            return problem(400, f"'users' must be a whole number, got {str(users)[:60]}")
        self.control.scale(scenario, users)  # its range is RunControl's to check (400)
        return self._ok()


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """`--control`, `--control-token-file`, `--control-allow-remote`, `--paused` as given."""

    address: ControlAddress
    token_file: Path | None = None
    allow_remote: bool = False
    paused: bool = False  # the run starts paused: nothing is sent until a resume

    def check(self) -> None:
        """ValueError for a non-loopback bind without `--control-allow-remote`."""
        if not self.allow_remote and not is_loopback(self.address.host):
            raise ValueError(
                f"--control {self.address.host}:{self.address.port}: not a loopback address; "
                "the endpoint can pause and stop the run, so it listens on loopback only "
                "unless --control-allow-remote is given (and the token is then all that "
                "guards it, in clear text over HTTP)"
            )


def write_token(path: Path, token: str) -> None:
    """The token alone, readable by its owner only, replaced atomically (a script polling for
    the file never reads half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    os.replace(partial, path)
