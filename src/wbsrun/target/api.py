"""The target's demo API: login, a session, and CRUD on items, in bounded memory.

Meant for tutorials and examples (docs/tutorial.md, docs/cookbook.md): realistic enough to
capture a token and walk a create → read → update → delete flow, small enough to read.

- Any user name of 1-64 letters, digits, `.`, `_` or `-` logs in with the password
  `secret-<name>` (`demo` / `secret-demo`): no user list, so a data feeder can bring any names.
- A login returns `{"token": T, "username": U}` and sets the cookie `session=T` (path `/api`);
  the other routes take `Authorization: Bearer T` or that cookie, else answer 401.
- Items belong to the user who created them; another user's item is 404.
- Bounded: at most `max_sessions` sessions and `max_items` items (10,000 each by default), the
  oldest evicted first (an evicted token answers 401, an evicted item 404); request bodies over
  8 KiB are refused (413).
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

__all__ = ["API_ROUTES", "MAX_BODY", "DemoApi", "api_route"]

API_ROUTES = (
    "POST /api/login",
    "GET /api/me",
    "GET /api/items",
    "POST /api/items",
    "GET /api/items/{id}",
    "PUT /api/items/{id}",
    "DELETE /api/items/{id}",
)
# Items keep their bodies: 10,000 items x 8 KiB bounds the API's memory near 100 MB.
MAX_BODY = 8 * 1024
DEFAULT_MAX_ITEMS = 10_000
DEFAULT_MAX_SESSIONS = 10_000
MAX_PER_PAGE = 100
COOKIE = "session"
_USER = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ITEM_PATH = re.compile(r"/api/items/([0-9]{1,18})")
_JSON = "application/json"


def api_route(method: str, path: str) -> str | None:
    """The `/__stats` route name of an API request (None: no such route)."""
    if path in ("/api/login", "/api/me", "/api/items"):
        name = f"{method} {path}"
    elif _ITEM_PATH.fullmatch(path):
        name = f"{method} /api/items/{{id}}"
    else:
        return None
    return name if name in API_ROUTES else None


class _Refused(Exception):
    """An answer other than success, raised from deep in a handler."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _answer(status: int, document: object) -> web.Response:
    return web.Response(status=status, text=json.dumps(document), content_type=_JSON)


