"""The built-in `http` component on aiohttp: one shared pool, or a private session per user."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Final, final

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from wbsrun.core import codes
from wbsrun.core.ports import ActionOutcome, Runtime, UserHandle
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.dsl.template import to_text
from wbsrun.dsl.units import UnitError, parse_duration

__all__ = ["HttpComponent", "HttpResult"]

_METHODS: Final = {
    "get": "GET",
    "post": "POST",
    "put": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "head": "HEAD",
    "health": "GET",
}
_KEYS: Final = ("status", "ok", "body", "json", "headers", "latency_ms")
_UNSET: Final = object()
_URL_CACHE: Final = 10_000


@final
class HttpResult(Mapping[str, Any]):
    """What `save-as` stores; body text, JSON and headers are decoded only when read."""

    __slots__ = ("_headers", "_json", "_raw", "_text", "latency_ms", "status")

    def __init__(
        self, status: int, raw: bytes, headers: CIMultiDictProxy[str], latency_ms: float
    ) -> None:
        self.status = status
        self._raw = raw
        self._headers: Any = headers
        self.latency_ms = latency_ms
        self._text: str | None = None
        self._json: Any = _UNSET

    def _body(self) -> str:
        if self._text is None:
            self._text = self._raw.decode("utf-8", errors="replace")
        return self._text

    def _parsed(self) -> Any:
        if self._json is _UNSET:
            try:
                self._json = json.loads(self._raw) if self._raw else None
            except ValueError:
                self._json = None
        return self._json

    def __getitem__(self, key: str) -> Any:
        if key == "status":
            return self.status
        if key == "ok":
            return 200 <= self.status < 400
        if key == "body":
            return self._body()
        if key == "json":
            return self._parsed()
        if key == "headers":
            if not isinstance(self._headers, dict):
                self._headers = {k.lower(): v for k, v in self._headers.items()}
            return self._headers
        if key == "latency_ms":
            return self.latency_ms
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)


def _error_code(exc: BaseException) -> str:
    # Order matters: aiohttp's timeout errors are also OSErrors / ClientErrors.
    if isinstance(exc, TimeoutError):
        return codes.NETWORK_TIMEOUT
    if isinstance(exc, aiohttp.InvalidURL | ValueError | TypeError):
        return codes.INVALID_CONFIGURATION
    if isinstance(
        exc,
        aiohttp.ClientConnectorError
        | aiohttp.ServerDisconnectedError
        | aiohttp.ClientOSError
        | aiohttp.ClientPayloadError
        | ConnectionError,
    ):
        return codes.RESOURCE_UNAVAILABLE
    return "protocol-error"


class HttpComponent:
    """GET/POST/PUT/PATCH/DELETE/HEAD and `health` over HTTP/1.1 keep-alive."""

    CALLS: ClassVar[frozenset[str]] = frozenset(_METHODS)
    REQUESTS_PER_CALL: ClassVar[int] = 1

    def __init__(self, spec: ComponentSpec | None = None) -> None:
        self.spec = spec
        self._shared: aiohttp.ClientSession | None = None
        self._limit = 0
        self._timeouts: dict[Any, aiohttp.ClientTimeout | None] = {}
        # Parsed URLs by text: yarl parsing (host, IP validation) costs ~10 µs a request, and
        # a scenario renders the same few URLs again and again. Bounded: cleared when full.
        self._urls: dict[str, URL] = {}

    async def init(self, runtime: Runtime) -> None:
        self._limit = runtime.connection_limit

    def _session(self, user: UserHandle) -> aiohttp.ClientSession:
        if user.private_session:
            session = user.state.get("http")
            if session is None:
                session = user.state["http"] = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0),
                    timeout=aiohttp.ClientTimeout(total=None),
                )
            return session
        if self._shared is None:
            # Cookies would leak between users on a shared pool: keep none there.
            self._shared = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._shared

    def _timeout(self, value: Any) -> aiohttp.ClientTimeout | None:
        cached = self._timeouts.get(value, _UNSET)
        if cached is _UNSET:
            try:
                seconds = parse_duration(value)
            except UnitError:
                seconds = None
            cached = self._timeouts[value] = (
                aiohttp.ClientTimeout(total=seconds) if seconds else None
            )
        return cached  # type: ignore[return-value]

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        method = _METHODS[call]
        if call == "health":
            target = to_text(args.get("target", ""))
            path = to_text(args.get("path", "/health"))
            url = f"http://{target}{path if path.startswith('/') else '/' + path}"
        else:
            url = to_text(args.get("url", ""))
        kwargs: dict[str, Any] = {}
        headers = args.get("headers")
        if headers:
            kwargs["headers"] = {str(k): to_text(v) for k, v in headers.items()}
        body = args.get("body")
        if body is not None:
            if isinstance(body, str | bytes):
                kwargs["data"] = body
            else:
                kwargs["json"] = body
        query = args.get("query")
        if query:
            kwargs["params"] = {str(k): to_text(v) for k, v in query.items()}
        timeout = args.get("timeout")
        if timeout is not None:
            kwargs["timeout"] = self._timeout(timeout)
        target_url = self._urls.get(url)
        if target_url is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            try:
                target_url = self._urls[url] = URL(url)
            except (ValueError, TypeError) as exc:
                return ActionOutcome(
                    None,
                    error=codes.INVALID_CONFIGURATION,
                    message=f"{method} {url}: {exc}",
                    requests=0,
                )
        session = self._session(user)
        t0 = time.perf_counter()
        try:
            async with session.request(method, target_url, **kwargs) as resp:
                raw = await resp.read()
                status = resp.status
                headers_in = resp.headers
        except (aiohttp.ClientError, OSError, ValueError, TypeError, TimeoutError) as exc:
            ms = (time.perf_counter() - t0) * 1000.0
            return ActionOutcome(
                None,
                error=_error_code(exc),
                message=f"{method} {url}: {type(exc).__name__}: {exc}",
                latency_ms=ms,
                requests=1,
            )
        ms = (time.perf_counter() - t0) * 1000.0
        code = codes.code_for_status(status)
        return ActionOutcome(
            HttpResult(status, raw, headers_in, round(ms, 3)),
            error=code,
            message=f"{method} {url}: HTTP {status}" if code else "",
            latency_ms=ms,
            requests=1,
        )

    async def release_user(self, user: UserHandle) -> None:
        session = user.state.pop("http", None)
        if session is not None:
            await session.close()

    async def release(self) -> None:
        if self._shared is not None:
            await self._shared.close()
            self._shared = None
        # Let aiohttp finish closing transports before the loop goes away.
        await asyncio.sleep(0)
