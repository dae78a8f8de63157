"""`wbsrun run --workers 2` for real: two worker processes against the embedded target on
loopback, the parent their coordinator. The merged totals (requests, per status, per action,
histogram counts) equal what the target served and the sum of the workers' deltas; the live
metrics are the coordinator's merged figures; a worker killed with SIGKILL is reported as a
failed segment (its users lost, status `failed`, exit 1) without a hang."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from metrics_kit import free_port, scrape, wait_for, wbsrun_with_metrics
from wbsrun.target import TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"

SCRIPT = """\
name: cores
actions:
  fetch:
    component: http
    call: get
    with: {{url: "{url}/asset"}}
  miss:
    component: http
    call: get
    with: {{url: "{url}/nowhere"}}
workflows:
  main:
    steps:
      - ref: fetch
      - ref: miss
load:
  scenarios:
    - name: visitors
      workflow: main
      user-count: {users}
{extra}
"""

Target = Callable[..., TargetProcess]


def _bundle(tmp_path: Path, url: str, users: int, extra: str) -> Path:
    (tmp_path / "script.yaml").write_text(
        SCRIPT.format(url=url, users=users, extra=extra), encoding="utf-8"
    )
    return tmp_path


def _run(bundle: Path, *flags: str, timeout: float = 60) -> tuple[int, dict[str, Any], str]:
    out = bundle / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", "run", str(bundle), "--json", str(out), *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return proc.returncode, result, proc.stderr


def test_two_workers_count_exactly_what_the_target_served(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    bundle = _bundle(tmp_path, target.url(), 4, "      iterations: 40")
    code, result, err = _run(bundle, "--workers", "2", "--quiet")
    served = target.stats()
    assert code == 0, err  # the 404s fail no threshold
    jsonschema.validate(result, json.loads(SCHEMA.read_text(encoding="utf-8")))
    cluster = result["cluster"]
    assert cluster["workers"] == 2
    assert cluster["exact"]
    assert cluster["mismatches"] == []
    assert [s["status"] for s in cluster["segments"]] == ["completed", "completed"]
    assert all(s["exit_code"] == 0 and s["reports"] >= 1 for s in cluster["segments"])
    requests = result["requests"]
    assert requests["total"] == served["received"] == served["responded"]
    # The one-process plan, split: 4 users × 40 passes × (GET /asset, GET /nowhere).
    assert requests["status_codes"] == served["by_status"] == {"200": 160, "404": 160}
    assert result["users"] == {"planned": 4, "started": 4, "finished": 4}
    assert [s["users"] for s in cluster["segments"]] == [2, 2]
    actions = result["actions"]
    assert actions["fetch"]["requests"] == served["by_route"]["GET /asset"]
    assert actions["miss"]["requests"] == served["by_route"]["other"]
    assert actions["fetch"]["latency_ms"]["count"] == served["by_route"]["GET /asset"]
    assert result["tasks"]["started"] == result["tasks"]["succeeded"] + result["tasks"]["failed"]
    assert result["status"] == "completed"
    # The time series is the coordinator's, of the merged figures: its last point has them all.
    assert result["timeseries"]["requests"][-1] == served["received"]
    # Health per scenario from the merged requests (half of them 404s); the users stay in the
    # workers, so there is no per-user figure here.
    (only,) = result["health"]["scenarios"].values()
    assert only["error_rate"] == 0.5
    assert result["health"]["users"] is None


def _requests_of(result: dict[str, Any]) -> int:
    return int(result["requests"]["total"])


def test_the_live_metrics_are_the_coordinators_merged_figures(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    extra = "      iterations: 30\n      think-time: 50ms"
    bundle = _bundle(tmp_path, target.url(), 4, extra)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    args = ("run", str(bundle), "--workers", "2", "--json", str(tmp_path / "r.json"))
    with wbsrun_with_metrics(*args, port=port, linger="20s") as proc:
        # Mid-run: requests already counted by both workers reach the one exporter.

        def counted() -> float | None:
            n = scrape(url).total("wbsrun_requests_total")
            return n if n > 0 else None

        wait_for(counted, 20, "a live scrape with requests", proc)
        wait_for(lambda: (tmp_path / "r.json").is_file() or None, 30, "the result", proc)
        final = scrape(url)
        served = target.stats()
        assert final.total("wbsrun_requests_total") == served["received"]
        result = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
        assert _requests_of(result) == served["received"]
        assert result["cluster"]["exact"]
        # The engine and workbook series are the workers' too (the coordinator runs none).
        assert final.total("wbsrun_bus_published_total") > 0
        assert final.total("wbsrun_poller_events_total") > 0
        ledger = result["ledger"]
        closed = final.total("wbsrun_workbook_closed_entries_total")
        assert closed == ledger["kept"] + ledger["dropped"] + ledger["written"] > 0
        assert final.total("wbsrun_log_lines_total") == sum(result["logs"].values())


def _workers_of(pid: int) -> list[int]:
    """The worker processes the run started (its spawned children), by PID."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    out = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            out.append(int(child))
    return out


