"""Ray for the `--cluster` tests (tests/cluster/test_ray*.py): a local Ray or a simulated
multi-node cluster per module, small and quiet (no dashboard, usage stats off, a short
temporary directory: Ray's socket paths must fit in 107 bytes). The tests skip without Ray,
except in CI, where `make test` installed the `ray` extra: there a missing Ray fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"


def require_ray() -> Any:
    """The `ray` module; a skip (a failure in CI) when it is not installed."""
    try:
        import ray
    except ImportError:
        missing = "ray is not installed (make test installs the `ray` extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    return ray


@contextmanager
def quiet_ray_env() -> Iterator[Path]:
    """Usage stats off, and a short temporary directory, removed after. Ray is bound to
    127.0.0.1 by the fixtures (`LOOPBACK`): no test traffic leaves loopback."""
    temp = Path(tempfile.mkdtemp(prefix="wr", dir="/tmp"))
    (temp / "ray").mkdir()
    # RAY_TMPDIR: where Ray notes the running cluster's address (the drivers read it too).
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray's single-machine mode, where a driver
    # given ray://127.0.0.1:PORT stays on loopback (else Ray swaps in the machine's address).
    env = {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": str(temp),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield temp
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(temp, ignore_errors=True)


def run_cli(bundle: Path, *flags: str, timeout: float = 90) -> tuple[int, dict[str, Any], str]:
    """`wbsrun run BUNDLE --json BUNDLE/r.json FLAGS` in a subprocess: exit code, result,
    standard error."""
    out = bundle / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", "run", str(bundle), "--json", str(out), *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    return proc.returncode, result, proc.stderr


def ledger_entries(out: Path) -> list[dict[str, Any]]:
    """`wbsrun ledger OUT --json`: every worker's on-disk ledger entries."""
    listed = subprocess.run(
        [sys.executable, "-m", "wbsrun", "ledger", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def wait_until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    due = time.monotonic() + seconds
    while time.monotonic() < due:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds:g}s waiting for {what}")
