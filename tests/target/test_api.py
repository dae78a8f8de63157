"""The target's demo API (target/api.py) over real loopback HTTP, in the target's own process:
login by JSON or form, bearer token or session cookie, CRUD and paging on items, 401 without
auth, the bounds on sessions, items and bodies, counting by route, and the fault knobs."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from wbsrun.target import TargetKnobs, TargetProcess

Factory = Callable[..., TargetProcess]
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Client:
    """Plain requests to one target; `token` (when set) goes as a bearer token."""

    def __init__(self, target: TargetProcess) -> None:
        self.base = target.url()
        self.token: str | None = None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        form: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, parsed JSON body or None, headers)."""
        sent = dict(headers or {})
        data = None
        if form is not None:
            data = form.encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        request = urllib.request.Request(self.base + path, data, sent, method=method)
        try:
            with _OPENER.open(request, timeout=10) as resp:
                status, raw, got = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            with exc:
                status, raw, got = exc.code, exc.read(), dict(exc.headers)
        return status, json.loads(raw) if raw else None, got

    def login(self, user: str) -> str:
        status, doc, _ = self.call(
            "POST", "/api/login", {"username": user, "password": f"secret-{user}"}
        )
        assert status == 200, doc
        self.token = doc["token"]
        return str(doc["token"])


@pytest.fixture
def client(target: TargetProcess) -> Client:
    return Client(target)


def test_login_by_json_or_form_returns_a_token_and_a_session_cookie(client: Client) -> None:
    status, doc, headers = client.call(
        "POST", "/api/login", {"username": "ann", "password": "secret-ann"}
    )
    assert status == 200
    assert doc["username"] == "ann"
    assert len(doc["token"]) == 32
    assert headers["Set-Cookie"].startswith(f"session={doc['token']};")
    assert "Path=/api" in headers["Set-Cookie"]
    status, form_doc, _ = client.call(
        "POST", "/api/login", form="username=demo&password=secret-demo"
    )
    assert status == 200
    assert form_doc["username"] == "demo"
    assert form_doc["token"] != doc["token"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": "ann", "password": "secret-bob"}, 401),
        ({"username": "ann", "password": "ann"}, 401),
        ({"username": "a b", "password": "secret-a b"}, 401),  # not a user name
        ({"username": "ann"}, 400),
        ({"username": 1, "password": "secret-1"}, 400),
        (b"not json", 400),
        (b"[" * 8000, 400),  # nested past the parser's recursion limit
        ([1, 2], 400),
    ],
)
def test_bad_credentials_are_401_and_a_malformed_login_400(
    client: Client, body: Any, status: int
) -> None:
    got, doc, _ = client.call("POST", "/api/login", body)
    assert got == status
    assert isinstance(doc["error"], str)


def test_me_answers_to_the_bearer_token_or_the_cookie_and_401_otherwise(client: Client) -> None:
    token = client.login("bob")
    assert client.call("GET", "/api/me")[:2] == (200, {"username": "bob"})
    client.token = None
    assert client.call("GET", "/api/me", headers={"Cookie": f"session={token}"})[:2] == (
        200,
        {"username": "bob"},
    )
    assert client.call("GET", "/api/me")[0] == 401
    assert client.call("GET", "/api/me", headers={"Authorization": "Bearer nope"})[0] == 401
    assert client.call("GET", "/api/me", headers={"Authorization": f"Basic {token}"})[0] == 401


def test_items_go_through_create_read_replace_delete(client: Client) -> None:
    client.login("ann")
    status, made, _ = client.call("POST", "/api/items", {"name": "mug", "price": 12, "id": 99})
    assert status == 201
    assert made == {"name": "mug", "price": 12, "id": made["id"]}
    assert made["id"] != 99
    path = f"/api/items/{made['id']}"
    assert client.call("GET", path)[:2] == (200, made)
    status, replaced, _ = client.call("PUT", path, {"name": "cup"})
    assert (status, replaced) == (200, {"name": "cup", "id": made["id"]})
    assert client.call("GET", path)[1] == replaced
    assert client.call("DELETE", path)[:2] == (204, None)
    assert client.call("GET", path)[0] == 404
    assert client.call("PUT", path, {"name": "x"})[0] == 404
    assert client.call("DELETE", path)[0] == 404


