"""`--workers 2` runs the same users and iterations as one process (the work split, core/
segments.py): a closed-model scenario's user ids and passes, and an arrival-rate scenario's
iteration count, read from the `full` on-disk ledgers (`wbsrun ledger OUT` reads every
worker's) and the result, equal a one-process run's; each user runs in exactly one worker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wbsrun.target import TargetProcess

SCRIPT = """\
name: split
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
    - name: closed
      workflow: main
      user-count: 7
      iterations: 3
"""

OPEN = """\
  profiles:
    steady:
      type: constant-arrival-rate
      rate: 40
      duration: 2s
      pre-allocated-users: 5
      max-users: 9
  scenarios:
    - name: open
      workflow: main
      profile: steady
"""

Target = Callable[..., TargetProcess]


def _run(tmp_path: Path, name: str, url: str, load: str, workers: int) -> dict[str, Any]:
    bundle = tmp_path / name
    bundle.mkdir()
    (bundle / "script.yaml").write_text(SCRIPT.format(url=url, load=load), encoding="utf-8")
    out = bundle / "out"
    flags = ("--quiet", "--sampling", "full", "--out", str(out), "--workers", str(workers))
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", "run", str(bundle), *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads((out / "result.json").read_text(encoding="utf-8"))
    listed = subprocess.run(
        [sys.executable, "-m", "wbsrun", "ledger", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    result["_entries"] = [json.loads(line) for line in listed.stdout.splitlines()]
    return result


def _passes(result: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((e["user_id"], e["task_id"]) for e in result["_entries"])


def test_a_closed_model_runs_the_same_users_and_passes_under_two_workers(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    one = _run(tmp_path, "one", target.url(), CLOSED, 1)
    two = _run(tmp_path, "two", target.url(), CLOSED, 2)
    assert _passes(two) == _passes(one)
    assert len(_passes(one)) == 21
    assert two["users"] == one["users"] == {"planned": 7, "started": 7, "finished": 7}
    assert two["requests"]["total"] == one["requests"]["total"] == 21
    # The ledger's exact totals, merged from the workers' (the coordinator keeps none).
    l1, l2 = one["ledger"]["scenarios"]["closed"], two["ledger"]["scenarios"]["closed"]
    for key in ("closed", "outcomes", "counters", "errors"):
        assert l2[key] == l1[key]
    assert l2["actions"]["fetch"]["count"] == l1["actions"]["fetch"]["count"] == 21
    segments = two["cluster"]["segments"]
    assert sorted(s["users"] for s in segments) == [3, 4]
    # Each user in exactly one worker: its ledger holds all of that user's passes.
    by_worker = [
        {e["user_id"] for e in _worker_entries(tmp_path / "two" / "out", i)} for i in range(2)
    ]
    assert not by_worker[0] & by_worker[1]
    assert by_worker[0] | by_worker[1] == {f"u{k:04d}" for k in range(1, 8)}


def _worker_entries(out: Path, index: int) -> list[dict[str, Any]]:
    listed = subprocess.run(
        [sys.executable, "-m", "wbsrun", "ledger", str(out / f"worker-{index}"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [json.loads(line) for line in listed.stdout.splitlines()]


def test_an_arrival_rate_scenario_starts_the_same_iterations_under_two_workers(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory()
    one = _run(tmp_path, "one", target.url(), OPEN, 1)
    two = _run(tmp_path, "two", target.url(), OPEN, 2)
    a1, a2 = one["scenarios"]["open"]["arrival"], two["scenarios"]["open"]["arrival"]
    assert a1["planned"] == a2["planned"] == 80
    assert a2["started"] + a2["dropped"] == a1["started"] + a1["dropped"] == 80
    assert a2["asked_per_second"] == a1["asked_per_second"]
    assert len(two["_entries"]) == a2["started"]
    assert two["requests"]["total"] == a2["started"]
    assert two["users"]["planned"] == one["users"]["planned"] == 9
