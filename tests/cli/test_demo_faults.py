"""`wbsrun demo --faults`: items go bad mid-run, holders roll back, every lease comes back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_with_faults_rolls_tasks_back_and_returns_every_lease(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    args = ["demo", "--faults", "--users", "12", "--duration", "8s", "--quiet"]
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", *args, "--workdir", str(work)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    result = json.loads((work / "result.json").read_text())
    pool = result["resources"]["ip-port-pool"]
    assert pool["items"] == 12 + 4  # one per user and the spares
    # The 503 item and the hung item left rotation; the 503 item came back.
    assert pool["items_failed"] == 2
    assert pool["items_recovered"] == 1
    assert pool["healthy"] == 15
    assert result["tasks"]["rollbacks"] >= 1
    assert (
        pool["leases"]
        == pool["released"]
        == result["tasks"]["started"] + result["tasks"]["rollbacks"]
    )
    assert pool["active"] == pool["held_at_end"] == pool["release_errors"] == 0
    # The 401 item's passes ended in the permanent branch of the classified exit.
    assert result["errors"]["unauthorized"] >= 1
    assert result["logs"]["error"] == result["errors"]["unauthorized"]
    for says in ("/health answers 503", "hangs", "answers 401", "healthy again"):
        assert says in out
    assert "every lease returned" in out
    assert f"server counted {result['requests']['total']} requests" in out
    # The scenario's own health-check block ran, on the demo's shorter interval.
    script = (work / "script.yaml").read_text()
    assert "interval: 1s" in script
