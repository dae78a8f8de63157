"""The three sampling modes on a real run (`wbsrun run` against the embedded target): the same
counts, progress and milestones in the result; `full` writes exactly `tasks.started` entries,
which `wbsrun ledger` reads back and filters."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wbsrun.target import TargetProcess

USERS, PASSES = 12, 5


def wbsrun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fixed_passes(bundle: Path) -> Path:
    """The reference scenario with users × passes instead of a time window, small caps."""
    script = bundle / "script.yaml"
    text = script.read_text(encoding="utf-8")
    text = text.replace("user-count: 1000", f"user-count: {USERS}", 1)
    text = text.replace("task-duration: 120s", f"iterations: {PASSES}", 1)
    text = text.replace(
        "\nprogress:\n", "\nprogress:\n  sampling: {keep-failed: 3, keep-succeeded: 7}\n", 1
    )
    script.write_text(text, encoding="utf-8")
    return bundle


def stable(result: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the mode: every count, progress figure and milestone, and the
    ledger's totals but for those that depend on timing in a real run (phase durations and
    how often a pass was throttled or waited for an item; the property test in
    test_ledger_sampling.py holds those equal across modes on the same entries)."""
    progress = dict(result["progress"])
    progress.pop("eta_s", None)
    for s in progress.get("scenarios", {}).values():
        s.pop("mean_pass_s", None)
        s.pop("eta_s", None)
    totals = {}
    for name, t in result["ledger"]["scenarios"].items():
        totals[name] = {
            **{k: v for k, v in t.items() if k not in ("phases", "actions")},
            "closing": {p: v["entered"] for p, v in t["phases"].items() if "closing" in p},
            "actions": {a: (v["count"], v["results"]) for a, v in t["actions"].items()},
        }
    return {
        "users": result["users"],
        "tasks": result["tasks"],
        # Counts and status codes; not the clock's figures (latency, rate) nor bytes (answers
        # carry ids and times of their own).
        "requests": {
            k: v
            for k, v in result["requests"].items()
            if k not in ("per_second", "latency_ms", "bytes")
        },
        "actions": {k: (v["count"], v["ok"], v["failed"]) for k, v in result["actions"].items()},
        "exits": result["exits"],
        "errors": result["errors"],
        "progress": progress,
        "totals": totals,
    }


def test_the_three_modes_report_the_same_and_full_writes_every_pass_to_disk(
    tmp_path: Path, live_reference: Callable[[int], tuple[Path, TargetProcess]]
) -> None:
    bundle, _target = live_reference(4)
    fixed_passes(bundle)
    results: dict[str, dict[str, Any]] = {}
    for mode in ("aggregated", "sampled", "full"):
        out = tmp_path / mode
        done = wbsrun("run", str(bundle), "--sampling", mode, "--out", str(out), "--quiet")
        assert done.returncode == 0, done.stderr
        results[mode] = json.loads((out / "result.json").read_text(encoding="utf-8"))

    started = USERS * PASSES
    assert results["full"]["tasks"]["started"] == started
    assert results["full"]["tasks"]["succeeded"] == started, "a healthy target: all succeed"
    assert results["aggregated"]["progress"]["milestones"]["probe"]["reached"] == started
    first = stable(results["aggregated"])
    for mode in ("sampled", "full"):
        assert stable(results[mode]) == first, mode
    ledgers = {mode: r["ledger"] for mode, r in results.items()}
    assert ledgers["aggregated"]["closed"] == started
    assert ledgers["aggregated"]["kept"] == 7
    assert ledgers["aggregated"]["dropped"] == started - 7
    # One in 100 closed entries too: with 60 passes, none reaches the 100th.
    assert ledgers["sampled"]["kept"] == 7
    assert ledgers["full"]["kept"] == 0
    assert ledgers["full"]["written"] == started
    assert ledgers["full"]["error"] is None

    out = tmp_path / "full"
    listed = wbsrun("ledger", str(out), "--json")
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(entries) == started
    assert {e["phase"] for e in entries} == {"closing.success"}
    assert len({e["task_id"] for e in entries}) == started
    probe = entries[0]["telemetry"]["milestones"]["achieved"]
    assert "probe" in probe
    # Saved HTTP results are kept in their cheap form (status, latency, body), the body as text.
    asset = entries[0]["vars"]["asset"]
    assert asset["status"] == 200
    assert isinstance(asset["body"], str)
    assert isinstance(asset["latency_ms"], float)
    assert set(asset) == {"status", "latency_ms", "body"}
    user = entries[0]["user_id"]
    mine = wbsrun("ledger", str(out), "--user", user, "--json").stdout.splitlines()
    assert len(mine) == PASSES
    assert {json.loads(line)["user_id"] for line in mine} == {user}
    task = entries[3]["task_id"]
    one = wbsrun("ledger", str(out), "--task", task)
    assert one.stdout.count("\n") == 1
    assert one.stdout.startswith(task + "\t")
    assert wbsrun("ledger", str(out), "--phase", "closing.error").stdout == ""


def test_full_without_an_output_directory_is_refused_before_the_run(
    live_reference: Callable[[int], tuple[Path, TargetProcess]],
) -> None:
    bundle, _target = live_reference(1)
    done = wbsrun("run", str(bundle), "--sampling", "full", "--users", "1", "--quiet")
    assert done.returncode == 2
    assert "needs an output directory" in done.stderr
    assert "--out DIR" in done.stderr
    assert "Traceback" not in done.stderr


def test_wbsrun_ledger_on_a_directory_without_a_ledger_says_so(tmp_path: Path) -> None:
    done = wbsrun("ledger", str(tmp_path))
    assert done.returncode == 2
    assert "no ledger here" in done.stderr
