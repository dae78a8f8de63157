"""`--report` on `wbsrun run` and `wbsrun demo`, and `wbsrun report RESULT.json`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import wbsrun
from report_kit import DemoReport, demo_run, figures, figures_match
from wbsrun.target import TargetProcess

SCRIPT = """\
version: "1.0"
name: report-run
components:
  - {name: http, version: "1.0.0", kind: native, capabilities: [get]}
actions:
  fetch:
    component: http
    call: get
    with: {url: "URL/asset"}
    save-as: asset
workflows:
  main:
    type: graph
    nodes:
      - id: first
        type: action
        action: fetch
        controls:
          exec:
            transitions: [{edge: done, to: end, condition: "{{asset.status == 200}}"}]
      - {id: end, type: terminus, state: closing.success}
load:
  scenarios:
    - {name: only, workflow: main, user-count: 2, iterations: 5}
"""


def wbsrun_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_report_writes_the_page_of_a_saved_result(demo_report: DemoReport, tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(demo_report.result), encoding="utf-8")
    proc = wbsrun_cli("report", str(saved))
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "run.html").read_text(encoding="utf-8")  # default: RESULT's name, .html
    assert f"report in {tmp_path / 'run.html'}" in proc.stdout
    assert figures_match(demo_report.result, figures(page)) == []
    out = tmp_path / "elsewhere" / "page.html"
    assert wbsrun_cli("report", str(saved), "-o", str(out)).returncode == 0
    # The same page as `--report` wrote during the run.
    assert out.read_text(encoding="utf-8") == demo_report.report.read_text(encoding="utf-8")


def test_report_of_a_missing_file_exits_two_and_names_it(tmp_path: Path) -> None:
    proc = wbsrun_cli("report", str(tmp_path / "nope.json"))
    assert proc.returncode == 2
    assert f"error: {tmp_path / 'nope.json'}: no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_of_invalid_json_exits_two_with_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "requests": {"total": 3,}\n}\n', encoding="utf-8")
    proc = wbsrun_cli("report", str(bad))
    assert proc.returncode == 2
    assert f"error: {bad}:2:27: not valid JSON" in proc.stderr
    assert not (tmp_path / "bad.html").exists()


def test_report_that_cannot_be_written_exits_two_and_names_the_path(tmp_path: Path) -> None:
    saved = tmp_path / "r.json"
    saved.write_text('{"requests": {"total": 0}}', encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")  # a file where a directory would have to be
    proc = wbsrun_cli("report", str(saved), "-o", str(blocker / "page.html"))
    assert proc.returncode == 2
    assert f"error: {blocker / 'page.html'}: cannot write the report" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_of_json_that_is_no_result_exits_two(tmp_path: Path) -> None:
    other = tmp_path / "package.json"
    other.write_text('{"name": "x", "version": "1"}', encoding="utf-8")
    proc = wbsrun_cli("report", str(other))
    assert proc.returncode == 2
    assert "not a wbsrun run result" in proc.stderr
    assert "found keys ['name', 'version']" in proc.stderr


def test_run_writes_the_report_after_the_result(target: TargetProcess, tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT.replace("URL", target.url()), encoding="utf-8")
    out, page = tmp_path / "r.json", tmp_path / "out" / "r.html"
    log = tmp_path / "logs" / "run.log"  # a directory made when the log is opened
    proc = wbsrun_cli(
        "run", str(script), "--json", str(out), "--report", str(page), "--log", str(log)
    )
    assert proc.returncode == 0, proc.stderr
    assert log.is_file()
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["requests"]["total"] == target.stats()["received"] == 10
    shown = figures(page.read_text(encoding="utf-8"))
    assert ('["requests", "total"]', "10") in shown
    assert figures_match(result, shown) == []
    assert out.stat().st_mtime_ns <= page.stat().st_mtime_ns
    assert f"report {page}" in " ".join(proc.stdout.split())


def test_without_the_charting_library_report_fails_before_the_run(tmp_path: Path) -> None:
    """A package built without `make assets`: a clear error, and the demo never starts."""
    copy = tmp_path / "pkg"
    shutil.copytree(Path(wbsrun.__file__).parent, copy / "wbsrun")
    shutil.rmtree(copy / "wbsrun" / "telemetry" / "html" / "assets")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    proc = demo_run(tmp_path / "demo", "--report", str(tmp_path / "r.html"), env=env)
    assert proc.returncode == 1
    assert "the HTML report's charting library is missing" in proc.stderr
    assert "make assets" in proc.stderr
    assert "starting the embedded asset server" not in proc.stdout
    assert not (tmp_path / "demo").exists()
    saved = tmp_path / "r.json"
    saved.write_text('{"requests": {}}', encoding="utf-8")
    proc = wbsrun_cli("report", str(saved), env=env)
    assert proc.returncode == 1
    assert "make assets" in proc.stderr


def test_output_paths_that_cannot_be_written_are_refused_before_the_run(
    target: TargetProcess, tmp_path: Path
) -> None:
    """A result, report or log path that could not be written after the run: exit 2 before
    any request, every bad path named, no traceback."""
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT.replace("URL", target.url()), encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")  # a file where a directory would have to be
    proc = wbsrun_cli(
        "run",
        str(script),
        "--json",
        str(blocker / "r.json"),
        "--report",
        str(blocker / "r.html"),
        "--log",
        str(blocker / "run.log"),
    )
    assert proc.returncode == 2, proc.stderr
    assert f"--json {blocker / 'r.json'}: its directory cannot be made" in proc.stderr
    assert f"--report {blocker / 'r.html'}: its directory cannot be made" in proc.stderr
    assert f"--log {blocker / 'run.log'}: its directory cannot be made" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert target.stats()["received"] == 0
    demo = subprocess.run(
        [sys.executable, "-m", "wbsrun", "demo", "--workdir", str(blocker / "w"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert demo.returncode == 2, demo.stderr
    assert f"--workdir {blocker / 'w' / 'result.json'}" in demo.stderr
    assert "starting the embedded asset server" not in demo.stdout
