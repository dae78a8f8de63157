"""The built-in `http` component: `with` arguments → one request on the chosen transport.

The transport is `fast` (protocols/h1: asyncio Protocols + httptools) unless the run option
(`--transport`, WBSRUN_TRANSPORT, config.yaml `run: transport:`) or the component's
`transport:` key in the scenario says `aiohttp`; the run option wins. Both give the same
result mapping and the same error codes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from itertools import chain
from time import perf_counter
from typing import Any, ClassVar, Final, cast, final

from wbsrun.core import codes
from wbsrun.core.components import ComponentBase
from wbsrun.core.limits import DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT
from wbsrun.core.ports import ActionOutcome, LeaseError, Runtime, UserHandle
from wbsrun.core.stats import round_to
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.dsl.template import to_text
from wbsrun.dsl.units import UnitError, parse_duration, parse_size
from wbsrun.errors import RunError
from wbsrun.protocols._conveniences import ConvenienceError, tls_context
from wbsrun.protocols._extras import JAR, Extras, cookies_for, follow, store_cookies, with_cookie
from wbsrun.protocols._transport import (
    DEFAULT_TRANSPORT,
    TRANSPORTS,
    FastTransport,
    HeaderItems,
    Transport,
)
from wbsrun.protocols.h1 import RawHeaders, Timeouts, TransportError, parse_target

__all__ = ["HttpComponent", "HttpResult", "choose_transport"]

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
_CACHE_LIMIT: Final = 10_000
_FALSE: Final = frozenset({"", "false", "no", "off", "0"})
_SET_COOKIE: Final = b"\nset-cookie:"


@final
class HttpResult(Mapping[str, Any]):
    """What `save-as` stores; body text, JSON and headers are decoded only when read.

    `headers` arrive as the transport keeps them: the raw head (fast: `h1.RawHeaders`),
    `(name, value)` byte pairs, or aiohttp's multidict; any becomes `{lower-case name: value}`
    (last one wins) on first read. `latency_ms` is rounded when read, not per request.
    """

    __slots__ = ("_headers", "_hmap", "_json", "_ms", "_raw", "_text", "status")

    def __init__(self, status: int, raw: bytes, headers: Any, latency_ms: float) -> None:
        self.status = status
        self._raw = raw
        self._headers: Any = headers
        self._ms = latency_ms
        self._text: str | None = None
        self._json: Any = _UNSET
        self._hmap: dict[str, str] | None = None

    @property
    def latency_ms(self) -> float:
        return round_to(self._ms, 3)

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

    def _header_map(self) -> dict[str, str]:
        headers = self._hmap
        if headers is None:
            raw = self._headers
            if isinstance(raw, RawHeaders):
                raw = raw.pairs()
            elif isinstance(raw, bytes):  # shrunk pairs: "name\0value\0name\0value"
                parts = raw.split(b"\0") if raw else []
                raw = list(zip(parts[::2], parts[1::2], strict=True))
            if isinstance(raw, list | tuple):
                headers = {
                    k.decode("latin-1").lower(): v.decode("utf-8", "surrogateescape")
                    for k, v in raw
                }
            else:
                headers = {k.lower(): v for k, v in raw.items()}
            self._hmap = headers
        return headers

    def header_values(self, name: str) -> list[str]:
        """Every value of header `name` (any case) in arrival order; the header map keeps
        the last one only, and a response sets each cookie in a Set-Cookie of its own."""
        want = name.lower()
        raw = self._headers
        if isinstance(raw, RawHeaders):
            raw = raw.pairs()
        elif isinstance(raw, bytes):
            parts = raw.split(b"\0") if raw else []
            raw = list(zip(parts[::2], parts[1::2], strict=True))
        if isinstance(raw, list | tuple):
            return [
                v.decode("utf-8", "surrogateescape")
                for k, v in raw
                if k.decode("latin-1").lower() == want
            ]
        getall = getattr(raw, "getall", None)
        if getall is not None:
            return [str(v) for v in getall(name, ())]
        one = self._header_map().get(want)
        return [] if one is None else [one]

    def shrink(self) -> None:
        """Drop what reading decoded (text, JSON, header map): a closed workbook entry keeps
        only the bytes it arrived as, and decodes again if anyone reads it later."""
        self._text = None
        self._json = _UNSET
        self._hmap = None
        raw = self._headers
        if raw.__class__ is list:
            # One bytes object instead of a tuple and two bytes per header (~1.4 KiB a
            # result), unless a NUL inside a name or value would make it ambiguous.
            joined = b"\0".join(chain.from_iterable(raw))
            if not raw or joined.count(0) == 2 * len(raw) - 1:
                self._headers = joined

    def ledger_form(self) -> dict[str, Any]:
        """What the on-disk ledger keeps of a saved result (`progress.sampling: full`): no
        decoding at the close; `wbsrun ledger` shows the body as text."""
        return {"status": self.status, "latency_ms": round_to(self._ms, 3), "body": self._raw}

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
            return self._header_map()
        if key == "latency_ms":
            return round_to(self._ms, 3)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        # Compiled here: the Mapping mixin's `get` runs in Python, and checkpoint metrics
        # read two fields of the last result a pass.
        if key in _KEYS:
            return self[key]
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)


def choose_transport(spec: ComponentSpec | None, runtime: Runtime | None) -> str:
    """Run option > the component's `transport:` key > the default (fast)."""
    chosen = runtime.extras.get("transport") if runtime is not None else None
    if not chosen and spec is not None:
        chosen = spec.transport
    chosen = chosen or DEFAULT_TRANSPORT
    if chosen not in TRANSPORTS:
        expected = ", ".join(TRANSPORTS)
        raise RunError(f"unknown HTTP transport {chosen!r}: expected one of {expected}")
    return str(chosen)


