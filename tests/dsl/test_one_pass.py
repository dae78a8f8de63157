"""One validation reports every mistake: each stage runs on the elements the earlier ones
passed, so a bundle with six mistakes of different kinds needs one `wbsrun validate`, and a
broken element is reported once, where it is, with no consequences elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wbsrun.dsl.bundle import locate_bundle
from wbsrun.dsl.loader import check_all, load_plan
from wbsrun.dsl.source import PathKey, SourceDoc, load_source
from wbsrun.errors import ScenarioError
from wbsrun.protocols.registry import provides

DATA = Path(__file__).parent / "data"
SIX = DATA / "six_mistakes"
REFERENCE = DATA / "reference"
NODES = ("workflows", "http_tri_phase", "nodes")


def _marked_lines(script: Path) -> list[int]:
    """The lines carrying a `# mistake:` comment."""
    lines = script.read_text(encoding="utf-8").splitlines()
    return [n for n, line in enumerate(lines, 1) if "# mistake:" in line]


def test_six_independent_mistakes_are_all_reported_in_one_pass_each_once() -> None:
    with pytest.raises(ScenarioError) as info:
        load_plan(SIX, provides())
    errors = [d for d in info.value.diagnostics if d.severity == "error"]
    found = sorted((d.line, d.code) for d in errors)
    assert found == [
        (24, "unknown-key"),
        (30, "undefined-variable"),  # pgae; not also 'page' read by the unreachable node
        (35, "bad-duration"),
        (48, "wrong-type"),
        (62, "unknown-action"),
        (67, "unreachable-node"),
    ], [d.format() for d in errors]
    assert _marked_lines(SIX / "script.yaml") == [line for line, _ in found]
    assert all(d.file.endswith("script.yaml") and d.column > 0 for d in errors)
    assert [d.value for d in errors if d.code == "undefined-variable"] == ["pgae.body"]


def test_validate_reports_the_six_mistakes_in_one_cli_run() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", "validate", str(SIX)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.rstrip().endswith("6 error(s); the scenario was not run")
    for line in _marked_lines(SIX / "script.yaml"):
        assert proc.stderr.count(f"script.yaml:{line}:") == 1, line


def test_the_reference_still_validates_without_errors() -> None:
    plan = load_plan(REFERENCE, provides())
    assert plan.name == "http_tri_phase_demo"
    assert {w.code for w in plan.warnings} == {"capability-not-declared", "description-not-text"}


# -- one broken element, one finding ---------------------------------------------------------------


def _replaced(data: Any, path: PathKey, value: Any) -> Any:
    """A copy of ``data`` with the value at ``path`` replaced (deleted for `DELETE`)."""
    head, rest = path[0], path[1:]
    out: Any = dict(data) if isinstance(data, dict) else list(data)
    if rest:
        out[head] = _replaced(data[head], rest, value)
    elif value == "DELETE":
        del out[head]
    else:
        out[head] = value
    return out


def _broken(doc: SourceDoc, path: PathKey, value: Any) -> SourceDoc:
    data = _replaced(doc.data, path, value)
    return SourceDoc(doc.file, data, doc.positions, doc.key_positions, doc.raw_text)


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ((*NODES, 0, "id"), "DELETE", "missing-key"),  # the producer of 'asset'
        ((*NODES, 1), 5, "wrong-type"),
        ((*NODES, 1, "controls", "exec", "timeout"), [1], "wrong-type"),
        ((*NODES, 0, "controls", "exec", "transitions", 0, "to"), "post_psh", "unknown-target"),
        (("actions", "probe-get"), [1], "wrong-type"),  # saves 'asset', read downstream
        (("actions", "probe-get", "save-as", "var"), 5, "wrong-type"),
        (("actions",), [], "wrong-type"),
        (("workflows",), [], "wrong-type"),
        (("workflows", "http_tri_phase", "controls"), 5, "wrong-type"),
        (("load", "scenarios", 0), 5, "wrong-type"),  # the only one inheriting the pool
        (("load", "scenarios", 0, "user-count"), "many", "wrong-type"),
        (("resources", "ip-port-pool", "type"), "pool", "bad-value"),
        (("workbook", "sections", "execution"), 5, "wrong-type"),
        (("workbook",), 5, "wrong-type"),
        (("monitoring",), 5, "wrong-type"),
        (("monitoring", "error_out", "actions", 0, "when"), "sometimes", "bad-value"),
        (("components", 0), 5, "wrong-type"),
        (("components",), 5, "wrong-type"),
    ],
)
def test_a_broken_element_of_the_reference_is_one_finding(
    path: PathKey, value: Any, code: str
) -> None:
    bundle = locate_bundle(REFERENCE)
    doc = load_source(bundle.script)
    found = check_all(_broken(doc, path, value), bundle, provides())
    errors = [(d.code, d.line) for d in found if d.severity == "error"]
    assert errors == [(code, doc.where(path).line)], [d.format() for d in found]


MUTANTS = ([1], {"x": 1}, "text", None, "{{ nope }}", "DELETE")


def test_no_broken_value_crashes_the_later_stages(tmp_path: Path) -> None:
    # check_all has no guard: any exception from a later stage fails this test.
    (tmp_path / "items.csv").write_text("ip,port\n127.0.0.1,8080\n", encoding="utf-8")
    (tmp_path / "script.yaml").write_bytes((DATA / "minimal.yaml").read_bytes())
    for root in (tmp_path, REFERENCE):
        bundle = locate_bundle(root)
        doc = load_source(bundle.script)
        paths = sorted(doc.positions, key=str)
        if root == REFERENCE:  # every element and field of the reference, one mutant each
            cases = [(p, MUTANTS[i % len(MUTANTS)]) for i, p in enumerate(paths) if 0 < len(p) <= 4]
        else:  # every value of the minimal scenario, every mutant
            cases = [(p, m) for p in paths if p for m in MUTANTS]
        for path, value in cases:
            for d in check_all(_broken(doc, path, value), bundle, provides()):
                assert d.line > 0, (path, value, d.format())
