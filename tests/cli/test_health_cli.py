"""The health roll-up on a real `wbsrun run` against the embedded target: of two scenarios,
the one whose passes hit a failing route (GET /missing, always 404) scores lower than the
healthy one, and says so alike in the JSON result, the piped live line and a metrics scrape."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from metrics_kit import free_port, scrape, wait_for
from wbsrun.cli.session import run_loop, wire
from wbsrun.core.log import RunLog
from wbsrun.core.runner import RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetKnobs, TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"

SCENARIO = """\
version: "1.0"
name: health
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
  missing:
    component: http
    call: get
    with:
      url: "{url}/missing"
workflows:
  calm:
    type: graph
    nodes:
      - id: first
        type: action
        action: fetch
        controls:
          exec:
            transitions:
              - {{to: end, condition: always}}
      - {{id: end, type: terminus, state: closing.success}}
  broken:
    type: graph
    nodes:
      - id: first
        type: action
        action: fetch
        controls:
          exec:
            transitions:
              - {{to: second, condition: always}}
      - id: second
        type: action
        action: missing
        controls:
          exec:
            transitions:
              - {{to: end, condition: always}}
      - {{id: end, type: terminus, state: closing.success}}
load:
  scenarios:
    - {{name: healthy, workflow: calm, user-count: 3, think-time: 50ms}}
    - {{name: failing, workflow: broken, user-count: 3, think-time: 50ms}}
"""

# `| failing 100% health 0.61↑`: a scenario's field of the live line.
SCENARIO_FIELD = re.compile(r"\| (healthy|failing) \d+% health (\d\.\d\d)[↑↓→]?")
PROGRAM_FIELD = re.compile(r"  health (\d\.\d\d)[↑↓→]?  ")


def _run(tmp_path: Path, target: TargetProcess) -> tuple[dict[str, Any], str, Any]:
    """The run (6.5 s: one piped live line at 5 s), its result, its stdout and the final
    scrape of its metrics, taken while the exporter lingers."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    url = f"http://{target.hosts[0]}:{target.port}"
    (bundle / "script.yaml").write_text(SCENARIO.format(url=url), encoding="utf-8")
    out = tmp_path / "result.json"
    port = free_port()
    cmd = [sys.executable, "-m", "wbsrun", "run", str(bundle), "--duration", "6.5s"]
    cmd += ["--json", str(out), "--metrics", f"127.0.0.1:{port}", "--metrics-linger", "30s"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for(lambda: out.is_file() or None, 60, "the result file", proc)
        time.sleep(0.2)
        final = scrape(f"http://127.0.0.1:{port}/metrics")
        proc.send_signal(signal.SIGINT)  # ends the linger at once
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0, stderr
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.validate(result, json.loads(SCHEMA.read_text(encoding="utf-8")))
    return result, stdout, final


def test_a_scenario_hitting_a_failing_route_is_less_healthy_in_the_result_line_and_metrics(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(knobs=TargetKnobs())
    result, stdout, final = _run(tmp_path, target)

    health = result["health"]
    healthy, failing = health["scenarios"]["healthy"], health["scenarios"]["failing"]
    # Each scenario's error rate is its own requests': none failed in one, half in the other.
    assert healthy["error_rate"] == 0.0
    assert failing["error_rate"] == 0.5
    assert failing["score"] < healthy["score"] - 0.1
    for figures in (health, healthy, failing):
        formula = (
            figures["progress"] * 0.6
            + (1 - figures["error_rate"]) * 0.3
            + (1 - figures["deviation"]) * 0.1
        )
        assert abs(figures["score"] - formula) < 2e-4  # each figure rounded to 4 places
        # 6.5 s of samples: the trend is known (a number, per minute).
        assert isinstance(figures["trend"], float | int)
    # The program sits between its scenarios (its error rate is the requests' overall).
    assert failing["score"] < health["score"] < healthy["score"]
    # Every user is summed up; the worst are the failing scenario's, whose passes all failed.
    users = health["users"]
    assert users["count"] == 6
    assert 0.0 <= users["min"] <= users["p10"] <= users["p50"] <= 1.0
    assert len(users["worst"]) == 6
    assert [w["scenario"] for w in users["worst"][:3]] == ["failing"] * 3
    scores = [w["score"] for w in users["worst"]]
    assert scores == sorted(scores)
    assert users["min"] == scores[0]

    # The piped live line (one at 5 s): the program's health and each scenario's.
    live = [line for line in stdout.splitlines() if "ETA" in line]
    assert live, stdout
    line = live[-1]
    assert PROGRAM_FIELD.search(line), line
    shown = dict(SCENARIO_FIELD.findall(line))
    assert set(shown) == {"healthy", "failing"}, line
    assert float(shown["failing"]) < float(shown["healthy"]), line

    # The end summary: each scenario's health beside its work.
    for name, figures in (("healthy", healthy), ("failing", failing)):
        row = rf"scenario\s+{name}\s+work [\d.]+%, health {figures['score']:.2f}"
        assert re.search(row, stdout), stdout

    # The metrics: the program under scenario="", each scenario under its name, equal to the
    # result's figures.
    assert final.value("wbsrun_run_finished") == 1
    program = final.value("wbsrun_health_score", scenario="")
    assert abs(program - health["score"]) < 1e-4
    for name, figures in (("healthy", healthy), ("failing", failing)):
        assert abs(final.value("wbsrun_health_score", scenario=name) - figures["score"]) < 1e-4
        rate = final.value("wbsrun_health_input_ratio", scenario=name, input="error_rate")
        assert abs(rate - figures["error_rate"]) < 1e-4
    assert final.value("wbsrun_health_score", scenario="failing") < final.value(
        "wbsrun_health_score", scenario="healthy"
    )
    assert abs(final.value("wbsrun_user_health_score", quantile="0") - users["min"]) < 1e-4
    assert final.value("wbsrun_health_trend_per_minute", scenario="failing") is not None

    # The time series: the program's score and its trend, a value a point.
    ts = result["timeseries"]
    assert len(ts["health_trend"]) == len(ts["t"])
    assert ts["health"][-1] == health["score"]
    assert ts["health_trend"][-1] is not None
    for name, figures in (("healthy", healthy), ("failing", failing)):
        assert ts["health_scenarios"][name][-1] == figures["score"]


def test_the_live_result_spares_the_pass_over_every_user_and_the_final_one_has_it(
    live_reference: Callable[[int], tuple[Path, TargetProcess]],
) -> None:
    bundle, _ = live_reference(2)
    plan = load_plan(bundle, provides())
    wired = wire(plan, RunOptions(users=2, duration=1.0), PoolManager(plan), RunLog(None))
    run_loop(wired.runner.run)
    # What thresholds read every second: no per-user figure; the result written: every user.
    assert wired.live_result()["health"]["users"] is None
    users = wired.result()["health"]["users"]
    assert users["count"] == 2
    assert [w["scenario"] for w in users["worst"]] == [plan.scenarios[0].name] * 2
