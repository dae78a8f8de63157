"""The run window is a hard bound: a server that never answers cannot hold a run past its window
and graceful stop; passes cut in flight and their requests are counted as interrupted; a second
signal aborts at once; the result is written in every case."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema

from transport_kit import HostileServer

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"

# No timeout anywhere: only the window and the graceful stop can end these passes.
SILENT = """\
version: "1.0"
name: silent
components:
  - name: http
    version: "1.0.0"
    kind: native
    capabilities: [get]
actions:
  fetch:
    component: http
    call: get
    with:
      url: "{url}"
workflows:
  main:
    type: graph
    nodes:
      - id: first
        type: action
        action: fetch
        controls:
          exec:
            transitions:
              - edge: done
                to: end
                condition: always
      - id: end
        type: terminus
        state: closing.success
load:
  scenarios:
    - name: only
      workflow: main
      user-count: {users}
{extra}"""


def _bundle(tmp_path: Path, server: HostileServer, users: int = 5, extra: str = "") -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(SILENT.format(url=server.url("/silent"), users=users, extra=extra), "utf-8")
    return path


def _start(path: Path, out: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wbsrun", "run", str(path), "--json", str(out), "--quiet", *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for_requests(server: HostileServer, count: int, within: float = 15.0) -> None:
    end = time.monotonic() + within
    while server.requests.get("/silent", 0) < count:
        assert time.monotonic() < end, f"the server saw {server.requests} in {within}s"
        time.sleep(0.05)


def _finish(proc: subprocess.Popen[str], within: float) -> str:
    try:
        _, err = proc.communicate(timeout=within)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err


def _interrupted_all(result: dict[str, Any], server: HostileServer, users: int) -> None:
    jsonschema.validate(result, json.loads(SCHEMA.read_text()))
    seen = server.requests["/silent"]
    assert seen == users
    assert result["requests"]["total"] == seen
    assert result["requests"]["interrupted"] == seen
    assert result["requests"]["failed"] == result["requests"]["ok"] == 0
    assert result["tasks"]["started"] == result["tasks"]["interrupted"] == users
    assert result["tasks"]["failed"] == 0
    assert result["actions"]["fetch"]["interrupted"] == result["actions"]["fetch"]["count"] == users


def test_a_silent_server_holds_the_run_no_longer_than_its_window_and_graceful_stop(
    hostile: HostileServer, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    began = time.monotonic()
    proc = _start(_bundle(tmp_path, hostile), out, "--duration", "2s", "--graceful-stop", "1s")
    err = _finish(proc, within=30)
    took = time.monotonic() - began
    assert proc.returncode == 0, err
    result = json.loads(out.read_text())
    # duration + grace + the services' wind-down (bounded by 2 s), measured by the run, with
    # 0.5 s for the cancellation itself on a loaded CI machine; the process adds its start-up.
    assert 3.0 <= result["duration_s"] <= 2 + 1 + 2 + 0.5, result["duration_s"]
    assert took < 2 + 1 + 2 + 5
    assert result["status"] == "completed"
    _interrupted_all(result, hostile, users=5)


def test_the_scenario_sets_the_runs_graceful_stop_and_the_flag_overrides_it(
    hostile: HostileServer, tmp_path: Path
) -> None:
    path = _bundle(tmp_path, hostile, users=2, extra="      graceful-stop: 500ms\n")
    out = tmp_path / "r.json"
    proc = _start(path, out, "--duration", "1s")
    err = _finish(proc, within=30)
    assert proc.returncode == 0, err
    result = json.loads(out.read_text())
    assert 1.5 <= result["duration_s"] < 1.5 + 1.5
    assert result["tasks"]["interrupted"] == 2

    out2 = tmp_path / "r2.json"
    proc = _start(path, out2, "--duration", "1s", "--graceful-stop", "2s")
    err = _finish(proc, within=30)
    assert proc.returncode == 0, err
    assert 3.0 <= json.loads(out2.read_text())["duration_s"] < 3.0 + 1.5


def test_the_first_signal_gives_the_runs_passes_in_flight_their_graceful_stop_then_cuts_them(
    hostile: HostileServer, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    proc = _start(_bundle(tmp_path, hostile), out, "--duration", "60s", "--graceful-stop", "1s")
    _wait_for_requests(hostile, 5)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc, within=30)
    assert time.monotonic() - signalled < 1 + 4
    assert proc.returncode == 105, err  # k6\'s "external abort"
    result = json.loads(out.read_text())
    assert result["status"] == "interrupted"
    _interrupted_all(result, hostile, users=5)


def test_a_second_signal_aborts_the_run_at_once_and_counts_what_was_in_flight(
    hostile: HostileServer, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    proc = _start(_bundle(tmp_path, hostile), out, "--duration", "60s")  # default grace: 30 s
    _wait_for_requests(hostile, 5)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None  # the first signal waits for the graceful stop
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc, within=30)
    assert time.monotonic() - signalled < 4
    assert proc.returncode == 105, err  # k6\'s "external abort"
    result = json.loads(out.read_text())
    assert result["status"] == "interrupted"
    _interrupted_all(result, hostile, users=5)
