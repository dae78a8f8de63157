"""Live control of a `--workers 2` run, for real: the coordinator's endpoint forwards pause,
resume, scale and stop to both worker processes, which run the users against the embedded
target on loopback. Pause holds the target's count flat and resume restarts it; a scale is
split by the segments, its added users have global ids that never clash across workers, and
`wbsrun ctl status` shows the users summed; stop ends the run (105) with exact totals. A worker
that is gone never holds a call up."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema

from wbsrun.control import openapi_document
from wbsrun.target import TargetKnobs, TargetProcess

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """\
name: steered
actions:
  fetch:
    component: http
    call: get
    with: {{url: "{url}/asset"}}
workflows:
  main:
    steps:
      - ref: fetch
load:
{load}
"""

CLOSED = """\
  scenarios:
    - name: visitors
      workflow: main
      user-count: {users}
"""

# 20 iterations/s a worker, of 200 ms each: 4 users busy a worker, more than max-users allows.
OPEN = """\
  profiles:
    steady:
      type: constant-arrival-rate
      rate: 40
      duration: 40s
      pre-allocated-users: 1
      max-users: 2
  scenarios:
    - name: visitors
      workflow: main
      profile: steady
"""

Target = Callable[..., TargetProcess]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env.pop("WBSRUN_CONTROL_TOKEN", None)
    env.pop("WBSRUN_CONTROL_URL", None)
    return env


def _wbsrun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=_env(),
    )


class Run:
    """A `wbsrun run --workers 2 --control 0` in a subprocess, and its `wbsrun ctl`."""

    def __init__(self, proc: subprocess.Popen[str], token_file: Path) -> None:
        self.proc = proc
        self.token_file = token_file
        self.url = ""

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = _wbsrun("ctl", "--url", self.url, "--token-file", str(self.token_file), *args)
        assert done.returncode == 0, done.stderr
        return done

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.ctl("status").stdout)
        return answer

    def users(self) -> int:
        scenario = self.status()["scenarios"].get("visitors", {})  # none before the start
        return int(scenario.get("users", 0))


@contextmanager
def _run(tmp_path: Path, url: str, load: str | int, *flags: str) -> Iterator[Run]:
    """A run of `load` (a number: CLOSED with that many users)."""
    if isinstance(load, int):
        load = CLOSED.format(users=load)
    (tmp_path / "script.yaml").write_text(SCRIPT.format(url=url, load=load), encoding="utf-8")
    token_file = tmp_path / "control.token"
    args = [sys.executable, "-m", "wbsrun", "run", str(tmp_path), "--workers", "2"]
    args += ["--duration", "40s", "--quiet", "--json", str(tmp_path / "r.json")]
    args += ["--control", "0", "--control-token-file", str(token_file), *flags]
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    ) as proc:
        run = Run(proc, token_file)
        try:
            run.url = _await_line(proc, r"control: (http://127\.0\.0\.1:\d+) token=\S+", 30)
            yield run
        finally:
            if proc.poll() is None:
                proc.kill()


def _await_line(proc: subprocess.Popen[str], pattern: str, within: float) -> str:
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
            return found.group(1)
    raise AssertionError(f"no line matching {pattern!r} in {seen!r}")


def _until(what: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not what():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def _served(target: TargetProcess) -> int:
    return int(target.stats()["by_route"].get("GET /asset", 0))


def _result(tmp_path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    return result


def test_pause_holds_every_worker_and_resume_restarts_them(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=20))
    with _run(tmp_path, target.url(), 4) as run:
        _until(lambda: _served(target) > 20, 20)
        assert run.ctl("pause").stdout.startswith("paused")
        # Every worker lets its users finish the request they are in, and acknowledges.
        _until(lambda: all(w["paused"] and not w["pending"] for w in run.status()["workers"]), 5)
        time.sleep(0.3)
        held = _served(target)
        time.sleep(1.5)
        assert _served(target) == held  # not one request while paused, on either worker
        status = run.status()
        assert status["state"] == "paused"
        assert status["paused_s"] >= 1.5
        assert run.ctl("resume").stdout.startswith("running")
        _until(lambda: _served(target) > held + 20, 10)
        assert run.ctl("stop").stdout.startswith("stopping")
        assert run.proc.wait(timeout=30) == 105
    result = _result(tmp_path)
    assert result["status"] == "interrupted"
    assert result["cluster"]["exact"], result["cluster"]["mismatches"]
    assert result["requests"]["total"] == _served(target)  # stop: exact totals
    assert result["paused_s"] >= 1.5


def test_a_run_started_paused_holds_every_worker_from_the_first_request(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    with _run(tmp_path, target.url(), 4, "--paused") as run:
        # Paused before the workers were placed: each is sent its Pause ahead of its Go.
        _until(lambda: run.status()["state"] == "paused" and run.status()["scenarios"], 30)
        _until(lambda: all(w["paused"] for w in run.status()["workers"]), 5)
        time.sleep(1.0)
        assert _served(target) == 0  # both workers started paused: not one request
        run.ctl("resume")
        _until(lambda: _served(target) > 20, 10)
        run.ctl("stop")
        assert run.proc.wait(timeout=30) == 105
    assert _result(tmp_path)["requests"]["total"] == _served(target)


def _ledger_users(out: Path) -> set[str]:
    done = _wbsrun("ledger", str(out), "--json")
    assert done.returncode == 0, done.stderr
    return {json.loads(line)["user_id"] for line in done.stdout.splitlines() if line.strip()}


def test_scale_splits_the_users_over_the_workers_with_global_ids(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=20))
    out = tmp_path / "out"
    with _run(tmp_path, target.url(), 2, "--sampling", "full", "--out", str(out)) as run:
        _until(lambda: run.users() == 2, 20)
        assert "/6 users" in run.ctl("scale", "visitors", "6").stdout
        # The merged live figures: 6 users in all (3 a worker), as `wbsrun ctl status` says.
        _until(lambda: run.users() == 6, 10)
        status = run.status()
        api = openapi_document()
        jsonschema.validate(
            status, {**api["components"]["schemas"]["Status"], "components": api["components"]}
        )
        assert status["scenarios"]["visitors"]["target"] == 6
        assert [w["users"] for w in status["workers"]] == [3, 3]
        run.ctl("scale", "visitors", "1")
        _until(lambda: run.users() == 1, 10)  # those above leave after their pass
        time.sleep(0.6)
        assert run.users() == 1
        assert run.ctl("stop").stdout.startswith("stopping")
        assert run.proc.wait(timeout=30) == 105
    result = _result(tmp_path)
    assert result["cluster"]["exact"], result["cluster"]["mismatches"]
    assert result["requests"]["total"] == _served(target)
    assert result["users"]["started"] == 6
    # Six users, six ids: the added ones take the indices after the plan's, striped.
    assert _ledger_users(out) == {f"u{i:04d}" for i in range(1, 7)}


def test_an_arrival_rate_scale_splits_max_users_over_the_workers(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=200))
    with _run(tmp_path, target.url(), OPEN) as run:
        _until(lambda: run.users() == 2, 20)  # max-users 2: one a worker, all busy
        assert "/8 users" in run.ctl("scale", "visitors", "8").stdout
        _until(lambda: run.users() == 8, 10)
        assert [w["users"] for w in run.status()["workers"]] == [4, 4]
        run.ctl("scale", "visitors", "2")
        _until(lambda: run.users() == 2, 10)
        assert [w["users"] for w in run.status()["workers"]] == [1, 1]
        run.ctl("stop")
        assert run.proc.wait(timeout=30) == 105
    result = _result(tmp_path)
    assert result["cluster"]["exact"], result["cluster"]["mismatches"]
    assert result["requests"]["total"] == _served(target)
    assert result["scenarios"]["visitors"]["arrival"]["dropped"] > 0  # before the scale


def _workers_of(pid: int) -> list[int]:
    """The worker processes the run started (its spawned children), by PID."""
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            out.append(int(child))
    return out


def test_a_worker_that_is_gone_never_holds_a_control_call_up(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=20))
    with _run(tmp_path, target.url(), 4) as run:
        _until(lambda: run.users() == 4, 20)
        workers = _workers_of(run.proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)  # a process this test's run started
        _until(lambda: run.status()["workers"][0]["status"] == "failed", 10)
        began = time.monotonic()
        run.ctl("pause")
        run.ctl("scale", "visitors", "6")
        run.ctl("resume")
        assert time.monotonic() - began < 10  # three answers, no wait on the dead worker
        # The survivor applied all three; the dead one owes nothing.
        _until(lambda: [w["pending"] for w in run.status()["workers"]] == [0, 0], 5)
        _until(lambda: run.users() == 3, 10)  # the survivor's share of 6
        run.ctl("stop")
        assert run.proc.wait(timeout=30) == 1  # a lost worker fails the run
    result = _result(tmp_path)
    assert result["status"] == "failed"
    assert [seg["status"] for seg in result["cluster"]["segments"]] == ["failed", "completed"]
