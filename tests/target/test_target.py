"""The embedded asset server, driven over real loopback HTTP in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from wbsrun.errors import RunError
from wbsrun.target import TargetKnobs, TargetProcess, loopback_hosts
from wbsrun.target.__main__ import build_parser
from wbsrun.target.app import DEFAULT_ASSET
from wbsrun.target.process import KNOB_NAMES

Factory = Callable[..., TargetProcess]

EXAMPLE_ASSET = (
    Path(__file__).resolve().parents[2] / "src/wbsrun/examples/http_tri_phase/payloads/asset.json"
)


async def _request(
    session: aiohttp.ClientSession, method: str, url: str, data: bytes | None = None
) -> tuple[int, bytes, str]:
    async with session.request(method, url, data=data) as resp:
        return resp.status, await resp.read(), resp.content_type


def fetch(
    method: str, url: str, data: bytes | None = None, timeout: float = 5.0
) -> tuple[int, bytes, str]:
    """One request on a fresh aiohttp session: (status, body, content type)."""

    async def run() -> tuple[int, bytes, str]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            return await _request(session, method, url, data)

    return asyncio.run(run())


def fetch_many(requests: list[tuple[str, str]], timeout: float = 10.0) -> list[int]:
    """Send (method, url) requests concurrently on one keep-alive session; their statuses."""

    async def run() -> list[int]:
        connector = aiohttp.TCPConnector(limit=0)
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
            results = await asyncio.gather(*(_request(session, m, u) for m, u in requests))
        return [status for status, _, _ in results]

    return asyncio.run(run())


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


# -- routes -----------------------------------------------------------------------------------


def test_default_asset_is_the_reference_payload_byte_for_byte() -> None:
    assert EXAMPLE_ASSET.read_bytes() == DEFAULT_ASSET


@pytest.mark.parametrize(
    ("method", "data", "expected"),
    [
        ("GET", None, DEFAULT_ASSET),
        ("POST", b"x" * 1234, b'{"stored":true,"bytes":1234}'),
        ("DELETE", None, b'{"deleted":true}'),
    ],
)
def test_asset_routes_answer_200_with_their_json_body(
    target: TargetProcess, method: str, data: bytes | None, expected: bytes
) -> None:
    assert fetch(method, target.url() + "/asset", data=data) == (200, expected, "application/json")


def test_health_answers_ok_to_get_and_head(target: TargetProcess) -> None:
    assert fetch("GET", target.url() + "/health")[:2] == (200, b"ok")
    assert fetch("HEAD", target.url() + "/health")[:2] == (200, b"")


def test_unknown_path_is_404_and_other_method_on_asset_is_405(target: TargetProcess) -> None:
    assert fetch("GET", target.url() + "/nope")[0] == 404
    assert fetch("PUT", target.url() + "/asset")[0] == 405
    assert target.stats()["by_route"] == {"other": 2}


def test_query_string_does_not_change_the_route(target: TargetProcess) -> None:
    assert fetch("GET", target.url() + "/asset?user=7")[:2] == (200, DEFAULT_ASSET)


def test_asset_file_replaces_the_served_document(target_factory: Factory, tmp_path: Path) -> None:
    asset = tmp_path / "doc.json"
    asset.write_bytes(b'{"custom": [1, 2, 3]}')
    proc = target_factory(asset_file=asset)
    assert fetch("GET", proc.url() + "/asset")[1] == b'{"custom": [1, 2, 3]}'


# -- knobs ------------------------------------------------------------------------------------


def test_latency_knob_delays_asset_responses_by_at_least_the_set_latency(
    target_factory: Factory,
) -> None:
    proc = target_factory(knobs=TargetKnobs(latency_ms=150))
    for _ in range(3):
        began = time.perf_counter()
        assert fetch("GET", proc.url() + "/asset")[0] == 200
        assert time.perf_counter() - began > 0.150
    began = time.perf_counter()
    assert fetch("GET", proc.url() + "/health")[0] == 200
    assert time.perf_counter() - began < 0.150  # health is never delayed


def test_jitter_keeps_delays_between_latency_and_latency_plus_jitter(
    target_factory: Factory,
) -> None:
    proc = target_factory(knobs=TargetKnobs(latency_ms=50, jitter_ms=100))
    for _ in range(4):
        began = time.perf_counter()
        fetch("GET", proc.url() + "/asset")
        assert 0.050 < time.perf_counter() - began < 1.0


def test_error_rate_one_answers_every_asset_request_with_500(target_factory: Factory) -> None:
    proc = target_factory(knobs=TargetKnobs(error_rate=1.0))
    statuses = fetch_many([("GET", proc.url() + "/asset")] * 20)
    assert statuses == [500] * 20
    assert fetch("GET", proc.url() + "/health")[0] == 200


def test_error_rate_sequence_is_reproducible_for_a_given_seed(target_factory: Factory) -> None:
    def statuses(seed: int) -> list[int]:
        proc = target_factory(knobs=TargetKnobs(error_rate=0.5), seed=seed)
        return [fetch("GET", proc.url() + "/asset")[0] for _ in range(30)]

    first = statuses(seed=7)
    assert first == statuses(seed=7)
    assert set(first) == {200, 500}


def test_status_knob_forces_every_asset_answer(target_factory: Factory) -> None:
    proc = target_factory(knobs=TargetKnobs(status=401))
    assert fetch("GET", proc.url() + "/asset")[0] == 401
    assert fetch("POST", proc.url() + "/asset", data=b"{}")[0] == 401
    assert fetch("DELETE", proc.url() + "/asset")[0] == 401


def test_fail_health_answers_503_while_asset_still_serves(target_factory: Factory) -> None:
    proc = target_factory(knobs=TargetKnobs(fail_health=True))
    assert fetch("GET", proc.url() + "/health")[0] == 503
    assert fetch("HEAD", proc.url() + "/health")[0] == 503
    assert fetch("GET", proc.url() + "/asset")[0] == 200


def test_per_host_knob_affects_only_that_host(target_factory: Factory) -> None:
    proc = target_factory(hosts=["127.0.0.2", "127.0.0.3"])
    proc.control(host="127.0.0.3", status=401, fail_health=True)
    assert fetch("GET", proc.url("127.0.0.3") + "/asset")[0] == 401
    assert fetch("GET", proc.url("127.0.0.3") + "/health")[0] == 503
    assert fetch("GET", proc.url("127.0.0.2") + "/asset")[0] == 200
    assert fetch("GET", proc.url("127.0.0.2") + "/health")[0] == 200


def test_per_host_knob_overrides_the_global_one(target_factory: Factory) -> None:
    proc = target_factory(hosts=["127.0.0.2", "127.0.0.3"])
    proc.control(status=503)
    proc.control(host="127.0.0.2", status=None)
    assert fetch("GET", proc.url("127.0.0.2") + "/asset")[0] == 200
    assert fetch("GET", proc.url("127.0.0.3") + "/asset")[0] == 503


def test_hang_is_cut_by_the_client_timeout_and_never_answered(target_factory: Factory) -> None:
    proc = target_factory(knobs=TargetKnobs(hang=True))
    began = time.perf_counter()
    with pytest.raises(asyncio.TimeoutError):
        fetch("GET", proc.url() + "/asset", timeout=0.3)
    assert time.perf_counter() - began < 2.0
    # A hung server hangs its health endpoint too (health checks must see it as down) …
    with pytest.raises(asyncio.TimeoutError):
        fetch("GET", proc.url() + "/health", timeout=0.3)
    # … while the admin routes still answer: the process itself is not stuck.
    stats = proc.stats()
    assert (stats["received"], stats["responded"]) == (2, 0)


def test_close_knob_drops_the_connection_without_an_answer(target_factory: Factory) -> None:
    proc = target_factory(knobs=TargetKnobs(close=True))
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
        sock.sendall(b"GET /asset HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(4096) == b""  # EOF, not a single byte of answer
    stats = proc.stats()
    assert (stats["received"], stats["responded"], stats["by_status"]) == (1, 0, {})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        fetch("POST", proc.url() + "/asset", data=b"{}")


def test_control_changes_knobs_at_runtime_and_reset_restores_start_knobs(
    target_factory: Factory,
) -> None:
    proc = target_factory(hosts=["127.0.0.2", "127.0.0.3"], knobs=TargetKnobs(status=418))
    assert fetch("GET", proc.url() + "/asset")[0] == 418
    proc.control(status=None, error_rate=1.0)
    proc.control(host="127.0.0.3", error_rate=0.0)
    assert fetch("GET", proc.url("127.0.0.2") + "/asset")[0] == 500
    assert fetch("GET", proc.url("127.0.0.3") + "/asset")[0] == 200
    proc.control(reset=True)
    assert fetch("GET", proc.url("127.0.0.2") + "/asset")[0] == 418
    assert fetch("GET", proc.url("127.0.0.3") + "/asset")[0] == 418


def test_control_rejects_unknown_knobs_and_bad_values(target: TargetProcess) -> None:
    with pytest.raises(ValueError, match="unknown knob 'latency'"):
        target.control(latency=5)
    with pytest.raises(ValueError, match="error_rate"):
        target.control(error_rate=1.5)
    request = urllib.request.Request(
        target.url() + "/__control", data=b'{"status": "teapot"}', method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(request, timeout=5)
    with caught.value as error:
        assert error.code == 400
        assert b"status" in error.read()
    with pytest.raises(RunError, match="not served here"):
        target.control(host="127.0.0.9", status=401)


# -- counters ---------------------------------------------------------------------------------


def test_stats_count_exactly_the_requests_sent_and_exclude_admin_routes(
    target: TargetProcess,
) -> None:
    url = target.url()
    sent = (
        [("GET", url + "/asset")] * 20
        + [("POST", url + "/asset")] * 10
        + [("DELETE", url + "/asset")] * 5
        + [("GET", url + "/health"), ("GET", url + "/missing")]
    )
    assert len(sent) == 37
    for _ in range(3):
        target.stats()
    fetch_many(sent)
    stats = target.stats()
    assert stats == {
        "received": 37,
        "responded": 37,
        "by_route": {
            "GET /asset": 20,
            "POST /asset": 10,
            "DELETE /asset": 5,
            "GET /health": 1,
            "other": 1,
        },
        "by_host": {"127.0.0.1": 37},
        "by_status": {"200": 36, "404": 1},
    }
    target.control(latency_ms=1)
    target.reset_stats()
    assert target.stats() == {
        "received": 0,
        "responded": 0,
        "by_route": {},
        "by_host": {},
        "by_status": {},
    }


# -- where it listens -------------------------------------------------------------------------


def test_serves_fifty_loopback_hosts_on_one_port(target_factory: Factory) -> None:
    hosts = loopback_hosts(50)
    proc = target_factory(hosts=hosts)
    assert proc.hosts == tuple(hosts)
    statuses = fetch_many([("GET", proc.url(h) + "/asset") for h in hosts])
    assert statuses == [200] * 50
    assert proc.stats()["by_host"] == dict.fromkeys(hosts, 1)


def test_scattered_hosts_are_all_served(target_factory: Factory) -> None:
    hosts = [f"127.{i}.{i * 3 % 256}.{i + 1}" for i in range(1, 13)]  # not consecutive
    proc = target_factory(hosts=hosts)
    assert fetch_many([("GET", proc.url(h) + "/health") for h in hosts]) == [200] * 12


def test_a_thousand_hosts_take_a_thousand_concurrent_connections(
    target_factory: Factory,
) -> None:
    hosts = loopback_hosts(1000)
    assert hosts[-1] == "127.0.3.233"
    proc = target_factory(hosts=hosts)
    statuses = fetch_many([("GET", proc.url(h) + "/asset") for h in hosts], timeout=30)
    assert statuses == [200] * 1000
    stats = proc.stats()
    assert stats["responded"] == 1000
    assert len(stats["by_host"]) == 1000


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_serves_on_the_ipv6_loopback(target_factory: Factory) -> None:
    proc = target_factory(hosts=["::1"])
    assert proc.url() == f"http://[::1]:{proc.port}"
    assert fetch("GET", proc.url() + "/asset")[:2] == (200, DEFAULT_ASSET)
    assert proc.stats()["by_host"] == {"::1": 1}


@pytest.mark.parametrize("host", ["10.0.0.1", "0.0.0.0", "::", "localhost", "example.com"])
def test_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(RunError, match=r"non-loopback|not an IP address"):
        TargetProcess.start(hosts=["127.0.0.1", host])


def test_loopback_hosts_are_consecutive_and_stay_in_127_8() -> None:
    assert loopback_hosts(3) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert loopback_hosts(2, "127.0.0.255") == ["127.0.0.255", "127.0.1.0"]
    assert loopback_hosts(1, "::1") == ["::1"]
    assert loopback_hosts(0) == []
    with pytest.raises(ValueError, match="past the end"):
        loopback_hosts(3, "127.255.255.253")
    with pytest.raises(ValueError, match="non-loopback"):
        loopback_hosts(2, "10.0.0.1")
    with pytest.raises(ValueError, match="single loopback"):
        loopback_hosts(2, "::1")


def test_knobs_reject_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        TargetKnobs(error_rate=2)
    with pytest.raises(ValueError, match="latency_ms"):
        TargetKnobs(latency_ms=-1)
    with pytest.raises(ValueError, match="status"):
        TargetKnobs(status=42)


def test_taken_port_surfaces_as_run_error(target: TargetProcess) -> None:
    with pytest.raises(RunError, match=r"cannot listen on 127\.0\.0\.1"):
        TargetProcess.start(port=target.port)


# -- process lifecycle ------------------------------------------------------------------------


def test_stop_leaves_no_process_and_is_idempotent() -> None:
    proc = TargetProcess.start()
    assert pid_exists(proc.pid)
    proc.stop()
    assert not pid_exists(proc.pid)
    assert proc.returncode == 0  # SIGTERM is a clean exit
    proc.stop()


def test_stop_ends_a_hanging_request_promptly(target_factory: Factory) -> None:
    proc = target_factory(knobs=TargetKnobs(hang=True))

    async def hang_then_stop() -> None:
        async with aiohttp.ClientSession() as session:
            pending = asyncio.ensure_future(_request(session, "GET", proc.url() + "/asset"))
            await asyncio.sleep(0.2)
            began = time.perf_counter()
            await asyncio.to_thread(proc.stop)
            assert time.perf_counter() - began < 3.0
            with pytest.raises(aiohttp.ClientError):
                await pending

    asyncio.run(hang_then_stop())
    assert proc.returncode == 0


def test_missing_asset_file_surfaces_as_run_error_with_stderr(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    with pytest.raises(RunError, match="died before it was listening") as caught:
        TargetProcess.start(asset_file=missing)
    assert "absent.json" in str(caught.value)


def test_crash_after_start_surfaces_as_run_error(target: TargetProcess) -> None:
    os.kill(target.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while target.running and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(RunError, match="exited with code -9"):
        target.stats()


def test_child_exits_when_its_parent_closes_stdin() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "wbsrun.target", "--watch-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        ready: dict[str, Any] = json.loads(child.stdout.readline())
        assert ready["pid"] == child.pid
        assert ready["hosts"] == 1
        child.stdin.close()
        assert child.wait(timeout=5) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_cpu_pin_restricts_the_child_and_cpu_times_grow_with_work(
    target_factory: Factory,
) -> None:
    cpu = max(os.sched_getaffinity(0))
    proc = target_factory(cpu=cpu)
    assert os.sched_getaffinity(proc.pid) == {cpu}
    before = proc.cpu_times()
    fetch_many([("GET", proc.url() + "/asset")] * 500)
    assert proc.cpu_times() > before


def test_help_documents_every_knob_and_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wbsrun.target", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in KNOB_NAMES:
        assert f"--{name.replace('_', '-')}" in out
    for action in build_parser()._actions:
        assert action.help, f"{action.option_strings} has no help"
        for flag in action.option_strings:
            assert flag in out
