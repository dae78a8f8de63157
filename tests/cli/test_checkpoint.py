"""`wbsrun run --checkpoint DIR` and `wbsrun resume DIR` against the real target: a run killed
with SIGKILL mid-run and resumed counts no more than the server served, and misses only what
its last checkpoint could not know; users finish exactly their planned passes; the result
says what was lost; a changed bundle is refused; a completed run has nothing left."""

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

from wbsrun.cli.checkpoint import MANIFEST, Saved, load_checkpoint
from wbsrun.target import TargetKnobs, TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"

BUNDLE = """\
version: "1.0"
name: ck
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
      url: "{url}/asset"
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
{load}"""

CLOSED = """\
  scenarios:
    - name: only
      workflow: main
      user-count: 4
      iterations: 30
      think-time: 50ms
"""

OPEN = """\
  profiles:
    twenty:
      type: constant-arrival-rate
      rate: 20
      duration: 4s
      pre-allocated-users: 4
      max-users: 8
  scenarios:
    - name: open
      workflow: main
      profile: twenty
"""


def _bundle(tmp_path: Path, target: TargetProcess, load: str) -> Path:
    path = tmp_path / "bundle" / "script.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BUNDLE.format(url=target.url().rstrip("/"), load=load), "utf-8")
    return path


def _wbsrun(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wbsrun", *args, "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _finish(proc: subprocess.Popen[str], within: float = 60.0) -> tuple[int, str]:
    _, err = proc.communicate(timeout=within)
    return proc.returncode, err


def _manifest(directory: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads((directory / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return loaded


def _kill_after(proc: subprocess.Popen[str], directory: Path, elapsed: float) -> None:
    """SIGKILL the run (by its pid) once a checkpoint at least `elapsed` seconds in exists."""
    end = time.monotonic() + 30
    while True:
        manifest = _manifest(directory)
        if manifest is not None and manifest["elapsed_s"] >= elapsed:
            break
        assert proc.poll() is None, f"the run ended first: {proc.stderr and proc.stderr.read()}"
        assert time.monotonic() < end, "no checkpoint within 30s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def _settled(target: TargetProcess) -> dict[str, Any]:
    """The server's counters once they stop moving (a request whose client was killed is
    received, never responded: the answers counted are `responded`)."""
    last: dict[str, Any] | None = None
    for _ in range(100):
        now = target.stats()
        if now == last:
            return now
        last = now
        time.sleep(0.2)
    raise AssertionError(f"the target never settled: {last}")


def _killed_and_resumed(
    tmp_path: Path,
    target: TargetProcess,
    load: str,
    kill_at: float,
    *flags: str,
) -> tuple[dict[str, Any], Saved, dict[str, Any], dict[str, Any]]:
    """Run with checkpoints, SIGKILL, resume: (result, the checkpoint resumed from, the
    server's counters at the kill and at the end)."""
    bundle = _bundle(tmp_path, target, load)
    ck, out1, out2 = tmp_path / "ck", tmp_path / "out1.json", tmp_path / "out2.json"
    first = _wbsrun(
        "run", str(bundle), "--checkpoint", str(ck), "--checkpoint-interval", "0.5s",
        "--json", str(out1), *flags,
    )  # fmt: skip
    _kill_after(first, ck, kill_at)
    at_kill = _settled(target)
    saved = load_checkpoint(ck)
    assert not out1.exists()  # killed: the first life wrote no result
    code, err = _finish(_wbsrun("resume", str(ck), "--json", str(out2)))
    assert code == 0, err
    result: dict[str, Any] = json.loads(out2.read_text("utf-8"))
    jsonschema.validate(result, json.loads(SCHEMA.read_text("utf-8")))
    return result, saved, at_kill, _settled(target)


def _assert_consistent_with_server(
    result: dict[str, Any], saved: Saved, at_kill: dict[str, Any], end: dict[str, Any]
) -> None:
    """Nothing counted twice: the result never exceeds what the server served, per status
    too. Nothing lost but what the checkpoint could not know: the requests served after it
    (and those in flight at it)."""
    total = result["requests"]["total"]
    served = end["responded"]
    at_checkpoint = saved.state["stats"].counters["requests_total"]
    unknown_to_checkpoint = at_kill["responded"] - at_checkpoint
    assert unknown_to_checkpoint >= 0
    assert total <= served <= total + unknown_to_checkpoint
    for status, n in result["requests"]["status_codes"].items():
        assert n <= end["by_status"][status], (status, result["requests"], end)


def test_sigkill_mid_run_then_resume_counts_each_served_request_at_most_once(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    # 500s on a fifth of the answers: the per-status check has two statuses to match. No
    # think time, 100 ms answers: every user is in a pass at any checkpoint.
    target = target_factory(knobs=TargetKnobs(latency_ms=100, error_rate=0.2), seed=7)
    busy = CLOSED.replace("think-time: 50ms", "think-time: 0s")
    result, saved, at_kill, end = _killed_and_resumed(tmp_path, target, busy, kill_at=1.0)
    _assert_consistent_with_server(result, saved, at_kill, end)
    # The in-flight passes at the checkpoint are lost (interrupted) and run again: every
    # user completes exactly its 30 passes, and no pass is counted twice.
    lost = saved.state["lost_tasks"]
    assert 1 <= lost <= 4
    tasks = result["tasks"]
    assert tasks["succeeded"] + tasks["failed"] == 4 * 30
    assert tasks["started"] == 4 * 30 + lost
    assert tasks["interrupted"] == lost
    assert result["users"] == {"planned": 4, "started": 4, "finished": 4}
    final = load_checkpoint(tmp_path / "ck")
    assert final.complete
    position = final.state["positions"]["only"]
    assert position.passes == {0: 30, 1: 30, 2: 30, 3: 30}
    assert position.done == frozenset({0, 1, 2, 3})
    # Said in the result: from where, what was lost.
    resumed = result["resumed"]
    assert resumed["from_checkpoint_at"] == round(saved.state["elapsed"], 3)
    assert resumed["lost_in_flight"] == {"tasks": lost, "requests": None}
    assert resumed["lives"] == 2
    # The time series spans both lives, with the gap marked, and adds up to the total.
    series = result["timeseries"]
    assert series["t"][0] < resumed["from_checkpoint_at"] < series["t"][-1]
    assert [g["at"] for g in series["gaps"]] == [resumed["from_checkpoint_at"]]
    assert sum(series["requests"]) == result["requests"]["total"]
    assert result["progress"]["tasks"]["closed"] == 4 * 30


def test_arrival_rate_resumes_at_the_next_scheduled_iteration(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=30))
    result, saved, at_kill, end = _killed_and_resumed(tmp_path, target, OPEN, kill_at=1.5)
    _assert_consistent_with_server(result, saved, at_kill, end)
    arrival = result["scenarios"]["open"]["arrival"]
    dispatched = saved.state["positions"]["open"].dispatched
    assert 20 <= dispatched < 80  # killed mid-schedule
    # Every one of the 80 scheduled iterations ran once over both lives (none dropped:
    # 8 users hold 20/s of 30 ms passes); the lost in-flight ones were not run again.
    assert arrival["planned"] == 80
    assert arrival["started"] + arrival["dropped"] == 80
    lost = saved.state["lost_tasks"]
    assert result["tasks"]["succeeded"] == 80 - lost
    assert result["tasks"]["interrupted"] == lost


def test_a_run_window_continues_for_what_was_left_of_it(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=20))
    windowed = CLOSED.replace("      iterations: 30\n", "")
    result, saved, at_kill, end = _killed_and_resumed(
        tmp_path, target, windowed, 1.0, "--duration", "3s"
    )
    _assert_consistent_with_server(result, saved, at_kill, end)
    # The window is the run's, across lives: 3 s of run time (plus the last passes' end),
    # not 3 s more after the resume; the downtime is not part of it.
    assert 3.0 <= result["duration_s"] < 3.5
    assert result["timeseries"]["t"][-1] == result["duration_s"]
    assert result["users"] == {"planned": 4, "started": 4, "finished": 4}
    assert result["tasks"]["interrupted"] == saved.state["lost_tasks"]


def _stopped_run(tmp_path: Path, target: TargetProcess) -> tuple[Path, Path]:
    """A run stopped by SIGINT (graceful: its last checkpoint is written at the end)."""
    bundle = _bundle(tmp_path, target, CLOSED)
    ck = tmp_path / "ck"
    proc = _wbsrun(
        "run", str(bundle), "--checkpoint", str(ck), "--checkpoint-interval", "0.5s",
        "--json", str(tmp_path / "out1.json"),
    )  # fmt: skip
    end = time.monotonic() + 30
    while _manifest(ck) is None:
        assert time.monotonic() < end
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    code, err = _finish(proc)
    assert code == 105, err
    manifest = _manifest(ck)
    assert manifest is not None
    assert not manifest["complete"]
    return bundle, ck


def test_a_stopped_run_resumes_to_exactly_what_the_server_served(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=20))
    _, ck = _stopped_run(tmp_path, target)
    out = tmp_path / "out2.json"
    code, err = _finish(_wbsrun("resume", str(ck), "--json", str(out)))
    assert code == 0, err
    result = json.loads(out.read_text("utf-8"))
    # Nothing was lost: a graceful stop checkpoints after its last pass.
    assert result["requests"]["total"] == _settled(target)["responded"]
    assert result["tasks"]["succeeded"] == 4 * 30
    assert result["resumed"]["lost_in_flight"]["tasks"] == 0


def test_a_changed_bundle_is_refused_unless_forced(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory()
    bundle, ck = _stopped_run(tmp_path, target)
    bundle.write_text(bundle.read_text("utf-8").replace("iterations: 30", "iterations: 31"))
    code, err = _finish(_wbsrun("resume", str(ck), "--json", str(tmp_path / "out2.json")))
    assert code == 1
    assert "changed since the checkpoint" in err, err
    assert "--force" in err
    assert not (tmp_path / "out2.json").exists()
    code, err = _finish(
        _wbsrun("resume", str(ck), "--force", "--json", str(tmp_path / "out2.json"))
    )
    assert code == 0, err
    result = json.loads((tmp_path / "out2.json").read_text("utf-8"))
    assert result["tasks"]["succeeded"] == 4 * 31  # the changed plan's passes


def test_resuming_a_completed_run_says_nothing_is_left(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory()
    bundle = _bundle(tmp_path, target, CLOSED.replace("iterations: 30", "iterations: 2"))
    ck = tmp_path / "ck"
    code, err = _finish(_wbsrun("run", str(bundle), "--checkpoint", str(ck)))
    assert code == 0, err
    served = target.stats()["responded"]
    code, err = _finish(_wbsrun("resume", str(ck), "--json", str(tmp_path / "again.json")))
    assert code == 0
    assert "nothing left to resume" in err
    assert not (tmp_path / "again.json").exists()
    assert target.stats()["responded"] == served


def test_checkpoint_with_several_workers_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "script.yaml"
    bundle.write_text(BUNDLE.format(url="http://127.0.0.1:9", load=CLOSED), "utf-8")
    code, err = _finish(
        _wbsrun("run", str(bundle), "--workers", "2", "--checkpoint", str(tmp_path / "ck"))
    )
    assert code == 2
    assert "--checkpoint with --workers 2" in err
    assert not (tmp_path / "ck").exists()


def test_resume_of_a_directory_without_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    code, err = _finish(_wbsrun("resume", str(tmp_path)))
    assert code == 1
    assert f"{tmp_path}: no checkpoint here (no manifest.json)" in err
