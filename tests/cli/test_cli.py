"""The `wbsrun` command end to end: exit codes, diagnostics, results, the demo, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from wbsrun.target import TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"

MINIMAL = """\
version: "1.0"
name: minimal
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
      url: "{URL}/asset"
    save-as: asset
workflows:
  main:
    type: graph
    controls:
      timeout: 2s
    nodes:
      - id: first
        type: action
        action: fetch
        controls:
          exec:
            transitions:
              - edge: done
                to: end
                condition: "{{{{asset.status == 200}}}}"
      - id: end
        type: terminus
        state: closing.success
load:
  scenarios:
    - name: only
      workflow: main
      user-count: 2
      iterations: 3
"""


def wbsrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def write(tmp_path: Path, text: str, url: str = "http://127.0.0.1:9") -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(text.format(URL=url), encoding="utf-8")
    return path


def test_validate_accepts_the_canonical_reference_unchanged(reference_dir: Path) -> None:
    proc = wbsrun("validate", str(reference_dir / "http_scenario.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_validate_accepts_the_reference_directory(reference_dir: Path) -> None:
    assert wbsrun("validate", str(reference_dir)).returncode == 0


def test_typo_in_top_level_key_is_refused_with_location_and_hint(tmp_path: Path) -> None:
    text = MINIMAL.replace("workflows:", "workflow:")
    path = write(tmp_path, text)
    proc = wbsrun("validate", str(path))
    assert proc.returncode == 2
    assert f"{path}:{line_of(text, 'workflow:')}:1" in proc.stderr
    assert "did you mean 'workflows'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_undefined_variable_is_refused_with_its_name_and_location(tmp_path: Path) -> None:
    text = MINIMAL.replace("asset.status == 200", "assett.status == 200")
    path = write(tmp_path, text)
    proc = wbsrun("validate", str(path))
    assert proc.returncode == 2
    assert "undefined variable 'assett'" in proc.stderr
    assert "did you mean 'asset'" in proc.stderr
    assert f"{path}:{line_of(text, 'assett')}:" in proc.stderr


def test_import_expression_is_refused_at_load_time(tmp_path: Path) -> None:
    text = MINIMAL.replace('url: "{URL}/asset"', "url: \"{{{{__import__('os')}}}}\"")
    path = write(tmp_path, text)
    proc = wbsrun("validate", str(path))
    assert proc.returncode == 2
    assert "[template-syntax]" in proc.stderr
    assert f"{path}:{line_of(text, '__import__')}:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_bundle_exits_two_without_traceback(tmp_path: Path) -> None:
    proc = wbsrun("validate", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "nope" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wbs_prints_every_level_from_program_to_action(reference_dir: Path) -> None:
    proc = wbsrun("wbs", str(reference_dir))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("L0 program http_tri_phase_demo")
    for level, name in [
        (1, "portfolio http"),
        (2, "scenario http-bulk-refresh"),
        (3, "workflow http_tri_phase"),
        (4, "task http-bulk-refresh/task"),
        (5, "action init_probe"),
        (5, "action post_push"),
        (5, "action delete_purge"),
        (5, "action audit_stream"),
    ]:
        assert any(f"L{level} {name}" in line for line in lines), name


def test_run_counts_equal_the_servers_and_the_result_matches_its_schema(
    live_reference: Callable[[int], tuple[Path, TargetProcess]], tmp_path: Path
) -> None:
    bundle, target = live_reference(4)
    out = tmp_path / "result.json"
    proc = wbsrun("run", str(bundle), "--users", "4", "--duration", "1.5s", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(out.read_text())
    jsonschema.validate(result, json.loads(SCHEMA.read_text()))
    served = target.stats()
    assert result["requests"]["total"] == served["received"] > 0
    assert result["requests"]["failed"] == 0
    assert result["tasks"]["succeeded"] == result["tasks"]["started"] > 0
    for action in ("probe-get", "push-post", "purge-delete", "audit-warn"):
        assert result["actions"][action]["count"] == result["tasks"]["started"]
    assert served["by_route"]["GET /asset"] == result["actions"]["probe-get"]["count"]
    pool = result["resources"]["ip-port-pool"]
    assert pool["leases"] == pool["released"] == result["tasks"]["started"]
    assert result["progress"]["work"] == 1.0
    assert result["progress"]["milestones"]["push"]["reached"] == result["tasks"]["succeeded"]
    # save-as persist wrote one file per user inside the bundle
    assets = sorted(p.name for p in (bundle / "runtime" / "artifacts" / "assets").iterdir())
    assert assets == [f"u000{i}-asset.json" for i in range(1, 5)]


def test_run_with_more_users_than_exclusive_items_warns_and_still_completes(
    live_reference: Callable[[int], tuple[Path, TargetProcess]], tmp_path: Path
) -> None:
    bundle, target = live_reference(2)
    out = tmp_path / "r.json"
    proc = wbsrun("run", str(bundle), "--users", "6", "--duration", "1s", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "6 users, 2 exclusive items" in proc.stdout
    result = json.loads(out.read_text())
    assert result["requests"]["total"] == target.stats()["received"]
    assert result["resources"]["ip-port-pool"]["active"] == 0


def test_invalid_run_exits_two_and_sends_nothing(target: TargetProcess, tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("call: get", "call: gett"), url=target.url())
    proc = wbsrun("run", str(path))
    assert proc.returncode == 2
    assert "gett" in proc.stderr
    assert target.stats()["received"] == 0


def test_run_minimal_file_does_exactly_users_times_iterations(
    target: TargetProcess, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    proc = wbsrun("run", str(write(tmp_path, MINIMAL, target.url())), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["requests"]["total"] == target.stats()["received"] == 6
    assert result["progress"]["planned_tasks"] == 6


def test_sigint_drains_the_run_and_still_writes_the_result(
    live_reference: Callable[[int], tuple[Path, TargetProcess]], tmp_path: Path
) -> None:
    bundle, target = live_reference(4)
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wbsrun", "run", str(bundle), "--users", "4", "--json", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        time.sleep(2.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 105, err  # k6\'s "external abort"
    result = json.loads(out.read_text())
    assert result["status"] == "interrupted"
    assert result["requests"]["total"] == target.stats()["received"] > 0
    assert result["tasks"]["started"] == sum(
        result["tasks"][k] for k in ("succeeded", "failed", "timed_out", "rolled_back")
    )


def test_demo_runs_the_bundled_scenario_without_failures(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    proc = wbsrun("demo", "--users", "10", "--duration", "1.5s", "--workdir", str(work), "--quiet")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((work / "result.json").read_text())
    assert result["requests"]["failed"] == 0
    assert result["requests"]["total"] > 0
    assert f"server counted {result['requests']['total']} requests" in " ".join(proc.stdout.split())
    assert (work / "scenario.log").read_text().count("WARN") == result["logs"]["warn"]


@pytest.mark.parametrize(
    ("env", "flags", "users", "duration"),
    [
        ({}, {}, 7, 3.0),
        ({"WBSRUN_USERS": "9"}, {}, 9, 3.0),
        ({"WBSRUN_USERS": "9"}, {"users": 11}, 11, 3.0),
        ({"WBSRUN_DURATION": "500ms"}, {}, 7, 0.5),
    ],
)
def test_options_layer_config_then_environment_then_flags(
    tmp_path: Path, env: dict[str, str], flags: dict[str, Any], users: int, duration: float
) -> None:
    from wbsrun.cli.options import resolve_options

    config = tmp_path / "config.yaml"
    config.write_text("run:\n  users: 7\n  duration: 3s\n", encoding="utf-8")
    options = resolve_options(config, flags, env)
    assert options.users == users
    assert options.duration == duration


def test_bad_option_value_is_a_clear_error(tmp_path: Path) -> None:
    from wbsrun.cli.options import resolve_options
    from wbsrun.errors import ScenarioError

    with pytest.raises(ScenarioError) as info:
        resolve_options(None, {"duration": "soon"}, {})
    assert "'soon'" in info.value.format()


@pytest.mark.parametrize(
    ("env", "flags", "timeout", "max_body"),
    [
        ({}, {}, 30.0, 1024 * 1024),
        ({"WBSRUN_REQUEST_TIMEOUT": "5s", "WBSRUN_MAX_BODY": "1MB"}, {}, 5.0, 1_000_000),
        ({"WBSRUN_REQUEST_TIMEOUT": "5s"}, {"request-timeout": "750ms", "max-body": 64}, 0.75, 64),
    ],
)
def test_request_limit_options_layer_config_then_environment_then_flags(
    tmp_path: Path, env: dict[str, str], flags: dict[str, Any], timeout: float, max_body: int
) -> None:
    from wbsrun.cli.options import resolve_options

    config = tmp_path / "config.yaml"
    config.write_text("run:\n  request-timeout: 30s\n  max-body: 1MiB\n", encoding="utf-8")
    options = resolve_options(config, flags, env)
    assert (options.request_timeout, options.max_body) == (timeout, max_body)
    assert resolve_options(None, {}, {}).request_timeout is None  # then 60 s (core/limits.py)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("request-timeout", "soon", "a duration above zero"),
        ("request-timeout", "0s", "a duration above zero"),
        ("max-body", "lots", "a number of bytes"),
        ("max-body", "0", "a number of bytes"),
    ],
)
def test_bad_request_limit_option_is_a_clear_error(key: str, value: str, expected: str) -> None:
    from wbsrun.cli.options import resolve_options
    from wbsrun.errors import ScenarioError

    with pytest.raises(ScenarioError) as info:
        resolve_options(None, {key: value}, {})
    text = info.value.format()
    assert f"'{value}'" in text
    assert f"--{key}" in text
    assert expected in text
