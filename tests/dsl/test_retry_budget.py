"""Warnings at load time about settings that could never take effect."""

from __future__ import annotations

from pathlib import Path

import pytest

from wbsrun.dsl.loader import load_plan
from wbsrun.errors import Diagnostic, ScenarioError
from wbsrun.protocols.registry import provides

DATA = Path(__file__).parent / "data"
MINIMAL = (DATA / "minimal.yaml").read_text(encoding="utf-8")
RETRY = "            timeout: 1s\n            on-error:\n              - goto: monitoring.retry\n"


def _bundle(tmp_path: Path, text: str) -> Path:
    (tmp_path / "items.csv").write_text("ip,port\n127.0.0.1,8080\n", encoding="utf-8")
    (tmp_path / "script.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def _edit(*edits: tuple[str, str]) -> str:
    text = MINIMAL
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def _warnings(tmp_path: Path, text: str, code: str) -> list[Diagnostic]:
    plan = load_plan(_bundle(tmp_path, text), provides())
    return [w for w in plan.warnings if w.code == code]


# -- monitoring.retry without a budget -------------------------------------------------------------


def test_retry_with_no_budget_is_warned_at_the_goto(tmp_path: Path) -> None:
    found = _warnings(tmp_path, _edit(("            timeout: 1s\n", RETRY)), "retry-never-fires")
    assert [(w.line, w.column, w.path) for w in found] == [
        (40, 23, "workflows.main.nodes[0].controls.exec.on-error[0].goto")
    ]
    assert found[0].value == "0"
    assert "scenario 's' starts with execution.retry_budget 0 (the default)" in found[0].message
    assert "retry_budget" in str(found[0].hint)


@pytest.mark.parametrize(
    "budget",
    [
        (
            "        inherit: [pool]\n",
            "        inherit: [pool]\n        context: {retry_budget: 2}\n",
        ),
        (
            "workflows:\n",
            "workbook:\n  sections:\n    execution:\n      defaults:\n"
            "        retry_budget: 1\nworkflows:\n",
        ),
        (
            "        - goto: error_out\n",
            "        - update-workbook: {execution.retry_budget: 1}\n        - goto: error_out\n",
        ),
    ],
    ids=["user-context", "workbook-default", "update-workbook"],
)
def test_retry_with_a_budget_is_not_warned(tmp_path: Path, budget: tuple[str, str]) -> None:
    text = _edit(("            timeout: 1s\n", RETRY), budget)
    assert _warnings(tmp_path, text, "retry-never-fires") == []


ORPHAN = """\
      - id: orphan
        type: action
        action: fetch
        controls:
          exec:
            on-error:
              - goto: monitoring.retry
            transitions:
              - {to: done, condition: always}
load:
"""


def test_retry_on_an_unreachable_node_is_not_a_second_finding(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_plan(_bundle(tmp_path, _edit(("load:\n", ORPHAN))), provides())
    assert [(d.code, d.line) for d in info.value.diagnostics] == [("unreachable-node", 46)]
