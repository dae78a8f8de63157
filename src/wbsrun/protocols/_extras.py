"""The `http` component's work off its hot path: following redirects hop by hop (cookies and
auth applied at each), the per-user cookie jar's glue, and `auth` / bodies from `with`.

Interpreted, not compiled: a request that uses none of this only reaches `cookies_for` (when
a scenario or `with` turns cookies off) and `store_cookies` (when an answer sets one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urljoin

from wbsrun.core.ports import ActionOutcome, LeaseProvider, UserHandle
from wbsrun.dsl.template import to_text
from wbsrun.protocols._conveniences import (
    ConvenienceError,
    auth_header,
    form_body,
    multipart_body,
    redirect_location,
    set_cookies,
)
from wbsrun.protocols.cookies import CookieJar
from wbsrun.protocols.h1 import (
    BodyTooLarge,
    HeaderItems,
    ProtocolViolation,
    Timeout,
    Timeouts,
    TransportError,
    parse_target,
)

if TYPE_CHECKING:
    from wbsrun.protocols.http import HttpComponent

__all__ = [
    "JAR",
    "MAX_REDIRECTS",
    "Extras",
    "cookies_for",
    "follow",
    "store_cookies",
    "with_cookie",
]

JAR: Final = "http.cookies"  # the user's CookieJar in UserHandle.state
MAX_REDIRECTS: Final = 10
_OCTETS: Final = "application/octet-stream"
_FALSE: Final = frozenset({"", "false", "no", "off", "0"})


def with_cookie(headers: HeaderItems, value: str | None) -> HeaderItems:
    """The jar's Cookie header added, unless there is none or the scenario sets its own."""
    if value is None or any(h[0].lower() == "cookie" for h in headers):
        return headers
    return (*headers, ("Cookie", value))


def cookies_for(d: Mapping[str, Any], scenario: str, off: frozenset[str]) -> bool:
    """Cookies for this request: off for a `cookies: false` scenario or `with`."""
    if scenario in off:
        return False
    given = d.get("cookies", True)
    return given is True or (given is not False and str(given).lower() not in _FALSE)


def store_cookies(state: dict[str, Any], url: str, headers_in: Any) -> None:
    """The answer's Set-Cookie values into the user's jar (made at its first cookie)."""
    found = set_cookies(headers_in)
    if found:
        jar: CookieJar | None = state.get(JAR)
        if jar is None:
            jar = state[JAR] = CookieJar()
        jar.store(url, found)


def _blob_too_large(name: str, size: int, limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"request body from file_blob '{name}' is {size} bytes, over the max-body limit of {limit}"
    )


class Extras:
    """`auth`, `form`, `multipart`, `body-from` of a call; file_blob bytes read once a run."""

    def __init__(self, leases: LeaseProvider | None) -> None:
        self._leases = leases
        self._blobs: dict[str, bytes] = {}

    def apply(
        self,
        d: Mapping[str, Any],
        headers: HeaderItems,
        body: bytes | None,
        content_type: str | None,
        limit: int,
    ) -> tuple[HeaderItems, bytes | None, str | None, bool]:
        """(headers, body, content type, whether an Authorization header came from `auth`)."""
        bodies = [k for k in ("body", "form", "multipart", "body-from") if d.get(k) is not None]
        if len(bodies) > 1:
            raise ConvenienceError(f"{' and '.join(bodies)}: give one request body, not several")
        if d.get("form") is not None:
            body, content_type = form_body(d["form"]), "application/x-www-form-urlencoded"
        elif d.get("multipart") is not None:
            body, content_type = multipart_body(d["multipart"], lambda n: self.blob(n, limit))
        elif d.get("body-from") is not None:
            body, content_type = self.blob(to_text(d["body-from"]), limit), _OCTETS
        auth = d.get("auth")
        if auth is None:
            return headers, body, content_type, False
        value = auth_header(auth)
        kept = tuple(h for h in headers if h[0].lower() != "authorization")
        return (*kept, ("Authorization", value)), body, content_type, True

    def blob(self, name: str, limit: int) -> bytes:
        """A file_blob's bytes, read at first use through the provider's `mount` (its sha256
        must be the one taken at start) and shared by every request; over `limit`:
        BodyTooLarge, before anything is sent."""
        data = self._blobs.get(name)
        if data is None:
            if self._leases is None:
                raise ConvenienceError(f"file_blob '{name}': no resource provider in this run")
            try:
                blob = self._leases.mount(name)
            except NotImplementedError:
                raise ConvenienceError(f"file_blob '{name}': no provider mounts it") from None
            size = int(blob.get("size", 0))
            if size > limit:
                raise _blob_too_large(name, size, limit)
            try:
                with open(str(blob["path"]), "rb") as handle:
                    data = handle.read(limit + 1)
            except OSError as exc:
                raise ConvenienceError(f"file_blob '{name}': {exc}") from exc
            if hashlib.sha256(data).hexdigest() != blob.get("sha256"):
                raise ConvenienceError(f"file_blob '{name}': the file changed during the run")
            self._blobs[name] = data
        if len(data) > limit:
            raise _blob_too_large(name, len(data), limit)
        return data


async def follow(
    component: HttpComponent,
    user: UserHandle,
    method: str,
    url: str,
    headers: HeaderItems,
    body: bytes | None,
    content_type: str | None,
    timeouts: Timeouts | None,
    limit: int,
    auth: bool,
    cookies: bool,
) -> ActionOutcome:
    """A request and the redirects it meets (at most MAX_REDIRECTS, then protocol-error):
    cookies stored and sent at each hop; an `auth:` Authorization not sent to another origin;
    a 303 (or a 301/302 to a POST) continues as a bodiless GET; `timeouts.total` spans all."""
    t0 = perf_counter()
    first = parse_target(url, credentials=True).origin
    deadline = t0 + timeouts.total if timeouts is not None and timeouts.total else None
    sent = received = 0
    try:
        for _ in range(MAX_REDIRECTS + 1):
            hop = headers
            if auth and parse_target(url, credentials=True).origin != first:
                hop = tuple(h for h in headers if h[0].lower() != "authorization")
            jar: CookieJar | None = user.state.get(JAR) if cookies else None
            if jar is not None:
                hop = with_cookie(hop, jar.header(url))
            hop_timeouts = timeouts
            if timeouts is not None and deadline is not None:
                left = deadline - perf_counter()
                if left <= 0:
                    raise Timeout("total timeout")
                hop_timeouts = Timeouts(timeouts.connect, timeouts.read, left)
            status, headers_in, raw, out, came = await component.send(
                user, method, url, hop, body, content_type, hop_timeouts, limit
            )
            sent += out
            received += came
            if cookies:
                store_cookies(user.state, url, headers_in)
            location = redirect_location(status, headers_in)
            if location is None:
                ms = (perf_counter() - t0) * 1000.0
                return component.outcome(method, url, status, headers_in, raw, sent, received, ms)
            url = urljoin(url, location)
            parse_target(url, credentials=True)  # InvalidRequest for a Location that is not http
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, body, content_type = "GET", None, None
        raise ProtocolViolation(f"more than {MAX_REDIRECTS} redirects")
    except TransportError as exc:
        ms = (perf_counter() - t0) * 1000.0
        message = f"{method} {url}: {exc}"
        return ActionOutcome(None, error=exc.code, message=message, latency_ms=ms, requests=1)
