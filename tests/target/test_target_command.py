"""`wbsrun target`: the embedded target in the foreground for a tutorial reader: it says where
it serves, answers the demo API with the knobs given, stops cleanly on Ctrl-C, and refuses a
taken port or a non-loopback host with a clear message."""

from __future__ import annotations

import json
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.request

from wbsrun.target import TargetProcess

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wbsrun", "target", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(15):
            proc.kill()
            raise AssertionError("wbsrun target said nothing within 15 s")
    return proc, proc.stdout.readline()


def login(base: str) -> tuple[int, float]:
    body = json.dumps({"username": "demo", "password": "secret-demo"}).encode()
    request = urllib.request.Request(
        base + "/api/login", body, {"Content-Type": "application/json"}, method="POST"
    )
    started = time.monotonic()
    with _OPENER.open(request, timeout=10) as resp:
        return resp.status, time.monotonic() - started


def test_target_serves_the_demo_api_in_the_foreground_until_ctrl_c() -> None:
    proc, first = start("--port", "0", "--latency-ms", "120")
    try:
        found = re.fullmatch(
            r"wbsrun target: serving on (http://127\.0\.0\.1:\d+) \(pid (\d+)\); Ctrl-C stops it\n",
            first,
        )
        assert found, first
        assert int(found.group(2)) == proc.pid
        assert proc.stdout is not None
        assert (
            "demo API: POST /api/login (user demo, password secret-demo)" in proc.stdout.readline()
        )
        status, took = login(found.group(1))
        assert status == 200
        assert took >= 0.12
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == "wbsrun target: stopped\n"


def test_target_refuses_a_taken_port_with_exit_1(target: TargetProcess) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", "target", "--port", str(target.port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == (
        f"error: cannot listen on 127.0.0.1:{target.port}: Address already in use\n"
    )


def test_target_refuses_a_host_beyond_loopback_with_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", "target", "--host", "192.0.2.1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "refusing to serve on non-loopback host '192.0.2.1'" in proc.stderr
