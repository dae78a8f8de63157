"""Run options that would silently misconfigure a run are refused with their location:
zero users, a zero window, unknown config.yaml keys; and `--json -` writes to stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wbsrun.cli.options import resolve_options
from wbsrun.core.scheduler import spawn_plan
from wbsrun.dsl.loader import load_plan
from wbsrun.errors import ScenarioError
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetProcess

# One scenario with a constant profile: `--users` rescales the profile's population.
PROFILED = """\
version: "1.0"
name: profiled
components:
  - {{name: http, version: "1.0.0", kind: native, capabilities: [get]}}
actions:
  fetch:
    component: http
    call: get
    with: {{url: "{URL}/asset"}}
workflows:
  main:
    type: graph
    controls: {{timeout: 2s}}
    nodes:
      - id: first
        type: action
        action: fetch
        controls: {{exec: {{transitions: [{{edge: done, to: end, condition: always}}]}}}}
      - {{id: end, type: terminus, state: closing.success}}
load:
  profiles:
    hold: {{type: constant, users: 2, duration: 1s}}
  scenarios:
    - {{name: only, workflow: main, profile: hold, iterations: 1}}
"""


def wbsrun(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=env,
    )


def bundle(tmp_path: Path, url: str = "http://127.0.0.1:9", config: str | None = None) -> Path:
    (tmp_path / "script.yaml").write_text(PROFILED.format(URL=url), encoding="utf-8")
    if config is not None:
        (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
    return tmp_path


def refusal(config: Path | None, flags: dict[str, Any], env: dict[str, str]) -> str:
    with pytest.raises(ScenarioError) as info:
        resolve_options(config, flags, env)
    return info.value.format()


# -- users -----------------------------------------------------------------------------------------


def test_users_zero_is_refused_by_the_cli_without_a_traceback(
    tmp_path: Path, target: TargetProcess
) -> None:
    proc = wbsrun("run", str(bundle(tmp_path, target.url())), "--users", "0", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "--users must be a whole number ≥ 1" in proc.stderr
    assert target.stats()["received"] == 0


@pytest.mark.parametrize(
    ("config", "env", "where"),
    [
        (None, {"WBSRUN_USERS": "0"}, "users from WBSRUN_USERS must be a whole number ≥ 1"),
        ("run:\n  users: 0\n", {}, "config.yaml:2:10: error [bad-option] run.users in"),
        ("run:\n  users: -3\n", {}, "config.yaml:2:10: error [bad-option] run.users in"),
    ],
)
def test_users_zero_is_refused_from_environment_and_config(
    tmp_path: Path, config: str | None, env: dict[str, str], where: str
) -> None:
    path = None
    if config is not None:
        path = tmp_path / "config.yaml"
        path.write_text(config, encoding="utf-8")
    assert where in refusal(path, {}, env)


@pytest.mark.parametrize("users", [0, -1])
def test_spawn_plan_of_no_users_is_empty_not_a_division_by_zero(tmp_path: Path, users: int) -> None:
    plan = load_plan(bundle(tmp_path), provides())
    spawned = spawn_plan(plan.scenarios[0], users)
    assert spawned.starts == ()
    assert spawned.stop_after == 1.0
    assert spawn_plan(plan.scenarios[0], 5).users == 5


# -- duration --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0s", "0", "0ms"])
def test_zero_duration_flag_is_refused(value: str) -> None:
    text = refusal(None, {"duration": value}, {})
    assert "--duration must be a duration above zero" in text
    assert repr(value) in text


def test_zero_duration_is_refused_from_environment_and_config(tmp_path: Path) -> None:
    assert "duration from WBSRUN_DURATION must be" in refusal(None, {}, {"WBSRUN_DURATION": "0s"})
    config = tmp_path / "config.yaml"
    config.write_text("run:\n  duration: 0s\n", encoding="utf-8")
    assert "config.yaml:2:13: error [bad-option] run.duration" in refusal(config, {}, {})


def test_zero_duration_is_refused_by_the_cli(tmp_path: Path, target: TargetProcess) -> None:
    proc = wbsrun("run", str(bundle(tmp_path, target.url())), "--duration", "0s", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--duration must be a duration above zero" in proc.stderr
    assert target.stats()["received"] == 0


# -- config.yaml keys ----------------------------------------------------------------------------


def test_every_bad_config_key_is_refused_in_one_pass_with_its_location(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "rnu:\n  users: 3\nrun:\n  usres: 4\n  duration: 2s\n  transport: slow\ntelemetry: {}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as info:
        resolve_options(config, {}, {})
    found = {(d.code, d.line, d.column, d.value) for d in info.value.diagnostics}
    assert found == {
        ("unknown-key", 1, 1, "rnu"),
        ("unknown-key", 4, 3, "usres"),
        ("bad-option", 6, 14, "'slow'"),
        ("unknown-key", 7, 1, "telemetry"),
    }
    assert all(d.file == str(config) for d in info.value.diagnostics)
    hints = {d.value: d.hint for d in info.value.diagnostics}
    assert hints["rnu"] == "did you mean 'run'?"
    assert hints["usres"] == "did you mean 'users'?"


def test_config_yaml_syntax_error_has_its_location(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("run:\n  users: 3\n  users: 4\n", encoding="utf-8")
    text = refusal(config, {}, {})
    assert "config.yaml:3:3: error [duplicate-key]" in text


def test_valid_config_still_layers_under_environment_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("run:\n  users: 7\n  duration: 3s\n  connection-limit: 0\n", "utf-8")
    options = resolve_options(config, {"duration": "1s"}, {"WBSRUN_USERS": "9"})
    assert (options.users, options.duration, options.connection_limit) == (9, 1.0, 0)
    assert resolve_options(tmp_path / "absent.yaml", {}, {}).users is None


def test_unknown_config_key_stops_the_cli_run(tmp_path: Path, target: TargetProcess) -> None:
    path = bundle(tmp_path, target.url(), config="rnu:\n  users: 1\n")
    proc = wbsrun("run", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{path / 'config.yaml'}:1:1: error [unknown-key]" in proc.stderr
    assert target.stats()["received"] == 0


# -- --json - ------------------------------------------------------------------------------------


def test_json_dash_writes_the_result_to_stdout_and_the_summary_to_stderr(
    tmp_path: Path, target: TargetProcess
) -> None:
    proc = wbsrun("run", str(bundle(tmp_path, target.url())), "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # nothing but the result on stdout
    assert result["requests"]["total"] == target.stats()["received"] == 2
    assert not (tmp_path / "-").exists()
    assert "requests" in proc.stderr  # the summary went to stderr