def test_a_killed_worker_is_a_failed_segment_and_the_run_ends(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    extra = "      think-time: 20ms"
    bundle = _bundle(tmp_path, target.url(), 4, extra)
    out = tmp_path / "r.json"
    flags = ("--workers", "2", "--quiet", "--duration", "6s", "--json", str(out))
    proc = subprocess.Popen(
        [sys.executable, "-m", "wbsrun", "run", str(bundle), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        workers = wait_for(
            lambda: w if len(w := _workers_of(proc.pid)) == 2 else None, 30, "two workers", proc
        )
        # Both run: the target sees requests (the workers started together).
        wait_for(lambda: target.stats()["received"] > 50 or None, 20, "requests", proc)
        started = time.monotonic()
        os.kill(workers[0], signal.SIGKILL)  # a process this test's run started
        _, err = proc.communicate(timeout=30)
        code = proc.returncode
        ended = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert code == 1, err
    assert ended < 15  # the other worker's window (6 s) and its wind-down, never a hang
    result = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.validate(result, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert result["status"] == "failed"
    cluster = result["cluster"]
    failed = [s for s in cluster["segments"] if s["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["pid"] == workers[0]
    assert "SIGKILL" in failed[0]["reason"]
    assert failed[0]["users_lost"] == failed[0]["users"] > 0
    assert cluster["users_lost"] == failed[0]["users_lost"]
    # What the dead worker reported before it died is counted; what it did after is lost.
    assert 0 < _requests_of(result) <= target.stats()["received"]
    assert result["logs"].get("error", 0) >= 1  # the run log says which worker failed


def test_an_abort_on_fail_threshold_on_the_merged_figures_drains_every_worker(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    # Half the requests are 404s: the coordinator's live result crosses the rule.
    extra = """      think-time: 20ms
thresholds:
  - rule: http.failed_rate < 0.01
    abort-on-fail: true
    delay-abort-eval: 1s"""
    bundle = _bundle(tmp_path, target.url(), 4, extra)
    started = time.monotonic()
    code, result, err = _run(bundle, "--workers", "2", "--quiet", "--duration", "40s")
    assert code == 99, err
    assert time.monotonic() - started < 25  # stopped early, not at the window's end
    assert result["status"] == "aborted"
    assert [s["status"] for s in result["cluster"]["segments"]] == ["completed", "completed"]
    assert result["cluster"]["exact"]
    assert result["requests"]["total"] == target.stats()["received"]
    assert result["thresholds"][0]["ok"] is False


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_stop_when_their_coordinator_is_killed(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    bundle = _bundle(tmp_path, target.url(), 4, "      think-time: 20ms")
    flags = ("--workers", "2", "--quiet", "--duration", "60s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wbsrun", "run", str(bundle), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        workers = wait_for(
            lambda: w if len(w := _workers_of(proc.pid)) == 2 else None, 30, "two workers", proc
        )
        wait_for(lambda: target.stats()["received"] > 20 or None, 20, "requests", proc)
    finally:
        proc.kill()  # the coordinator, SIGKILL: no chance to tell its workers
        proc.wait(10)
    wait_for(lambda: not any(_running(w) for w in workers) or None, 10, "the workers to stop")
    served = target.stats()["received"]
    time.sleep(0.5)
    assert target.stats()["received"] == served  # no orphan keeps sending
