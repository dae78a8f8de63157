"""A cookie jar per virtual user, with RFC 6265 semantics (section 5: parsing and storage).

Kept apart from the transports: the `http` component stores every response's `Set-Cookie`
here and adds the `Cookie` header before each request, so both transports behave the same.

**Choice (measured):** not `http.cookies` / `http.cookiejar`. `SimpleCookie` costs ~12 µs a
header, refuses values browsers accept and has no domain/path matching; `http.cookiejar`
wants urllib Request/Response objects and applies RFC 2965/Netscape rules, not RFC 6265.
This parser follows RFC 6265 section 5.2 (lenient, as browsers): ~3.4 µs a header with an
Expires date (http2time is most of it), ~1.1 µs without; only responses carrying `Set-Cookie`
and requests of a user with a jar pay anything.

Not implemented: a public-suffix list (a `Domain` attribute must only domain-match the
request host), `SameSite` and `HttpOnly` (no scripts, no cross-site context: stored, ignored).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from http.cookiejar import http2time  # type: ignore[attr-defined]
from ipaddress import ip_address
from typing import Final, final
from urllib.parse import urlsplit

__all__ = ["MAX_COOKIE_BYTES", "MAX_PER_DOMAIN", "MAX_TOTAL", "Cookie", "CookieJar"]

# As browsers (RFC 6265 section 6.1 asks for at least 4096 bytes, 50 a domain, 3000 total;
# Chrome keeps 180 a domain and 3300 in all, Firefox 180/3000): bounded per user so a hostile
# server cannot grow 1,000 users' memory without end.
MAX_PER_DOMAIN: Final = 50
MAX_TOTAL: Final = 300
MAX_COOKIE_BYTES: Final = 4096  # name + value: a larger cookie is ignored
_CACHE_LIMIT: Final = 256


@final
@dataclass(slots=True)
class Cookie:
    name: str
    value: str
    domain: str  # lower case, no leading dot
    path: str
    host_only: bool
    secure: bool
    expires: float | None  # Unix time; None: a session cookie (kept for the whole run)
    created: float


def _is_ip(host: str) -> bool:
    try:
        ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def domain_match(host: str, domain: str) -> bool:
    """RFC 6265 5.1.3: identical, or `host` ends with "." + `domain` and is not an IP."""
    if host == domain:
        return True
    return host.endswith(domain) and host[-len(domain) - 1] == "." and not _is_ip(host)


def default_path(path: str) -> str:
    """RFC 6265 5.1.4: the request path up to (not including) its last "/"."""
    if not path.startswith("/"):
        return "/"
    cut = path.rfind("/")
    return "/" if cut == 0 else path[:cut]


def path_match(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 5.1.4."""
    if request_path == cookie_path:
        return True
    if request_path.startswith(cookie_path):
        return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    return False


def _parse(header: str, host: str, path: str, now: float) -> Cookie | None:
    """One `Set-Cookie` value (RFC 6265 5.2), or None when it is to be ignored."""
    pair, _, attrs = header.partition(";")
    if "=" not in pair:
        return None
    name, _, value = pair.partition("=")
    name, value = name.strip(), value.strip()
    if not name or len(name) + len(value) > MAX_COOKIE_BYTES:
        return None
    domain, cookie_path, secure = "", "", False
    expires: float | None = None
    max_age: float | None = None
    for attr in attrs.split(";"):
        key, _, arg = attr.partition("=")
        key, arg = key.strip().lower(), arg.strip()
        if key == "expires":
            when = http2time(arg)
            if when is not None:
                expires = float(when)
        elif key == "max-age":
            if (arg[:1] == "-" and arg[1:].isdigit()) or arg.isdigit():
                max_age = float(arg)
        elif key == "domain":
            domain = arg.removeprefix(".").lower()  # an empty value: ignored (5.2.3)
        elif key == "path":
            cookie_path = arg if arg.startswith("/") else ""
        elif key == "secure":
            secure = True
    if max_age is not None:  # Max-Age wins over Expires (5.3 step 3)
        expires = now + max_age if max_age > 0 else 0.0
    host_only = not domain
    if host_only:
        domain = host
    elif not domain_match(host, domain):
        return None  # 5.3 step 6: a domain the request host is not part of
    return Cookie(
        name,
        value,
        domain,
        cookie_path or default_path(path),
        host_only,
        secure,
        expires,
        now,
    )


