"""Both transports against a real nginx (Debian's package): keep-alive reuse counted by nginx
itself, its `Connection: close` after `keepalive_requests`, gzip over chunked encoding, HEAD,
204, redirects, status codes, and the same results whichever transport runs."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest

from transport_kit import Nginx, calls
from wbsrun.core import codes
from wbsrun.protocols.h1 import ConnectionPool, H1Client

TRANSPORTS = ("fast", "aiohttp")


def test_keep_alive_is_reused_until_nginx_says_connection_close(nginx: Nginx) -> None:
    """nginx closes after `keepalive_requests 3`: 7 requests need exactly 3 connections."""
    before = nginx.accepted()

    async def main() -> tuple[list[int], int, int]:
        client, pool = H1Client(), ConnectionPool()
        statuses = [(await client.request(pool, "GET", nginx.url("/ok")))[0] for _ in range(7)]
        stats = pool.statistics()
        await pool.aclose()
        return statuses, stats.opened_total, pool.statistics().open

    statuses, opened, still_open = asyncio.run(main())
    assert statuses == [200] * 7
    assert opened == 3
    assert still_open == 0
    assert nginx.accepted() - before == 3


def test_gzip_over_chunked_encoding_is_decoded(nginx: Nginx) -> None:
    async def main() -> tuple[int, dict[bytes, bytes], bytes]:
        client, pool = H1Client(), ConnectionPool()
        status, headers, body, *_ = await client.request(pool, "GET", nginx.url("/gzip"))
        await pool.aclose()
        return status, {k.lower(): v for k, v in headers}, body

    status, headers, body = asyncio.run(main())
    assert status == 200
    assert headers[b"content-encoding"] == b"gzip"
    assert headers[b"transfer-encoding"] == b"chunked"
    assert body == b'{"packed": "' + b"x" * 300 + b'"}'
    assert len(gzip.compress(body)) < len(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("call", "path", "extra", "status", "code"),
    [
        ("get", "/ok", {}, 200, None),
        ("head", "/ok", {}, 200, None),
        ("post", "/ok", {"body": {"asset": "a-1"}}, 200, None),
        ("delete", "/ok", {}, 200, None),
        ("get", "/empty", {}, 204, None),
        ("get", "/moved", {}, 302, None),
        ("get", "/moved", {"follow-redirects": True}, 200, None),
        ("get", "/denied", {}, 403, codes.UNAUTHORIZED),
        ("get", "/broken", {}, 502, codes.HTTP_5XX),
        ("get", "/nowhere", {}, 404, codes.HTTP_4XX),
    ],
)
def test_nginx_answers_map_to_status_and_code(
    nginx: Nginx,
    transport: str,
    call: str,
    path: str,
    extra: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    [outcome] = calls(transport, [(call, {"url": nginx.url(path), **extra})])
    assert outcome.error == code
    assert outcome.value is not None
    assert outcome.value["status"] == status


def test_results_from_nginx_are_identical_on_both_transports(nginx: Nginx) -> None:
    steps: list[tuple[str, dict[str, Any]]] = [
        ("get", {"url": nginx.url("/ok")}),
        ("head", {"url": nginx.url("/ok")}),
        ("get", {"url": nginx.url("/gzip")}),
        ("get", {"url": nginx.url("/empty")}),
        ("get", {"url": nginx.url("/moved"), "follow-redirects": True}),
        ("post", {"url": nginx.url("/ok"), "body": "plain text"}),
    ]

    def comparable(outcome: Any) -> dict[str, Any]:
        value = dict(outcome.value)
        value.pop("latency_ms")
        value["headers"] = {k: v for k, v in value["headers"].items() if k != "date"}
        return value

    fast = [comparable(o) for o in calls("fast", steps)]
    slow = [comparable(o) for o in calls("aiohttp", steps)]
    assert fast == slow
    assert fast[2]["json"] == {"packed": "x" * 300}
    assert fast[1]["body"] == ""
