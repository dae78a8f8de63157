"""`wbsrun run` / `validate` with captures and checks: a `checks.rate` threshold that fails
exits 99 against the embedded target, and every mistake in `capture:` / `checks:` is reported
in one pass with file:line:col, the value and what was expected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from wbsrun.target import TargetProcess

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
{extra}
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
      iterations: 3
{thresholds}"""


def _bundle(tmp_path: Path, url: str, extra: str, thresholds: str = "") -> Path:
    text = SCENARIO.format(url=url, extra=extra, thresholds=thresholds)
    (tmp_path / "script.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def _wbsrun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


CHECKS = """\
    checks:
      - status: 200
      - name: created
        status: 201
"""


def test_a_failing_checks_rate_threshold_exits_99_and_the_passing_one_holds(
    target: TargetProcess, tmp_path: Path
) -> None:
    rules = "thresholds:\n  - checks.rate > 0.99\n  - checks.status.rate == 1\n"
    bundle = _bundle(tmp_path, target.url(), CHECKS, rules)
    out = tmp_path / "r.json"
    proc = _wbsrun("run", str(bundle), "--json", str(out), "--quiet")
    assert proc.returncode == 99, proc.stderr
    assert "threshold failed: checks.rate > 0.99 (observed 0.5)" in proc.stderr
    result = json.loads(out.read_text())
    jsonschema.validate(result, json.loads(SCHEMA.read_text()))
    assert [(t["rule"], t["ok"], t["observed"]) for t in result["thresholds"]] == [
        ("checks.rate > 0.99", False, 0.5),
        ("checks.status.rate == 1", True, 1.0),
    ]
    assert result["checks"] == {
        "created": {"passes": 0, "fails": 6, "rate": 0.0},
        "status": {"passes": 6, "fails": 0, "rate": 1.0},
    }
    assert result["tasks"]["succeeded"] == 6  # checks fail no pass without on-fail: error


BAD = """\
    capture:
      - name: a
        json: "token"
      - name: b
        regex: "(a+)+$"
      - name: c
        regex: ".*x.*y"
      - name: d
        header: X
        cookie: y
      - name: a
        cookie: sid
    checks:
      - status: 700
      - json: {path: "$.x", equals: 1, matches: "x"}
      - body-contains: ok
        status: 200
      - json: {path: "$..x", matches: "(?P<q>a)(?P=q)"}
  other:
    component: http
    call: get
    with: {url: "http://127.0.0.1:9/"}
    checks:
      - latency-below: fast
"""


def test_every_mistake_in_captures_and_checks_is_reported_at_its_place_in_one_pass(
    tmp_path: Path,
) -> None:
    bundle = _bundle(tmp_path, "http://127.0.0.1:9", BAD, "thresholds: ['checks.nope.rate > 1']")
    proc = _wbsrun("validate", str(bundle))
    assert proc.returncode == 2
    lines = (bundle / "script.yaml").read_text().splitlines()
    script = bundle / "script.yaml"

    def at(text: str, nth: int = 0) -> int:
        return [i for i, line in enumerate(lines) if text in line][nth] + 1

    err = proc.stderr
    expected = [
        (at('json: "token"'), "bad-json-path"),
        (at('regex: "(a+)+$"'), "unsafe-regex"),
        (at('regex: ".*x.*y"'), "unsafe-regex"),
        (at("- name: d"), "bad-capture"),
        (at("- name: a", 1), "duplicate-capture"),
        (at("status: 700"), "bad-check"),
        (at('equals: 1, matches: "x"'), "bad-check"),
        (at("body-contains: ok"), "bad-check"),
        (at("latency-below: fast"), "bad-duration"),
        (at("$..x"), "bad-json-path"),
        (at("$..x"), "unsafe-regex"),
        (at("checks.nope.rate"), "unknown-check"),
    ]
    for line, code in expected:
        assert any(f"{script}:{line}:" in x and f"[{code}]" in x for x in err.splitlines()), (
            line,
            code,
            err,
        )
    assert "'(a+)+$': a quantifier applied to a group that holds a quantifier" in err
    assert "2 unbounded quantifiers" in err
    assert "exactly one of json, regex, header, cookie" in err
    assert err.count("error [") == len(expected), err


def test_a_broken_action_still_lends_its_capture_names_to_later_templates(
    tmp_path: Path,
) -> None:
    extra = """\
    timeout: soon
    save-as: r
    capture:
      - {name: tok, json: "$.t"}
  me:
    component: http
    call: get
    with: {url: "http://127.0.0.1:9/me", headers: {Authorization: "Bearer {{tok}}"}}
"""
    text = _bundle(tmp_path, "http://127.0.0.1:9", extra) / "script.yaml"
    body = text.read_text().replace(
        "            transitions:\n              - edge: done\n                to: end",
        "            transitions:\n              - edge: next\n                to: second",
    )
    body = body.replace(
        "      - id: end\n",
        "      - id: second\n        type: action\n        action: me\n        controls:\n"
        "          exec:\n            transitions:\n              - edge: done\n"
        "                to: end\n                condition: always\n      - id: end\n",
    )
    text.write_text(body)
    proc = _wbsrun("validate", str(tmp_path))
    assert proc.returncode == 2
    assert "[bad-duration]" in proc.stderr
    assert "undefined variable" not in proc.stderr, proc.stderr
    assert "1 error(s)" in proc.stderr, proc.stderr