def test_an_item_without_a_name_is_400_and_another_users_item_is_404(
    target: TargetProcess,
) -> None:
    ann, bob = Client(target), Client(target)
    ann.login("ann")
    bob.login("bob")
    assert ann.call("POST", "/api/items", {"price": 1})[0] == 400
    assert ann.call("POST", "/api/items", {"name": 5})[0] == 400
    item = ann.call("POST", "/api/items", {"name": "mine"})[1]
    assert bob.call("GET", f"/api/items/{item['id']}")[0] == 404
    assert bob.call("DELETE", f"/api/items/{item['id']}")[0] == 404
    assert bob.call("GET", "/api/items")[1]["total"] == 0
    assert ann.call("GET", f"/api/items/{item['id']}")[0] == 200


def test_the_list_is_paged_in_creation_order(client: Client) -> None:
    client.login("cho")
    ids = [client.call("POST", "/api/items", {"name": f"n{i}"})[1]["id"] for i in range(5)]
    status, first, _ = client.call("GET", "/api/items?per_page=2")
    assert status == 200
    assert [i["id"] for i in first["items"]] == ids[:2]
    assert (first["page"], first["per_page"], first["total"]) == (1, 2, 5)
    last = client.call("GET", "/api/items?per_page=2&page=3")[1]
    assert [i["id"] for i in last["items"]] == ids[4:]
    assert client.call("GET", "/api/items?per_page=2&page=9")[1]["items"] == []
    assert client.call("GET", "/api/items")[1]["per_page"] == 20
    assert client.call("GET", "/api/items?per_page=5000")[1]["per_page"] == 100
    for bad in ("page=0", "page=x", "per_page=-1", "page=%C2%B2", "page=9999999999"):
        assert client.call("GET", f"/api/items?{bad}")[0] == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/me"),
        ("GET", "/api/items"),
        ("POST", "/api/items"),
        ("GET", "/api/items/1"),
        ("PUT", "/api/items/1"),
        ("DELETE", "/api/items/1"),
    ],
)
def test_every_route_but_login_is_401_without_a_token(
    client: Client, method: str, path: str
) -> None:
    body = {"name": "x"} if method in ("POST", "PUT") else None
    status, doc, _ = client.call(method, path, body)
    assert status == 401
    assert "log in" in doc["error"]


def test_sessions_and_items_are_bounded_oldest_evicted_first(target_factory: Factory) -> None:
    target = target_factory(api_max_items=3, api_max_sessions=2)
    first, second, third = Client(target), Client(target), Client(target)
    first.login("ann")
    second.login("ann")
    third.login("ann")  # the first session goes
    assert first.call("GET", "/api/me")[0] == 401
    assert second.call("GET", "/api/me")[0] == 200
    ids = [third.call("POST", "/api/items", {"name": f"n{i}"})[1]["id"] for i in range(5)]
    assert [third.call("GET", f"/api/items/{i}")[0] for i in ids] == [404, 404, 200, 200, 200]
    listed = third.call("GET", "/api/items")[1]
    assert [i["id"] for i in listed["items"]] == ids[2:]
    assert listed["total"] == 3


def test_a_body_over_8_kib_is_413(client: Client) -> None:
    client.login("dev")
    status, doc, _ = client.call("POST", "/api/items", {"name": "x" * 8200})
    assert status == 413
    assert "body over 8192 bytes" in doc["error"]
    assert client.call("POST", "/api/items", {"name": "x" * 8000})[0] == 201


def test_api_requests_are_counted_by_route_and_unknown_ones_are_404_or_405(
    target: TargetProcess, client: Client
) -> None:
    client.login("eve")
    item = client.call("POST", "/api/items", {"name": "a"})[1]
    client.call("GET", f"/api/items/{item['id']}")
    client.call("GET", "/api/items/123456")
    status, _doc, headers = client.call("PATCH", f"/api/items/{item['id']}")
    assert status == 405
    assert headers["Allow"] == "DELETE, GET, PUT"
    assert client.call("GET", "/api/nothing")[0] == 404
    assert client.call("POST", "/api/me")[0] == 405
    stats = target.stats()
    assert stats["by_route"] == {
        "POST /api/login": 1,
        "POST /api/items": 1,
        "GET /api/items/{id}": 2,
        "other": 3,
    }
    assert stats["by_status"] == {"200": 2, "201": 1, "404": 2, "405": 2}
    assert stats["received"] == stats["responded"] == 7


def test_the_fault_knobs_apply_to_the_api(target_factory: Factory) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=150))
    client = Client(target)
    started = time.monotonic()
    client.login("ann")
    assert time.monotonic() - started >= 0.15
    target.control(latency_ms=0, status=503)
    status, doc, _ = client.call("GET", "/api/me")
    assert (status, doc) == (503, {"error": "injected", "status": 503})
