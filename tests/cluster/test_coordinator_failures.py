"""The coordinator never waits on a worker that cannot work: one that reports nothing is
killed after the silence timeout and its segment failed (its users lost); one that cannot
load its plan fails the start with its message. Real spawned processes (tests/cluster_kit.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cluster_kit import failing_worker, silent_worker
from wbsrun.cluster import ClusterRunner, WorkerProcesses
from wbsrun.core.log import RunLog
from wbsrun.core.runner import RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.errors import RunError
from wbsrun.progress.aggregate import Aggregator
from wbsrun.progress.report import build_result
from wbsrun.protocols.registry import provides

SCRIPT = """\
name: silent
actions:
  fetch:
    component: http
    call: get
    with: {url: "http://127.0.0.1:9/asset"}
workflows:
  main:
    steps:
      - ref: fetch
load:
  scenarios:
    - name: visitors
      workflow: main
      user-count: 3
"""


def _runner(tmp_path: Path, target: object, jobs: list[str]) -> ClusterRunner:
    (tmp_path / "script.yaml").write_text(SCRIPT, encoding="utf-8")
    plan = load_plan(tmp_path, provides())
    options = RunOptions()
    return ClusterRunner(
        plan,
        RunLog(None),
        options,
        Aggregator.for_run(plan, options),
        target,  # type: ignore[arg-type]
        jobs,
        silence=1.5,
    )


def test_a_silent_worker_is_killed_and_its_segment_failed(tmp_path: Path) -> None:
    runner = _runner(tmp_path, silent_worker, ["0"])
    started = time.monotonic()
    asyncio.run(runner.run())
    assert time.monotonic() - started < 15
    pid = runner.state.workers[0].pid
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    result = runner.complete(build_result(runner, {}, {}, runner.aggregator))
    segment = result["cluster"]["segments"][0]
    assert segment["status"] == "failed"
    assert segment["reason"] == "sent nothing for 1.5s (killed)"
    assert segment["exit_code"] == -9
    assert segment["users_lost"] == 3
    assert result["status"] == "failed"


def test_a_worker_that_cannot_load_fails_the_start_with_its_message(tmp_path: Path) -> None:
    runner = _runner(tmp_path, failing_worker, ["0", "1"])
    with pytest.raises(RunError, match=r"could not start: data source cannot be read: gone\.csv"):
        asyncio.run(runner.run())
    assert isinstance(runner.processes, WorkerProcesses)
    assert all(not p.is_alive() for p in runner.processes.processes)
