"""`wbsrun run` in a subprocess against a server on 127.0.0.1 whose bodies never end: every
request fails with `body-too-large`, the run ends in its window, and the run process's peak RSS
stays under 300 MB (a 1 GB body once took it to 2-5 GB). A server that never answers is bounded
by the request timeout from the flag, the environment or config.yaml. Both transports
(tests/conftest.py)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scenario_kit import act, document, edge, end, graph, http, write_bundle
from transport_kit import HostileServer

# The documented bound (docs/operations.md "Limits"): the interpreter and wbsrun (~60 MB)
# plus 4 requests in flight × 10 MiB, twice at most while a body is joined.
PEAK_RSS_BYTES = 300 * 1024 * 1024
WINDOW = 3.0
# Address space the child may map: a run that reads without bound fails fast here instead
# of taking the machine's memory (what the code before this limit did).
ADDRESS_SPACE = 3 * 1024**3


def run_bounded(*args: str, timeout: float) -> tuple[int, int, float]:
    """(exit status, peak RSS in bytes, seconds) of `wbsrun run …` in its own process."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wbsrun", "run", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=cap,  # no threads are started between fork and exec here
    )
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss * 1024, time.monotonic() - started
        if time.monotonic() - started > timeout:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"the run did not end within {timeout:g}s")
        time.sleep(0.05)


@pytest.mark.parametrize("path", ["/endless-length", "/endless-chunked"])
def test_run_against_endless_bodies_fails_every_request_and_stays_small(
    tmp_path: Path, hostile: HostileServer, path: str
) -> None:
    doc = document({"fetch": http("get", path)}, graph(act("get", "fetch", edge("done")), end()))
    bundle = write_bundle(tmp_path, doc, [("127.0.0.1", hostile.port)])
    out = tmp_path / "result.json"
    status, peak, seconds = run_bounded(
        str(bundle),
        "--users",
        "4",
        "--duration",
        f"{WINDOW:g}s",
        "--json",
        str(out),
        "--quiet",
        timeout=20,
    )
    assert status == 0
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    requests = result["requests"]
    assert requests["total"] == requests["failed"] == result["errors"]["body-too-large"] > 4
    assert result["errors"] == {"body-too-large": requests["total"]}
    assert seconds < WINDOW + 8
    assert peak < PEAK_RSS_BYTES, f"peak RSS {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("layer", ["flag", "environment", "config.yaml"])
def test_run_request_timeout_option_bounds_a_server_that_never_answers(
    tmp_path: Path, hostile: HostileServer, layer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = document(
        {"fetch": http("get", "/silent")}, graph(act("get", "fetch", edge("done")), end())
    )
    bundle = write_bundle(tmp_path, doc, [("127.0.0.1", hostile.port)])
    out = tmp_path / "result.json"
    extra: list[str] = []
    if layer == "flag":
        extra = ["--request-timeout", "500ms"]
    elif layer == "environment":
        monkeypatch.setenv("WBSRUN_REQUEST_TIMEOUT", "500ms")
    else:
        (bundle / "config.yaml").write_text("run:\n  request-timeout: 500ms\n", encoding="utf-8")
    status, _, seconds = run_bounded(str(bundle), "--json", str(out), "--quiet", *extra, timeout=20)
    assert status == 0
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert result["errors"] == {"network-timeout": 1}
    assert result["requests"]["failed"] == 1
    assert result["actions"]["fetch"]["latency_ms"]["max"] == pytest.approx(500, abs=10)
    assert seconds < 10
