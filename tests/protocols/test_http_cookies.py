"""The http component's cookie jar per user (RFC 6265), against a real aiohttp server, the same
on both transports: set, sent, replaced, expired, path, host-only, secure, redirects, off."""

from __future__ import annotations

import json
from typing import Any

import pytest

from http_kit import TRANSPORTS, AppServer, run_calls, tls_spec
from wbsrun.core.ports import ActionOutcome


def sent_cookie(outcome: ActionOutcome) -> Any:
    assert outcome.error is None, outcome.message
    assert outcome.value is not None
    return json.loads(outcome.value["body"])["cookie"]


def set_url(app: AppServer, *cookies: str, to: str | None = None, host: str = "127.0.0.1") -> str:
    from urllib.parse import urlencode

    query = [("c", c) for c in cookies] + ([("to", to)] if to else [])
    return app.url(f"/set?{urlencode(query)}", host)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cookies_set_by_a_response_are_sent_back_and_replaced_by_name_domain_path(
    app: AppServer, transport: str
) -> None:
    outcomes = run_calls(
        transport,
        [
            ("get", {"url": set_url(app, "sid=one", "theme=dark; Path=/")}),
            ("get", {"url": app.url("/echo")}),
            ("get", {"url": set_url(app, "sid=two")}),
            ("get", {"url": app.url("/echo")}),
        ],
    )
    assert sent_cookie(outcomes[1]) == "sid=one; theme=dark"
    # Replaced in place: the older creation time keeps sid first.
    assert sent_cookie(outcomes[3]) == "sid=two; theme=dark"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_max_age_zero_and_a_past_expires_delete_the_cookie(app: AppServer, transport: str) -> None:
    outcomes = run_calls(
        transport,
        [
            ("get", {"url": set_url(app, "a=1", "b=2", "c=3; Max-Age=1")}),
            ("get", {"url": app.url("/echo")}),
            ("get", {"url": set_url(app, "a=x; Max-Age=0")}),
            ("get", {"url": set_url(app, "b=x; Expires=Thu, 01 Jan 1970 00:00:01 GMT")}),
            ("get", {"url": app.url("/echo")}),
        ],
    )
    assert sent_cookie(outcomes[1]) == "a=1; b=2; c=3"
    assert sent_cookie(outcomes[4]) == "c=3"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cookie_goes_only_to_its_path_and_its_host(app: AppServer, transport: str) -> None:
    outcomes = run_calls(
        transport,
        [
            ("get", {"url": set_url(app, "p=1; Path=/api", "h=2")}),
            ("get", {"url": app.url("/api/items")}),
            ("get", {"url": app.url("/apix")}),
            ("get", {"url": app.url("/api", host="localhost")}),
            ("get", {"url": set_url(app, "d=3; Domain=example.com")}),
            ("get", {"url": app.url("/other")}),
        ],
    )
    assert sent_cookie(outcomes[1]) == "p=1; h=2"
    assert sent_cookie(outcomes[2]) == "h=2"
    assert sent_cookie(outcomes[3]) is None  # host-only: 127.0.0.1 is not localhost
    assert sent_cookie(outcomes[5]) == "h=2"  # a Domain the host is not in: refused


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_secure_cookie_is_sent_over_https_only(
    app: AppServer, tls_app: AppServer, pki: dict[str, Any], transport: str
) -> None:
    outcomes = run_calls(
        transport,
        [
            ("get", {"url": set_url(app, "s=1; Secure", "plain=2")}),
            ("get", {"url": app.url("/echo")}),
            ("get", {"url": tls_app.url("/echo")}),
        ],
        spec=tls_spec(ca_file=pki["ca"]),
    )
    assert sent_cookie(outcomes[1]) == "plain=2"
    assert sent_cookie(outcomes[2]) == "s=1; plain=2"  # cookies ignore the port (RFC 6265)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cookies_of_a_redirect_are_stored_and_sent_on_the_next_hop(
    app: AppServer, transport: str
) -> None:
    [outcome] = run_calls(
        transport,
        [("post", {"url": set_url(app, "sid=9", to="/landing"), "follow-redirects": True})],
    )
    assert outcome.value is not None, outcome.message
    echo = json.loads(outcome.value["body"])
    assert (echo["method"], echo["path"], echo["cookie"]) == ("GET", "/landing", "sid=9")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cookies_false_per_action_or_scenario_neither_sends_nor_stores(
    app: AppServer, transport: str
) -> None:
    outcomes = run_calls(
        transport,
        [
            ("get", {"url": set_url(app, "a=1")}),
            ("get", {"url": app.url("/echo"), "cookies": False}),
            ("get", {"url": set_url(app, "b=2"), "cookies": False}),
            ("get", {"url": app.url("/echo"), "headers": {"Cookie": "mine=1"}}),
            ("get", {"url": app.url("/echo")}),
        ],
    )
    assert sent_cookie(outcomes[1]) is None
    assert sent_cookie(outcomes[3]) == "mine=1"  # the scenario's own header wins
    assert sent_cookie(outcomes[4]) == "a=1"
    off = run_calls(
        transport,
        [("get", {"url": set_url(app, "a=1")}), ("get", {"url": app.url("/echo")})],
        extras={"no-cookies": frozenset({"s"})},
    )
    assert sent_cookie(off[1]) is None


def test_users_do_not_share_cookies_on_the_shared_pool(app: AppServer) -> None:
    first = run_calls("fast", [("get", {"url": set_url(app, "a=1")})])
    second = run_calls("fast", [("get", {"url": app.url("/echo")})])
    assert first[0].error is None
    assert sent_cookie(second[0]) is None
