"""The `http` component against a misbehaving server, on both transports: every hostile answer
ends in its DSL §9 error code within its timeout, good answers give identical results, and no
connection outlives the component (the server's own count of open connections proves it)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from transport_kit import HostileServer, calls
from wbsrun.core import codes
from wbsrun.core.ports import ActionOutcome
from wbsrun.protocols.h1 import PROTOCOL_ERROR

TRANSPORTS = ("fast", "aiohttp")


def wait_all_closed(server: HostileServer, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while server.open and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.open


HOSTILE = [
    ("/garbage", {}, PROTOCOL_ERROR),
    ("/huge-headers", {}, PROTOCOL_ERROR),
    ("/truncated", {}, codes.RESOURCE_UNAVAILABLE),
    ("/close-mid", {}, codes.RESOURCE_UNAVAILABLE),
    ("/reset", {}, codes.RESOURCE_UNAVAILABLE),
    ("/bad-gzip", {}, codes.RESOURCE_UNAVAILABLE),
    ("/dribble", {"timeout": "300ms"}, codes.NETWORK_TIMEOUT),
    ("/silent", {"timeout": {"read": "200ms"}}, codes.NETWORK_TIMEOUT),
    ("/silent", {"timeout": "250ms"}, codes.NETWORK_TIMEOUT),
    ("/redirect-loop", {"follow-redirects": True}, PROTOCOL_ERROR),
    ("/401", {}, codes.UNAUTHORIZED),
    ("/404", {}, codes.HTTP_4XX),
    ("/503", {}, codes.HTTP_5XX),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("path", "extra", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_answer_ends_in_its_code_without_hanging_or_leaking(
    hostile: HostileServer, transport: str, path: str, extra: dict[str, Any], code: str
) -> None:
    started = time.monotonic()
    [outcome] = calls(transport, [("get", {"url": hostile.url(path), **extra})])
    assert outcome.error == code, outcome.message
    assert outcome.requests == 1
    assert time.monotonic() - started < 5.0
    assert wait_all_closed(hostile) == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_connection_is_resource_unavailable(transport: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        [outcome] = calls(transport, [("get", {"url": f"http://127.0.0.1:{port}/"})])
    assert outcome.error == codes.RESOURCE_UNAVAILABLE


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_self_signed_certificate_is_refused_as_resource_unavailable(
    tls_hostile: HostileServer, transport: str
) -> None:
    [outcome] = calls(transport, [("get", {"url": tls_hostile.url("/ok")})])
    assert outcome.error == codes.RESOURCE_UNAVAILABLE
    assert "certificate" in outcome.message.lower()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("url", "why"),
    [("ftp://127.0.0.1/x", "http:// or https://"), ("http:///nohost", "no host")],
)
def test_unusable_url_is_invalid_configuration_and_sends_nothing(
    transport: str, url: str, why: str
) -> None:
    [outcome] = calls(transport, [("get", {"url": url})])
    assert outcome.error == codes.INVALID_CONFIGURATION
    assert why in outcome.message
    assert outcome.requests == 0


GOOD: list[tuple[str, str, dict[str, Any]]] = [
    ("get", "/ok", {}),
    ("get", "/chunked", {}),
    ("get", "/until-eof", {}),
    ("get", "/close", {}),
    ("head", "/head", {}),
    ("get", "/head", {}),
    ("get", "/no-content", {}),
    ("get", "/not-modified", {}),
    ("get", "/interim", {}),
    ("get", "/big", {}),
    ("get", "/gzip", {}),
    ("get", "/deflate", {}),
    ("get", "/redirect", {}),
    ("get", "/redirect", {"follow-redirects": True}),
    ("post", "/ok", {"body": {"a": [1, 2]}}),
    ("put", "/ok", {"body": "text", "headers": {"x-one": "1"}}),
    ("delete", "/ok", {"query": {"id": "a b"}}),
]


def _comparable(outcome: ActionOutcome) -> dict[str, Any]:
    assert outcome.value is not None, outcome.message
    return {k: v for k, v in outcome.value.items() if k != "latency_ms"}


def test_both_transports_give_identical_results_for_well_formed_answers(
    hostile: HostileServer,
) -> None:
    steps = [(c, {"url": hostile.url(path), **extra}) for c, path, extra in GOOD]
    fast = calls("fast", steps, private=True)
    slow = calls("aiohttp", steps, private=True)
    assert [_comparable(o) for o in fast] == [_comparable(o) for o in slow]
    by_path = dict(zip([f"{c} {p} {sorted(e)}" for c, p, e in GOOD], fast, strict=True))
    assert by_path["get /chunked []"].value["body"] == "hello world"  # type: ignore[index]
    assert by_path["get /until-eof []"].value["body"] == "body until close"  # type: ignore[index]
    assert by_path["head /head []"].value["body"] == ""  # type: ignore[index]
    assert by_path["get /interim []"].value["body"] == "done"  # type: ignore[index]
    assert len(by_path["get /big []"].value["json"]["blob"]) == 1_000_000  # type: ignore[index]
    assert by_path["get /gzip []"].value["json"] == {"packed": True}  # type: ignore[index]
    assert by_path["get /redirect []"].value["status"] == 302  # type: ignore[index]
    followed = by_path["get /redirect ['follow-redirects']"]
    assert followed.value["json"] == {"ok": True}  # type: ignore[index]
    assert all(o.error is None for o in fast)
    assert wait_all_closed(hostile) == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_private_sessions_are_closed_with_the_component_even_if_never_released(
    hostile: HostileServer, transport: str
) -> None:
    from transport_kit import runtime
    from wbsrun.core.ports import UserHandle
    from wbsrun.protocols.http import HttpComponent

    async def main() -> None:
        component = HttpComponent()
        await component.init(runtime(transport))
        users = [UserHandle(f"u{i}", "s", private_session=True) for i in range(3)]
        for user in users:
            outcome = await component.run_action("get", {"url": hostile.url("/ok")}, user)
            assert outcome.error is None
        await component.release()

    asyncio.run(main())
    assert hostile.accepted == 3
    assert wait_all_closed(hostile) == 0