@final
class CookieJar:
    """One user's cookies by (name, domain, path); bounded (`MAX_PER_DOMAIN`, `MAX_TOTAL`).

    `header(url)` is what a request sends, remembered per URL until the jar changes or a
    cookie in it expires, so a user with a session cookie pays one look-up a request."""

    __slots__ = ("_cache", "_cookies", "_next_expiry", "clock")

    def __init__(self, clock: object = None) -> None:
        self._cookies: dict[tuple[str, str, str], Cookie] = {}
        self._cache: dict[str, str | None] = {}
        self._next_expiry = float("inf")
        self.clock = clock if callable(clock) else time.time

    def __len__(self) -> int:
        return len(self._cookies)

    def cookies(self) -> list[Cookie]:
        return list(self._cookies.values())

    def store(self, url: str, headers: list[str]) -> None:
        """Take the `Set-Cookie` values of a response to `url`."""
        parts = urlsplit(url)
        host, path = (parts.hostname or "").lower(), parts.path or "/"
        now = self.clock()
        for header in headers:
            cookie = _parse(header, host, path, now)
            if cookie is None:
                continue
            key = (cookie.name, cookie.domain, cookie.path)
            old = self._cookies.get(key)
            if cookie.expires is not None and cookie.expires <= now:
                self._cookies.pop(key, None)  # an expiry in the past deletes it (5.3 step 11)
                continue
            if old is not None:
                cookie.created = old.created  # 5.3 step 11.3 (and its place in the order)
            self._cookies[key] = cookie
            if cookie.expires is not None and cookie.expires < self._next_expiry:
                self._next_expiry = cookie.expires
            self._bound(cookie.domain, now)
        self._cache.clear()

    def _bound(self, domain: str, now: float) -> None:
        """Expired cookies first, then the oldest (of the domain, then of all)."""
        cookies = self._cookies
        same = [k for k, c in cookies.items() if c.domain == domain]
        if len(same) <= MAX_PER_DOMAIN and len(cookies) <= MAX_TOTAL:
            return
        self._purge(now)
        same = [k for k in same if k in cookies]
        while len(same) > MAX_PER_DOMAIN:
            oldest = min(same, key=lambda k: cookies[k].created)
            del cookies[oldest]
            same.remove(oldest)
        while len(cookies) > MAX_TOTAL:
            del cookies[min(cookies, key=lambda k: cookies[k].created)]

    def _purge(self, now: float) -> None:
        cookies = self._cookies
        for key in [k for k, c in cookies.items() if c.expires is not None and c.expires <= now]:
            del cookies[key]
        self._next_expiry = min(
            (c.expires for c in cookies.values() if c.expires is not None), default=float("inf")
        )
        self._cache.clear()

    def header(self, url: str) -> str | None:
        """The `Cookie` header value for a request to `url` (RFC 6265 5.4), or None."""
        if not self._cookies:
            return None
        if self._next_expiry <= self.clock():
            self._purge(self.clock())
        try:
            return self._cache[url]
        except KeyError:
            pass
        parts = urlsplit(url)
        host, path = (parts.hostname or "").lower(), parts.path or "/"
        secure = parts.scheme.lower() == "https"
        chosen = [
            c
            for c in self._cookies.values()
            if (c.domain == host if c.host_only else domain_match(host, c.domain))
            and path_match(path, c.path)
            and (secure or not c.secure)
        ]
        # Longer paths first, then the older cookie first (5.4 step 2).
        chosen.sort(key=lambda c: (-len(c.path), c.created))
        value = "; ".join(f"{c.name}={c.value}" for c in chosen) or None
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[url] = value
        return value
