"""The forecast end to end: `wbsrun run` against the embedded target slowed mid-run (its latency
knob, at run time) prints the "will miss its plan" warning before the plan's end and sets
`forecast.will_miss_plan`; an unhurried run does not; `--history` reads earlier results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from wbsrun.target import TargetKnobs, TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"

# 20 users × 60 passes of one 50 ms GET and a 50 ms think time: ~6 s at full speed; the plan
# ends at 9 s (max-duration).
BUNDLE = """\
version: "1.0"
name: forecast
components:
  - {{name: http, version: "1.0.0", kind: native, capabilities: [get]}}
actions:
  fetch: {{component: http, call: get, with: {{url: "{url}/asset"}}}}
workflows:
  main:
    type: graph
    nodes:
      - id: first
        type: action
        action: fetch
        controls: {{exec: {{transitions: [{{to: end, condition: always}}]}}}}
      - {{id: end, type: terminus, state: closing.success}}
load:
  scenarios:
    - {{name: only, workflow: main, user-count: 20, iterations: 60, think-time: 50ms,
       max-duration: 9s}}
"""


def _start(path: Path, out: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wbsrun", "run", str(path), "--json", str(out), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _finish(proc: subprocess.Popen[str], within: float = 60.0) -> str:
    try:
        output, _ = proc.communicate(timeout=within)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return output


def _requests(target: TargetProcess) -> int:
    return int(target.stats()["by_route"].get("GET /asset", 0))


def _result(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(out.read_text())
    jsonschema.validate(result, json.loads(SCHEMA.read_text()))
    return result


def test_a_target_slowed_mid_flight_is_warned_of_before_the_plan_ends(
    target_factory: Callable[..., TargetProcess], tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=50))
    path = tmp_path / "script.yaml"
    path.write_text(BUNDLE.format(url=target.url()), "utf-8")
    out = tmp_path / "r.json"
    proc = _start(path, out, "--log", str(tmp_path / "run.log"))
    # A quarter of the passes at full speed, then every request takes 300 ms: ~17 s of work
    # left against a plan that ends at 9 s.
    end = time.monotonic() + 30
    while _requests(target) < 300:
        assert time.monotonic() < end, "the run never got going"
        assert proc.poll() is None, "the run ended before the target was slowed"
        time.sleep(0.02)
    target.control(latency_ms=300)
    output = _finish(proc)
    assert proc.returncode == 0, output
    assert "will miss its plan" in output
    # The warning says the plan's end and what the pace needs (its ETA is cut at the end).
    warning = re.search(r"warning: scenario 'only' will miss its plan \(its end: 9s\): .*", output)
    assert warning is not None, output
    needs = re.search(r"at its pace it needs until (\d+)s", warning.group(0))
    assert needs is not None, warning.group(0)
    assert int(needs.group(1)) > 9, warning.group(0)
    result = _result(out)
    fc = result["forecast"]
    assert fc["will_miss_plan"] is True
    assert fc["scenarios"]["only"]["will_miss_plan"] is True
    # Warned a fifth of the run before its end, at the latest.
    assert fc["warned_at_s"] is not None
    assert fc["warned_at_s"] <= 0.8 * result["duration_s"], (fc, result["duration_s"])
    assert result["progress"]["work"] < 1.0  # the plan's end cut the work short
    assert "will miss its plan" in (tmp_path / "run.log").read_text()
    # The time series carries the band and the progress forecast.
    series = result["timeseries"]
    assert any(x is not None and x < 1.0 for x in series["forecast_progress"])
    lows, mids, highs = series["eta_low_s"], series["eta_s"], series["eta_high_s"]
    assert all(lo <= mid <= hi for lo, mid, hi in zip(lows, mids, highs, strict=True) if mid)


def test_an_unhurried_target_is_never_warned_of_and_history_is_read(
    target_factory: Callable[..., TargetProcess], tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=50))
    path = tmp_path / "script.yaml"
    path.write_text(BUNDLE.format(url=target.url()), "utf-8")
    first = tmp_path / "history" / "first.json"
    output = _finish(_start(path, first))
    result = _result(first)
    assert "will miss its plan" not in output
    assert result["forecast"]["will_miss_plan"] is False
    assert result["forecast"]["warned_at_s"] is None
    assert result["forecast"]["final_progress"] == 1.0
    # The second run starts from the first one's duration and pace profile.
    second = tmp_path / "second.json"
    output = _finish(_start(path, second, "--history", str(first.parent)))
    assert "history: 1 earlier run(s) of 'forecast'" in output, output
    fc = _result(second)["forecast"]
    assert (fc["history_runs"], fc["will_miss_plan"]) == (1, False)
    assert fc["method"] == "done"
    series = _result(second)["timeseries"]
    assert series["eta_s"][0] is not None  # an estimate from the first second
