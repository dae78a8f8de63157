"""The control endpoint over real HTTP on loopback, against a live run: the token is required,
every call answers the run's status, refusals are problem objects with their status, and a
non-loopback bind is refused without its flag. `wbsrun ctl` end to end in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from scenario_kit import act, document, edge, end, graph, http, on, run, write_bundle
from wbsrun.control import (
    ControlAddress,
    ControlServer,
    ControlSettings,
    is_loopback,
    openapi_document,
)
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.target import TargetKnobs, TargetProcess

TOKEN = "test-token-0123456789"
REPO = Path(__file__).resolve().parents[2]


def doc(users: int = 2) -> dict[str, Any]:
    flow = graph(act("get", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    return document({"fetch": http("get")}, flow, users)


def status_schema() -> dict[str, Any]:
    """The Status schema of the shipped OpenAPI document, resolvable on its own."""
    api = openapi_document()
    return {**api["components"]["schemas"]["Status"], "components": api["components"]}


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str | None = TOKEN,
    **kwargs: Any,
) -> tuple[int, str, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with session.request(method, url, headers=headers, **kwargs) as answer:
        return answer.status, answer.content_type, await answer.json(content_type=None)


def test_every_call_needs_the_token_and_answers_the_runs_status(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=20))
    answers: dict[str, Any] = {}

    async def during(runner: Runner) -> None:
        server = ControlServer(runner.control, ControlAddress("127.0.0.1", 0), TOKEN)
        base = (await server.start()).url()
        try:
            await asyncio.sleep(0.5)
            async with aiohttp.ClientSession() as s:
                answers["none"] = await call(s, "POST", f"{base}/v1/pause", token=None)
                answers["wrong"] = await call(s, "POST", f"{base}/v1/pause", token="x" + TOKEN)
                answers["paused_after_refusals"] = runner.control.paused
                answers["pause"] = await call(s, "POST", f"{base}/v1/pause")
                await asyncio.sleep(0.3)
                answers["status"] = await call(s, "GET", f"{base}/v1/status")
                answers["resume"] = await call(s, "POST", f"{base}/v1/resume")
                answers["scale"] = await call(
                    s, "POST", f"{base}/v1/scale", json={"scenario": "s", "users": 3}
                )
                answers["unknown"] = await call(
                    s, "POST", f"{base}/v1/scale", json={"scenario": "zz", "users": 3}
                )
                answers["bad_json"] = await call(s, "POST", f"{base}/v1/scale", data=b"{users")
                answers["bad_field"] = await call(
                    s, "POST", f"{base}/v1/scale", json={"scenario": "s", "users": 3, "x": 1}
                )
                answers["too_many"] = await call(
                    s, "POST", f"{base}/v1/scale", json={"scenario": "s", "users": 10**6}
                )
                answers["huge_body"] = await call(
                    s, "POST", f"{base}/v1/scale", data=b" " * 100_000
                )
                answers["no_route"] = await call(s, "GET", f"{base}/v1/nothing")
                answers["method"] = await call(s, "GET", f"{base}/v1/pause")
                answers["stop"] = await call(s, "POST", f"{base}/v1/stop")
                answers["after_stop"] = await call(s, "POST", f"{base}/v1/pause")
        finally:
            await server.close()

    ran = run(tmp_path, doc(), on(target), RunOptions(duration=10.0), during)
    for name in ("none", "wrong"):
        status, kind, body = answers[name]
        assert (status, kind) == (401, "application/problem+json")
        assert body["status"] == 401
        assert "Bearer" in body["detail"]
    assert answers["paused_after_refusals"] is False
    schema = status_schema()
    for name in ("pause", "status", "resume", "scale", "stop"):
        status, kind, body = answers[name]
        assert (status, kind) == (200, "application/json"), (name, body)
        jsonschema.validate(body, schema)
    assert answers["pause"][2]["state"] == "paused"
    assert answers["status"][2]["paused_s"] >= 0.3
    assert answers["resume"][2]["state"] == "running"
    assert answers["scale"][2]["scenarios"]["s"]["target"] == 3
    assert answers["stop"][2]["state"] == "stopping"
    expected = {
        "unknown": 404,
        "bad_json": 400,
        "bad_field": 400,
        "too_many": 400,
        "huge_body": 413,
        "no_route": 404,
        "method": 405,
        "after_stop": 409,
    }
    for name, code in expected.items():
        status, kind, body = answers[name]
        assert (status, kind, body["status"]) == (code, "application/problem+json", code), name
        assert body["detail"]
    assert "zz" in answers["unknown"][2]["detail"]
    assert ran.result["status"] == "interrupted"
    assert ran.result["duration_s"] < 5.0


def test_a_non_loopback_bind_is_refused_without_its_flag() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.5")
    with pytest.raises(ValueError, match="--control-allow-remote"):
        ControlSettings(ControlAddress.parse("0.0.0.0:9465")).check()
    ControlSettings(ControlAddress.parse("0.0.0.0:9465"), allow_remote=True).check()
    ControlSettings(ControlAddress.parse("9465")).check()


def _wbsrun(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(),
        **kwargs,
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env.pop("WBSRUN_CONTROL_TOKEN", None)
    env.pop("WBSRUN_CONTROL_URL", None)
    return env


def test_run_refuses_a_non_loopback_control_address_before_running(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, doc(), [("127.0.0.1", 9)])
    done = _wbsrun("run", str(bundle), "--control", "0.0.0.0:0")
    assert done.returncode == 2
    assert "not a loopback address" in done.stderr
    assert "--control-allow-remote" in done.stderr


def _await_line(proc: subprocess.Popen[str], pattern: str, within: float) -> re.Match[str]:
    assert proc.stdout is not None
    deadline = time.monotonic() + within
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no line matching {pattern!r} in {seen!r}")


def test_wbsrun_ctl_steers_a_run_end_to_end(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=20))
    bundle = write_bundle(tmp_path, doc(2), on(target))
    token_file = tmp_path / "control.token"
    result_file = tmp_path / "result.json"
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wbsrun",
            "run",
            str(bundle),
            "--duration",
            "30s",
            "--quiet",
            "--control",
            "0",
            "--control-token-file",
            str(token_file),
            "--json",
            str(result_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    ) as proc:
        try:
            found = _await_line(proc, r"control: (http://127\.0\.0\.1:\d+) token=(\S+)", 20)
            url, token = found.group(1), found.group(2)
            assert token_file.read_text().strip() == token
            assert token_file.stat().st_mode & 0o077 == 0  # the owner's only
            ctl = ("ctl", "--url", url, "--token-file", str(token_file))
            paused = _wbsrun(*ctl, "pause")
            assert paused.returncode == 0, paused.stderr
            assert paused.stdout.startswith("paused")
            status = _wbsrun(*ctl, "status")
            assert json.loads(status.stdout)["state"] == "paused"
            assert _wbsrun(*ctl, "resume").stdout.startswith("running")
            scaled = _wbsrun(*ctl, "scale", "s", "4")
            assert scaled.returncode == 0
            assert "s " in scaled.stdout
            assert "/4 users" in scaled.stdout
            unknown = _wbsrun(*ctl, "scale", "nope", "4")
            assert unknown.returncode == 2
            assert "no scenario 'nope'" in unknown.stderr
            refused = _wbsrun("ctl", "--url", url, "--token", "wrong", "pause")
            assert refused.returncode == 1
            assert "401" in refused.stderr
            stopped = _wbsrun(*ctl, "stop")
            assert stopped.stdout.startswith("stopping")
            assert proc.wait(timeout=30) == 105  # as a first Ctrl-C: interrupted
        finally:
            if proc.poll() is None:
                proc.kill()
    result = json.loads(result_file.read_text())
    assert result["status"] == "interrupted"
    assert result["paused_s"] > 0
    jsonschema.validate(result, json.loads((REPO / "src/wbsrun/result-schema.json").read_text()))
    # The time series' paused column adds up to the run's paused seconds.
    assert sum(result["timeseries"]["paused_s"]) == pytest.approx(result["paused_s"], abs=0.01)
    assert result["users"]["started"] == 4
    assert result["duration_s"] < 25
    gone = _wbsrun("ctl", "--url", url, "--token", token, "status")
    assert gone.returncode == 1
    assert "no run answers" in gone.stderr


def test_paused_needs_control_and_is_refused_without_it(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, doc(), [("127.0.0.1", 9)])
    done = _wbsrun("run", str(bundle), "--paused")
    assert done.returncode == 2
    assert "--paused need --control" in done.stderr


def test_a_run_started_paused_sends_nothing_until_resumed(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory()
    bundle = write_bundle(tmp_path, doc(2), on(target))
    token_file = tmp_path / "control.token"
    result_file = tmp_path / "result.json"
    args = ["run", str(bundle), "--duration", "30s", "--quiet", "--paused"]
    args += ["--control", "0", "--control-token-file", str(token_file), "--json", str(result_file)]
    with subprocess.Popen(
        [sys.executable, "-m", "wbsrun", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    ) as proc:
        try:
            url = _await_line(proc, r"control: (http://127\.0\.0\.1:\d+) token=", 20).group(1)
            _await_line(proc, r"paused: nothing is sent until", 5)
            ctl = ("ctl", "--url", url, "--token-file", str(token_file))
            deadline = time.monotonic() + 10
            while json.loads(_wbsrun(*ctl, "status").stdout)["state"] != "paused":
                assert time.monotonic() < deadline, "the run never showed itself paused"
                time.sleep(0.1)
            time.sleep(1.0)
            assert _served(target) == 0  # the users were held from their first action
            assert _wbsrun(*ctl, "resume").stdout.startswith("running")
            deadline = time.monotonic() + 10
            while _served(target) < 20:
                assert time.monotonic() < deadline, "resume did not start the users"
                time.sleep(0.1)
            assert _wbsrun(*ctl, "stop").stdout.startswith("stopping")
            assert proc.wait(timeout=30) == 105
        finally:
            if proc.poll() is None:
                proc.kill()
    result = json.loads(result_file.read_text())
    assert result["requests"]["total"] == _served(target)
    assert result["paused_s"] >= 1.0


def _served(target: TargetProcess) -> int:
    return int(target.stats()["by_route"].get("GET /asset", 0))
