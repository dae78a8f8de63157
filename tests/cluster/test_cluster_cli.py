"""What `--workers` adds to the CLI: the option's range, its documented default, and the start
warning for exclusive pools (each worker has its own copy of a pool)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wbsrun.cli.exits import EXIT_RUN_ERROR, exit_code
from wbsrun.cli.session import start_warnings
from wbsrun.core.runner import RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from wbsrun.resources.pool import PoolManager

REFERENCE = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "examples" / "http_tri_phase"


def test_exclusive_pools_are_a_start_warning_only_with_several_workers() -> None:
    plan = load_plan(REFERENCE, provides())
    pools = PoolManager(plan)
    assert not any("copy" in w for w in start_warnings(plan, pools, RunOptions()))
    warned = [w for w in start_warnings(plan, pools, RunOptions(), workers=2) if "copy" in w]
    assert warned == [
        "pool 'ip-port-pool' is exclusive, and each of the 2 workers has its own copy: "
        "an item can be held by one user in each worker at once"
    ]


def test_a_failed_segment_exits_as_a_run_error_whatever_the_thresholds() -> None:
    assert exit_code({"status": "failed", "thresholds": [{"ok": True}]}) == EXIT_RUN_ERROR
    assert exit_code({"status": "failed", "thresholds": [{"ok": False}]}) == EXIT_RUN_ERROR


def test_workers_below_zero_is_refused_and_the_help_states_the_default() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "wbsrun", "run", str(REFERENCE), "--workers", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "--workers" in bad.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "wbsrun", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--workers" in shown.stdout
    assert "default: 1" in shown.stdout.replace("\n", " ").replace("  ", " ")
