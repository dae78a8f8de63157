"""`wbsrun run` gates on thresholds, as k6 does: real runs against the embedded target exit 99
with the failed rule named, 0 when every rule holds, 2 (with file:line:col) when a rule is
malformed, in the scenario or its config.yaml; abort-on-fail stops a long run early, after its
delay-abort-eval, with status "aborted"; alerts reach the run log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from wbsrun.target import TargetKnobs, TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"

SCENARIO = """\
version: "1.0"
name: gate
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
  scenarios:
    - name: only
      workflow: main
      user-count: 2
{iterations}
{thresholds}"""

Target = Callable[..., TargetProcess]


def _bundle(
    tmp_path: Path, url: str, thresholds: str, config: str | None = None, iterations: int = 3
) -> Path:
    loop = f"      iterations: {iterations}" if iterations else ""
    text = SCENARIO.format(url=url, iterations=loop, thresholds=thresholds)
    (tmp_path / "script.yaml").write_text(text, encoding="utf-8")
    if config is not None:
        (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
    return tmp_path


def _run(bundle: Path, *flags: str, timeout: float = 60) -> tuple[int, str, dict[str, Any]]:
    out = bundle / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", "run", str(bundle), "--json", str(out), *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result = json.loads(out.read_text()) if out.exists() else {}
    if result:
        jsonschema.validate(result, json.loads(SCHEMA.read_text()))
    return proc.returncode, proc.stderr, result


def test_a_run_whose_threshold_fails_exits_99_and_names_the_rule(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(status=503))
    rules = "thresholds:\n  - http.failed_rate < 0.01\n  - http.reqs == 6\n"
    code, err, result = _run(_bundle(tmp_path, target.url(), rules), "--quiet")
    assert code == 99, err
    assert "threshold failed: http.failed_rate < 0.01 (observed 1)" in err
    assert "http.reqs == 6" not in err
    assert result["status"] == "completed"
    assert [(t["rule"], t["ok"], t["observed"]) for t in result["thresholds"]] == [
        ("http.failed_rate < 0.01", False, 1.0),
        ("http.reqs == 6", True, 6.0),
    ]
    assert target.stats()["received"] == 6


def test_a_run_whose_thresholds_pass_exits_0_with_them_in_the_result(
    target: TargetProcess, tmp_path: Path
) -> None:
    rules = (
        "thresholds:\n  - http.failed_rate < 0.01\n  - errors.http-5xx == 0\n"
        "  - actions.fetch.count >= 6\n  - progress.work >= 1\n"
    )
    code, err, result = _run(_bundle(tmp_path, target.url(), rules), "--quiet")
    assert code == 0, err
    assert "threshold" not in err
    assert [t["ok"] for t in result["thresholds"]] == [True] * 4
    assert result["thresholds"][3]["observed"] == 1.0


def test_a_run_without_thresholds_exits_0_with_an_empty_list(
    target: TargetProcess, tmp_path: Path
) -> None:
    code, err, result = _run(_bundle(tmp_path, target.url(), ""), "--quiet")
    assert code == 0, err
    assert result["thresholds"] == []


def test_config_yaml_thresholds_gate_the_run_too(target_factory: Target, tmp_path: Path) -> None:
    target = target_factory(knobs=TargetKnobs(status=503))
    config = "thresholds:\n  errors.http-5xx: ['< 1']\n"
    code, err, _ = _run(_bundle(tmp_path, target.url(), "", config=config), "--quiet")
    assert code == 99, err
    assert "threshold failed: errors.http-5xx < 1 (observed 6)" in err


def test_a_malformed_threshold_exits_2_with_its_location_and_sends_nothing(
    target: TargetProcess, tmp_path: Path
) -> None:
    bundle = _bundle(
        tmp_path,
        target.url(),
        "thresholds:\n  - http.failed_rte < 0.01\n",
        config="run:\n  users: 1\nthresholds:\n  - http.reqs =< 3\n",
    )
    code, err, result = _run(bundle)
    assert code == 2
    lines = (bundle / "script.yaml").read_text().splitlines()
    at = lines.index("  - http.failed_rte < 0.01") + 1
    assert f"{bundle / 'script.yaml'}:{at}:5: error [unknown-metric]" in err
    assert "did you mean 'http.failed_rate'?" in err
    assert f"{bundle / 'config.yaml'}:4:15: error [bad-operator]" in err
    assert "2 error(s); the scenario was not run" in err
    assert result == {}
    assert target.stats()["received"] == 0


def test_validate_refuses_a_malformed_threshold(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "http://127.0.0.1:9", "thresholds: ['checks.rate > 0.99']\n")
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", "validate", str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "[unknown-check]" in proc.stderr
    assert "no action of the plan has checks" in proc.stderr


ABORT = """thresholds:
  - rule: http.failed_rate < 0.01
    abort-on-fail: true
    delay-abort-eval: {delay}
"""


def test_abort_on_fail_stops_a_long_run_after_its_delay_with_status_aborted(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(status=503))
    bundle = _bundle(tmp_path, target.url(), ABORT.format(delay="2s"), iterations=0)
    began = time.monotonic()
    code, err, result = _run(bundle, "--duration", "30s", "--log", str(tmp_path / "run.log"))
    took = time.monotonic() - began
    assert code == 99, err
    assert result["status"] == "aborted"
    # Checked every second: failing from the first check, aborted at the first one at ≥ 2 s;
    # the passes in flight end at once (the target answers), well inside the 30 s window.
    assert 2.0 <= result["duration_s"] < 4.0, result["duration_s"]
    assert took < 15
    verdict = result["thresholds"][0]
    assert verdict["ok"] is False
    assert verdict["abort_on_fail"] is True
    assert verdict["delay_abort_eval_s"] == 2.0
    assert 0.9 <= verdict["first_failed_s"] <= 1.5
    assert "threshold failed: http.failed_rate < 0.01 (observed 1)" in err
    log = (tmp_path / "run.log").read_text()
    assert log.count("threshold crossed: http.failed_rate < 0.01") == 1
    assert log.count("still failing after its delay-abort-eval") == 1
    assert "abort-on-fail: stopping the run" in log


def test_abort_on_fail_is_not_evaluated_before_its_delay(
    target_factory: Target, tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(status=503))
    bundle = _bundle(tmp_path, target.url(), ABORT.format(delay="10s"), iterations=0)
    code, err, result = _run(bundle, "--duration", "3s", "--graceful-stop", "1s")
    # The window (3 s) ends before the delay (10 s): the run completes, the rule fails at the end.
    assert code == 99, err
    assert result["status"] == "completed"
    assert result["duration_s"] >= 3.0
    assert result["thresholds"][0]["ok"] is False
