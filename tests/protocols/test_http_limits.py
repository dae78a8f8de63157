"""The `http` component's bounds on both transports, against a real server on 127.0.0.1: a body
over `max-body` (announced, streamed without end, chunked, close-delimited, or a gzip bomb)
fails with `body-too-large` and drops the connection; the limit is exact; `with.max-body`,
the component's config and the run's option set it in that order; a `with.timeout` without a
`total` still gets the component's request timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from transport_kit import BIG, HostileServer, calls, runtime
from wbsrun.core import codes
from wbsrun.core.limits import DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT
from wbsrun.core.ports import ActionOutcome, UserHandle
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.protocols.h1 import ConnectionPool, H1Client, origin_key
from wbsrun.protocols.http import HttpComponent

TRANSPORTS = ("fast", "aiohttp")
SPEC = ComponentSpec("http", "1.0.0", "native", None, None, (), {})


def run_calls(
    transport: str,
    steps: Sequence[tuple[str, Mapping[str, Any]]],
    spec: ComponentSpec | None = None,
    extras: Mapping[str, Any] | None = None,
) -> tuple[HttpComponent, list[ActionOutcome]]:
    """`transport_kit.calls` with the component's config and the run's options given."""

    async def main() -> tuple[HttpComponent, list[ActionOutcome]]:
        component = HttpComponent(spec)
        base = runtime(transport)
        await component.init(replace(base, extras={**base.extras, **(extras or {})}))
        user = UserHandle("u1", "s", private_session=False)
        try:
            async with asyncio.timeout(20):
                return component, [await component.run_action(c, a, user) for c, a in steps]
        finally:
            await component.release_user(user)
            await component.release()

    return asyncio.run(main())


def wait_all_closed(server: HostileServer, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while server.open and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.open


ENDLESS = ["/endless-length", "/endless-chunked", "/endless-close", "/gzip-bomb"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("path", ENDLESS)
def test_body_over_the_limit_fails_with_body_too_large_and_drops_the_connection(
    hostile: HostileServer, transport: str, path: str
) -> None:
    started = time.monotonic()
    [outcome] = calls(transport, [("get", {"url": hostile.url(path), "max-body": "1MiB"})])
    assert outcome.error == codes.BODY_TOO_LARGE, outcome.message
    assert "over the max-body limit of 1048576" in outcome.message
    assert outcome.requests == 1
    assert outcome.value is None
    assert time.monotonic() - started < 5.0
    assert wait_all_closed(hostile) == 0  # dropped: the server's endless write ended


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_announced_length_over_the_limit_fails_before_reading_the_body(
    hostile: HostileServer, transport: str
) -> None:
    started = time.monotonic()
    [outcome] = calls(transport, [("get", {"url": hostile.url("/endless-length")})])
    # The default limit (10 MiB) against Content-Length: 1 GiB, at once.
    assert outcome.error == codes.BODY_TOO_LARGE, outcome.message
    assert "announces 1073741824 bytes" in outcome.message
    assert time.monotonic() - started < 2.0
    assert wait_all_closed(hostile) == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("path", "size"), [("/big", len(BIG)), ("/chunked", 11)])
def test_the_limit_is_exact_a_body_of_that_size_passes_one_byte_more_fails(
    hostile: HostileServer, transport: str, path: str, size: int
) -> None:
    url = hostile.url(path)
    at, under = calls(
        transport,
        [("get", {"url": url, "max-body": size}), ("get", {"url": url, "max-body": size - 1})],
    )
    assert at.error is None, at.message
    assert at.value is not None
    assert len(at.value["body"]) == size
    assert under.error == codes.BODY_TOO_LARGE, under.message
    assert wait_all_closed(hostile) == 0


def test_a_kept_alive_connection_holds_no_copy_of_the_body_it_delivered(
    hostile: HostileServer,
) -> None:
    async def main() -> tuple[bytes, bytes]:
        client, pool = H1Client(), ConnectionPool()
        try:
            _, _, body, *_ = await client.request(pool, "GET", hostile.url("/big"))
            idle = pool.acquire_nowait(origin_key(("http", "127.0.0.1", hostile.port)))
            assert idle is not None  # kept alive for the next request
            return body, idle.body()
        finally:
            await pool.aclose()

    body, kept = asyncio.run(main())
    assert body == BIG  # ~1 MB in many reads: joined once, the pieces let go
    assert kept == b""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_decoded_size_counts_a_small_gzip_body_may_not_inflate_past_the_limit(
    hostile: HostileServer, transport: str
) -> None:
    [outcome] = calls(transport, [("get", {"url": hostile.url("/gzip-bomb"), "max-body": "8MiB"})])
    assert outcome.error == codes.BODY_TOO_LARGE, outcome.message
    [fine] = calls(transport, [("get", {"url": hostile.url("/gzip"), "max-body": 100})])
    assert fine.error is None
    assert fine.value is not None
    assert fine.value["json"] == {"packed": True}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_max_body_beats_the_component_which_beats_the_run_option(
    hostile: HostileServer, transport: str
) -> None:
    url = hostile.url("/big")  # ~1 MB
    small, large = 1000, 2_000_000
    component, (by_component, by_action) = run_calls(
        transport,
        [("get", {"url": url}), ("get", {"url": url, "max-body": large})],
        spec=replace(SPEC, max_body=small),
        extras={"max-body": large},
    )
    assert component.max_body == small
    assert by_component.error == codes.BODY_TOO_LARGE
    assert by_action.error is None, by_action.message
    by_run, (outcome,) = run_calls(transport, [("get", {"url": url})], extras={"max-body": small})
    assert by_run.max_body == small
    assert outcome.error == codes.BODY_TOO_LARGE


def test_defaults_are_ten_mib_and_sixty_seconds() -> None:
    assert DEFAULT_MAX_BODY == 10 * 1024 * 1024
    assert DEFAULT_REQUEST_TIMEOUT == 60.0
    component, _ = run_calls("fast", [])
    assert (component.max_body, component.request_timeout) == (DEFAULT_MAX_BODY, 60.0)
    component, _ = run_calls("fast", [], extras={"request-timeout": 2.0, "max-body": 5})
    assert (component.max_body, component.request_timeout) == (5, 2.0)
    spec = replace(SPEC, timeout=3.0, max_body=7)
    component, _ = run_calls("fast", [], spec, {"request-timeout": 2.0, "max-body": 5})
    assert (component.max_body, component.request_timeout) == (7, 3.0)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("path", "status"), [("/head", 200), ("/not-modified", 304)])
def test_a_length_announced_without_a_body_is_not_over_any_limit(
    hostile: HostileServer, transport: str, path: str, status: int
) -> None:
    call = "head" if path == "/head" else "get"
    [outcome] = calls(transport, [(call, {"url": hostile.url(path), "max-body": 2})])
    assert outcome.error is None, outcome.message
    assert outcome.value is not None
    assert outcome.value["status"] == status


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("bad", ["lots", "10 parsecs", 0, -5, "1.5", [1], {"a": 1}])
def test_unreadable_max_body_fails_the_call_as_invalid_configuration_sending_nothing(
    hostile: HostileServer, transport: str, bad: object
) -> None:
    [outcome] = calls(transport, [("get", {"url": hostile.url("/ok"), "max-body": bad})])
    assert outcome.error == codes.INVALID_CONFIGURATION
    assert "max-body: invalid size" in outcome.message
    assert hostile.requests == {}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeout_parts_without_total_still_end_at_the_request_timeout(
    hostile: HostileServer, transport: str
) -> None:
    started = time.monotonic()
    _, [outcome] = run_calls(
        transport,
        [("get", {"url": hostile.url("/silent"), "timeout": {"connect": "2s"}})],
        extras={"request-timeout": 0.3},
    )
    elapsed = time.monotonic() - started
    assert outcome.error == codes.NETWORK_TIMEOUT, outcome.message
    assert 0.25 < elapsed < 3.0
