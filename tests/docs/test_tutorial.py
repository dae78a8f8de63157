"""docs/tutorial.md, run as written: its files are written, its `wbsrun` commands run in order
with the real CLI (the target too, as `wbsrun target`, in the background as the reader's second
terminal), each command's exit code and output excerpts checked. A tutorial that drifts from the
product fails here.

The one substitution: the tutorial's port 8080 may be taken on the test machine, so the first
`wbsrun target --port 8080` runs with `--port 0` and the port it announces replaces 8080 in
every later command and in the `http://127.0.0.1:8080` of every file and excerpt."""

from __future__ import annotations

import json
import re
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from doc_kit import DOCS, Block, Command, blocks, commands, missing_lines, wbsrun
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides

TUTORIAL = DOCS / "tutorial.md"
DOC_PORT = "8080"
_SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+) ")


class Target:
    """`wbsrun target …` in a child process: what the reader's second terminal runs."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wbsrun", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.first_line = self._first_line(15.0)
        found = _SERVING.search(self.first_line)
        assert found, f"wbsrun target printed {self.first_line!r}"
        self.port = found.group(1)

    def _first_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.stop()
                pytest.fail(f"wbsrun target said nothing within {timeout} s")
        return self.proc.stdout.readline()

    def stop(self) -> str:
        """Ctrl-C, as the tutorial says; the rest of what it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rest, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate()
        return rest


def _local(text: str, port: str) -> str:
    return text.replace(f"127.0.0.1:{DOC_PORT}", f"127.0.0.1:{port}")


def _target_argv(command: Command, port: str | None) -> list[str]:
    argv = list(command.argv)
    at = argv.index("--port") + 1
    assert argv[at] == DOC_PORT, f"line {command.line}: the tutorial's target is on {DOC_PORT}"
    argv[at] = port or "0"
    return argv


def run_tutorial(workdir: Path) -> list[tuple[Command, str]]:
    """Walk the page; every command with its output (checked as it goes)."""
    page = blocks(TUTORIAL)
    target: Target | None = None
    port: str | None = None
    ran: list[tuple[Command, str]] = []
    last_output = ""
    try:
        for block in page:
            if block.kind == "file":
                path = workdir / block.name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(_local(block.text, port or DOC_PORT), encoding="utf-8")
            elif block.kind == "output":
                missing = missing_lines(_local(block.text, port or DOC_PORT), last_output)
                where = f"tutorial.md:{block.line}"
                assert not missing, f"{where}: not in the output: {missing}\n---\n{last_output}"
            elif block.kind == "sh":
                last_output = ""  # an excerpt after a block: the output of all its commands
                for command in commands(block):
                    if command.argv[:1] == ["target"]:
                        if target is not None:
                            assert target.stop().endswith("wbsrun target: stopped\n")
                        target = Target(_target_argv(command, port))
                        port = port or target.port
                        last_output += target.first_line
                        continue
                    argv = [_local(arg, port or DOC_PORT) for arg in command.argv]
                    proc = wbsrun(argv, workdir)
                    output = proc.stdout + proc.stderr
                    where = f"tutorial.md:{command.line}: wbsrun {' '.join(argv)}"
                    assert proc.returncode == command.exit_code, f"{where}\n{output}"
                    last_output += output
                    ran.append((command, output))
    finally:
        if target is not None:
            target.stop()
    return ran


def test_the_tutorial_runs_as_written_and_its_claims_hold(tmp_path: Path) -> None:
    # tmp_path is the new empty directory the page starts in.
    workdir = tmp_path
    ran = run_tutorial(workdir)
    # The flow the page promises: scaffold, validate, runs that pass, one that fails its gate.
    said = [(c.argv[0], c.exit_code) for c, _ in ran]
    assert ("init", 0) in said
    assert ("validate", 0) in said
    assert said.count(("run", 0)) >= 3
    assert ("run", 99) in said
    assert said.index(("run", 99)) < len(said) - 1  # and the run after it passes again
    slow = ran[said.index(("run", 99))][1]
    observed = re.search(r"✗ http\.latency_ms\.p95 < 200ms  observed ([0-9.]+)", slow)
    assert observed, slow
    assert float(observed.group(1)) >= 250  # "a little over 250 ms": the target's latency
    result = json.loads((workdir / "result.json").read_text(encoding="utf-8"))
    assert result["requests"]["total"] == 120 == result["requests"]["ok"]
    assert result["requests"]["status_codes"] == {"200": 80, "201": 20, "204": 20}
    assert result["tasks"]["succeeded"] == 20
    assert {name: c["rate"] for name, c in result["checks"].items()} == dict.fromkeys(
        ("deleted", "one-item", "price-is-10", "price-is-12", "status"), 1.0
    )
    assert [t["ok"] for t in result["thresholds"]] == [True, True, True]
    report = (workdir / "report.html").read_text(encoding="utf-8")
    assert report.startswith("<!DOCTYPE html>")
    for section in ("thresholds", "charts", "actions", "scenarios", "errors", "progress"):
        assert f'<section id="{section}">' in report  # what step 7 says the report shows


def test_every_scenario_step_of_the_tutorial_loads_without_a_warning(tmp_path: Path) -> None:
    page = blocks(TUTORIAL)
    for block in page:
        if block.kind != "file":
            continue
        path = tmp_path / block.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text, encoding="utf-8")
        if block.name.endswith(".yaml"):
            plan = load_plan(path.parent, provides())  # a ScenarioError names any mistake
            assert not plan.warnings, (block.line, [w.format() for w in plan.warnings])


def test_every_tutorial_file_is_written_before_it_is_needed_and_none_is_left_out() -> None:
    page = blocks(TUTORIAL)
    files = [b for b in page if b.kind == "file"]
    assert [b.name for b in files] == [
        "shop/script.yaml",
        "shop/data/users.csv",
        "shop/script.yaml",
        "shop/script.yaml",
    ]
    # Each scenario step is a complete file: it keeps the editor's schema line.
    scripts: list[Block] = [b for b in files if b.name.endswith(".yaml")]
    assert all(b.text.startswith("# yaml-language-server: $schema=") for b in scripts)
    # Every yaml block on the page is a marked file (nothing the reader types goes untested).
    assert all(b.kind == "file" for b in page if b.lang == "yaml")