class DemoApi:
    """Sessions and items of one target process (single-threaded: no locks needed)."""

    def __init__(
        self, max_items: int = DEFAULT_MAX_ITEMS, max_sessions: int = DEFAULT_MAX_SESSIONS
    ) -> None:
        self.max_items = max_items
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, str] = OrderedDict()  # token -> user, oldest first
        self._items: OrderedDict[int, str] = OrderedDict()  # id -> owner, oldest first
        self._owned: dict[str, dict[int, dict[str, Any]]] = {}  # owner -> id -> item
        self._next_id = 1

    @property
    def sessions(self) -> int:
        """Live sessions."""
        return len(self._sessions)

    @property
    def items(self) -> int:
        """Stored items, all users together."""
        return len(self._items)

    async def handle(self, request: web.BaseRequest, route: str | None) -> web.Response:
        """Answer one request under /api/ (`route` from `api_route`; None: 404 or 405)."""
        try:
            if route is None:
                return self._unrouted(request.method, request.path)
            if route == "POST /api/login":
                return self._login(await _fields(request))
            user = self._user(request)
            if route == "GET /api/me":
                return _answer(200, {"username": user})
            if route == "GET /api/items":
                return self._list(user, request.query.get("page"), request.query.get("per_page"))
            if route == "POST /api/items":
                return self._create(user, await _item_fields(request))
            item_id = int(request.path.rsplit("/", 1)[1])
            if route == "GET /api/items/{id}":
                return _answer(200, self._item(user, item_id))
            if route == "PUT /api/items/{id}":
                return self._replace(user, item_id, await _item_fields(request))
            self._item(user, item_id)
            del self._items[item_id]
            self._drop(user, item_id)
            return web.Response(status=204)
        except _Refused as exc:
            return _answer(exc.status, {"error": str(exc)})

    # -- routes ---------------------------------------------------------------------------------

    def _login(self, fields: dict[str, Any]) -> web.Response:
        username, password = fields.get("username"), fields.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise _Refused(400, "expected 'username' and 'password' (JSON or a form)")
        if not _USER.fullmatch(username) or password != f"secret-{username}":
            raise _Refused(401, "wrong user name or password")
        token = secrets.token_hex(16)
        self._sessions[token] = username
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        response = _answer(200, {"token": token, "username": username})
        response.set_cookie(COOKIE, token, path="/api", httponly=True)
        return response

    def _user(self, request: web.BaseRequest) -> str:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            token = request.cookies.get(COOKIE, "")
        user = self._sessions.get(token.strip())
        if user is None:
            raise _Refused(401, "log in first: POST /api/login, then send the token")
        return user

    def _list(self, user: str, page_text: str | None, per_page_text: str | None) -> web.Response:
        page = _positive("page", page_text, 1)
        per_page = min(_positive("per_page", per_page_text, 20), MAX_PER_PAGE)
        owned = self._owned.get(user, {})
        start = (page - 1) * per_page
        chosen = list(itertools.islice(owned.values(), start, start + per_page))
        document = {"items": chosen, "page": page, "per_page": per_page, "total": len(owned)}
        return _answer(200, document)

    def _create(self, user: str, fields: dict[str, Any]) -> web.Response:
        item_id = self._next_id
        self._next_id += 1
        self._items[item_id] = user
        self._owned.setdefault(user, {})[item_id] = {**fields, "id": item_id}
        while len(self._items) > self.max_items:
            oldest, owner = self._items.popitem(last=False)
            self._drop(owner, oldest)
        return _answer(201, {**fields, "id": item_id})

    def _item(self, user: str, item_id: int) -> dict[str, Any]:
        item = self._owned.get(user, {}).get(item_id)
        if item is None:
            raise _Refused(404, f"no item {item_id} of yours")
        return item

    def _replace(self, user: str, item_id: int, fields: dict[str, Any]) -> web.Response:
        self._item(user, item_id)
        item = {**fields, "id": item_id}
        self._owned[user][item_id] = item
        return _answer(200, item)

    def _drop(self, owner: str, item_id: int) -> None:
        owned = self._owned[owner]
        del owned[item_id]
        if not owned:
            del self._owned[owner]

    def _unrouted(self, method: str, path: str) -> web.Response:
        known = [m for m in ("DELETE", "GET", "POST", "PUT") if api_route(m, path)]
        if not known:
            return _answer(404, {"error": f"no route {path}"})
        allow = ", ".join(known)
        response = _answer(405, {"error": f"{method} not allowed on {path}", "allow": allow})
        response.headers["Allow"] = allow
        return response


def _positive(name: str, text: str | None, default: int) -> int:
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) < 1:
        raise _Refused(400, f"'{name}' must be a whole number >= 1, got {text!r}")
    return int(text)


async def _body(request: web.BaseRequest) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _Refused(413, f"body over {MAX_BODY} bytes")
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise _Refused(413, f"body over {MAX_BODY} bytes")
    return body


async def _fields(request: web.BaseRequest) -> dict[str, Any]:
    """A JSON object or an urlencoded form (by Content-Type), as a mapping."""
    body = await _body(request)
    if request.content_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise _Refused(400, "the form is not UTF-8") from None
        return {key: values[-1] for key, values in form.items()}
    try:
        document = json.loads(body) if body else None
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        raise _Refused(400, "the body is not JSON") from None
    if not isinstance(document, dict):
        raise _Refused(400, "expected a JSON object")
    return document


async def _item_fields(request: web.BaseRequest) -> dict[str, Any]:
    fields = await _fields(request)
    if not isinstance(fields.get("name"), str):
        raise _Refused(400, "an item needs a 'name' (a string)")
    fields.pop("id", None)  # the server assigns ids
    return fields