def _seconds(value: Any) -> float | None:
    try:
        seconds = parse_duration(value)
    except UnitError:
        return None
    return seconds or None


def _timeouts(value: Any, default: float) -> Timeouts:
    """`timeout: 5s` bounds the whole request; `{connect, read, total}` each part. A `total`
    that is missing or unreadable is the component's request timeout (`default`)."""
    if isinstance(value, Mapping):
        total = _seconds(value["total"]) if "total" in value else None
        return Timeouts(
            connect=_seconds(value["connect"]) if "connect" in value else None,
            read=_seconds(value["read"]) if "read" in value else None,
            total=total or default,
        )
    return Timeouts(total=_seconds(value) or default)


def _body(value: Any) -> tuple[bytes | None, str | None]:
    """The bytes to send and their default Content-Type (a mapping or list goes as JSON)."""
    if value is None:
        return None, None
    if isinstance(value, bytes):
        return value, "application/octet-stream"
    if isinstance(value, str):
        return value.encode(), "text/plain; charset=utf-8"
    return json.dumps(value).encode(), "application/json"


class HttpComponent(ComponentBase):
    """GET/POST/PUT/PATCH/DELETE/HEAD and `health` over HTTP/1.1 keep-alive.

    Limits (docs/operations.md "Limits"), each `with` > the component's config > the run's
    option > the default: `timeout` (60 s) and `max-body` (10 MiB). The runner arms
    `request_timeout` around a call without `with.timeout` (its deadline wheel, no timer
    here); this component applies `with.timeout` itself and `max-body` on every request.
    """

    CALLS: ClassVar[frozenset[str]] = frozenset(_METHODS)
    REQUESTS_PER_CALL: ClassVar[int] = 1

    def __init__(self, spec: ComponentSpec | None = None) -> None:
        self.spec = spec
        # Resolved again in `init`, which knows the run's options.
        self.request_timeout: float = DEFAULT_REQUEST_TIMEOUT
        self.max_body: int = DEFAULT_MAX_BODY
        self._max_bodies: dict[Any, int | str] = {}  # `with.max-body` → bytes, or the problem
        self.transport: Transport = FastTransport(0)
        # The same object typed as the class when it is the fast transport: the request is then
        # a native call, not a method looked up by name on the `Transport` Protocol.
        self._fast: FastTransport | None = None
        self._timeouts: dict[Any, Timeouts] = {}
        self._checked: dict[str, str | None] = {}  # URL → why it is invalid (None: valid)
        self._texts: dict[int, tuple[tuple[str, ...], str]] = {}  # see _text
        # Cookies: a jar per user unless every scenario says `cookies: false` (these do).
        self._cookies = True
        self._no_cookies: frozenset[str] = frozenset()
        self._extras = Extras(None)  # auth and bodies; file_blob bytes read once a run

    async def init(self, runtime: Runtime) -> None:
        # The component's config > the run's option > the default.
        spec, extras = self.spec, runtime.extras
        timeout = spec.timeout if spec is not None else None
        self.request_timeout = float(
            timeout or extras.get("request-timeout") or DEFAULT_REQUEST_TIMEOUT
        )
        max_body = spec.max_body if spec is not None else None
        self.max_body = int(max_body or extras.get("max-body") or DEFAULT_MAX_BODY)
        self._extras = Extras(runtime.leases)
        self._no_cookies = frozenset(extras.get("no-cookies") or ())
        tls = spec.tls if spec is not None else None
        context = tls_context(tls) if tls is not None else None
        if tls is not None and not tls.verify:
            runtime.log.log(
                "warn",
                f"component '{spec.name if spec else 'http'}': tls.verify is false: "
                "server certificates are not checked",
            )
        choice = choose_transport(self.spec, runtime)
        if choice == "aiohttp":
            from wbsrun.protocols._aiohttp import AiohttpTransport

            self.transport = AiohttpTransport(runtime.connection_limit, context)
            self._fast = None
        else:
            self.transport = self._fast = FastTransport(runtime.connection_limit, context)

    def _timeout(self, value: Any) -> Timeouts:
        if isinstance(value, Mapping):
            return _timeouts(value, self.request_timeout)
        cached = self._timeouts.get(value)
        if cached is None:
            if len(self._timeouts) >= _CACHE_LIMIT:
                self._timeouts.clear()
            cached = self._timeouts[value] = _timeouts(value, self.request_timeout)
        return cached

    def _max_body(self, value: Any) -> int | str:
        """`with.max-body` in bytes, or why it cannot be read."""
        if value.__class__ is not str and value.__class__ is not int:
            try:  # not a cache key (a list or mapping would not even hash)
                return parse_size(value)
            except UnitError as exc:
                return f"max-body: {exc}"
        cached = self._max_bodies.get(value)
        if cached is None:
            try:
                cached = parse_size(value)
            except UnitError as exc:
                cached = f"max-body: {exc}"
            if len(self._max_bodies) >= _CACHE_LIMIT:
                self._max_bodies.clear()
            self._max_bodies[value] = cached
        return cached

    def _invalid(self, url: str) -> str | None:
        try:
            return self._checked[url]
        except KeyError:
            pass
        if len(self._checked) >= _CACHE_LIMIT:
            self._checked.clear()
        try:
            parse_target(url, credentials=True)
            problem = None
        except TransportError as exc:
            problem = str(exc)
        self._checked[url] = problem
        return problem

    def _text(self, value: Any) -> str:
        """`to_text`, remembered for the all-string tuples plan values render to (the
        reference scenario's `x-scope-trace`): immutable all the way down, so the very same
        object always has the same text, and identity is a cheaper key than the tuple."""
        if value.__class__ is not tuple:
            return to_text(value)
        known = self._texts.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        text = to_text(value)
        if all(item.__class__ is str for item in value):
            if len(self._texts) >= _CACHE_LIMIT:
                self._texts.clear()
            self._texts[id(value)] = (value, text)  # the reference keeps the id from reuse
        return text

    def _header_items(self, given: Mapping[Any, Any]) -> HeaderItems:
        items = []
        for name, value in given.items():
            items.append(
                (
                    name if name.__class__ is str else str(name),
                    value if value.__class__ is str else self._text(value),
                )
            )
        return tuple(items)

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        method = _METHODS[call]
        # As a dict (what the executor renders): six reads below are then dict lookups, not
        # `get` looked up by name on the Mapping.
        d: dict[str, Any] = cast(dict[str, Any], args) if type(args) is dict else dict(args)
        if call == "health":
            target = to_text(d.get("target", ""))
            path = to_text(d.get("path", "/health"))
            url = f"http://{target}{path if path.startswith('/') else '/' + path}"
        else:
            url = d.get("url", "")
            if url.__class__ is not str:
                url = to_text(url)
        query = d.get("query")
        if query:
            from urllib.parse import urlencode

            pairs = urlencode({str(k): to_text(v) for k, v in query.items()})
            url = f"{url}{'&' if '?' in url else '?'}{pairs}"
        problem = self._checked.get(url, _UNSET)
        if problem is _UNSET:
            problem = self._invalid(url)
        if problem is not None:
            message = f"{method} {url}: {problem}"
            return ActionOutcome(None, error=codes.INVALID_CONFIGURATION, message=message)
        given = d.get("headers")
        headers = self._header_items(given) if given else ()
        body = d.get("body")
        content_type = None
        if body is not None:
            body, content_type = _body(body)
        # Without `with.timeout` the runner bounds the call (`request_timeout`).
        timeout = d.get("timeout")
        timeouts = self._timeout(timeout) if timeout is not None else None
        redirects = d.get("follow-redirects")
        follow_redirects = bool(redirects) and str(redirects).lower() not in _FALSE
        limit = self.max_body
        given = d.get("max-body")
        if given is not None:
            parsed = self._max_body(given)
            if isinstance(parsed, str):
                message = f"{method} {url}: {parsed}"
                return ActionOutcome(None, error=codes.INVALID_CONFIGURATION, message=message)
            limit = parsed
        auth = False
        if "auth" in d or "form" in d or "multipart" in d or "body-from" in d:
            try:
                headers, body, content_type, auth = self._extras.apply(
                    d, headers, body, content_type, limit
                )
            except (ConvenienceError, TransportError, LeaseError) as refused:
                # Its own name: compiled, a name bound by two handlers keeps the first's type.
                code = (
                    codes.INVALID_CONFIGURATION
                    if isinstance(refused, ConvenienceError)
                    else refused.code
                )
                return ActionOutcome(None, error=code, message=f"{method} {url}: {refused}")
        cookies = self._cookies
        if cookies and (self._no_cookies or "cookies" in d):
            cookies = cookies_for(d, user.scenario, self._no_cookies)
        if follow_redirects:
            return await follow(
                self, user, method, url, headers, body, content_type, timeouts, limit, auth, cookies
            )
        if cookies:
            jar = user.state.get(JAR)
            if jar is not None:
                headers = with_cookie(headers, jar.header(url))
        t0 = perf_counter()
        fast = self._fast
        try:
            # Inline, not through _send: one coroutine frame less per request.
            if fast is not None:
                status, headers_in, raw, sent, received = await fast.request(
                    user, method, url, headers, body, content_type, timeouts, False, limit
                )
            else:
                status, headers_in, raw, sent, received = await self.transport.request(
                    user, method, url, headers, body, content_type, timeouts, False, limit
                )
        except TransportError as exc:
            ms = (perf_counter() - t0) * 1000.0
            return ActionOutcome(
                None,
                error=exc.code,
                message=f"{method} {url}: {exc}",
                latency_ms=ms,
                requests=1,
            )
        ms = (perf_counter() - t0) * 1000.0
        if cookies and (
            headers_in.__class__ is not RawHeaders or headers_in.head.lower().find(_SET_COOKIE) >= 0
        ):
            store_cookies(user.state, url, headers_in)  # the usual answer sets none: no call
        return self.outcome(method, url, status, headers_in, raw, sent, received, ms)

    def outcome(
        self,
        method: str,
        url: str,
        status: int,
        headers_in: Any,
        raw: bytes,
        sent: int,
        received: int,
        ms: float,
    ) -> ActionOutcome:
        result = HttpResult(status, raw, headers_in, ms)
        if status < 400:
            # Positional: keyword passing costs ~150 ns more (outcome.py).
            return ActionOutcome(result, None, "", ms, 1, status, sent, received)
        return ActionOutcome(
            result,
            codes.code_for_status(status),
            f"{method} {url}: HTTP {status}",
            ms,
            1,
            status,
            sent,
            received,
        )

    async def send(
        self,
        user: UserHandle,
        method: str,
        url: str,
        headers: HeaderItems,
        body: bytes | None,
        content_type: str | None,
        timeouts: Timeouts | None,
        limit: int,
    ) -> tuple[int, Any, bytes, int, int]:
        """One request, no redirect followed: the component follows them itself (_extras),
        so cookies and auth apply at every hop on both transports alike."""
        fast = self._fast
        if fast is not None:
            return await fast.request(
                user, method, url, headers, body, content_type, timeouts, False, limit
            )
        return await self.transport.request(
            user, method, url, headers, body, content_type, timeouts, False, limit
        )

    async def release_user(self, user: UserHandle) -> None:
        await self.transport.release_user(user)

    async def release(self) -> None:
        await self.transport.close()
