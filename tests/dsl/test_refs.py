"""Reference, unit and path checks: every name resolves, every file stays inside the bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.dsl.refs import BUILTIN_PROVIDES, check_references
from wbsrun.dsl.schema_check import validate_schema
from wbsrun.dsl.source import load_source, parse_source
from wbsrun.errors import Diagnostic

DATA = Path(__file__).parent / "data"
MINIMAL = (DATA / "minimal.yaml").read_text(encoding="utf-8")


def _bundle(tmp_path: Path, text: str) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "items.csv").write_text("ip,port\n127.0.0.1,8080\n", encoding="utf-8")
    (bundle / "script.yaml").write_text(text, encoding="utf-8")
    return bundle


def _diagnose(bundle: Path, script: str = "script.yaml") -> list[Diagnostic]:
    doc = load_source(bundle / script, display_name=script)
    schema_errors = validate_schema(doc)
    assert schema_errors == [], [d.format() for d in schema_errors]
    return check_references(doc, bundle, BUILTIN_PROVIDES)


def _check(tmp_path: Path, *edits: tuple[str, str]) -> list[Diagnostic]:
    text = MINIMAL
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return _diagnose(_bundle(tmp_path, text))


def _only(tmp_path: Path, *edits: tuple[str, str]) -> Diagnostic:
    found = _check(tmp_path, *edits)
    assert len(found) == 1, [d.format() for d in found]
    return found[0]


def _where(diag: Diagnostic) -> tuple[str, int, int, str]:
    return diag.code, diag.line, diag.column, diag.path


def test_reference_bundle_has_no_errors_and_only_the_expected_warnings(tmp_path: Path) -> None:
    bundle = tmp_path / "reference"
    shutil.copytree(DATA / "reference", bundle)
    found = _diagnose(bundle, "http_scenario.yaml")
    assert [(d.severity, d.code, d.line, d.column) for d in found] == [
        ("warning", "capability-not-declared", 72, 17),
        ("warning", "description-not-text", 165, 24),
        ("warning", "description-not-text", 230, 24),
        ("warning", "description-not-text", 232, 24),
        ("warning", "capability-not-declared", 348, 11),
        ("warning", "capability-not-declared", 547, 17),
    ]
    assert found[0].message == "call 'health' of component 'http' is not listed in its capabilities"
    assert found[4].message == (
        "call 'warn' of component 'logger' is not listed in its capabilities (used 3 times)"
    )
    assert found[1].value == "[{action,result,duration,owner}]"
    assert found[1].message == "description of 'action_log' reads as a YAML list; kept as written"


def test_minimal_bundle_is_clean(tmp_path: Path) -> None:
    assert _check(tmp_path) == []


def test_unknown_transition_target_suggests_a_node(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("to: done", "to: dnoe"))
    assert _where(diag) == (
        "unknown-target",
        41,
        21,
        "workflows.main.nodes[0].controls.exec.transitions[0].to",
    )
    assert diag.message == (
        "transition target 'dnoe' is not a node of this workflow, a monitoring exit, "
        "monitoring.retry or closing.rollback"
    )
    assert diag.hint == "did you mean 'done'?"


@pytest.mark.parametrize("target", ["done", "error_out", "monitoring.retry", "closing.rollback"])
def test_goto_may_name_a_node_an_exit_or_a_built_in_target(tmp_path: Path, target: str) -> None:
    assert _check(tmp_path, ("- goto: error_out", f"- goto: {target}")) == []


def test_unknown_goto_target_is_reported(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("- goto: error_out", "- goto: eror_out"))
    assert _where(diag) == ("unknown-target", 31, 17, "workflows.main.controls.on-error[0].goto")
    assert diag.message.startswith("goto target 'eror_out' is not a node")
    assert diag.hint == "did you mean 'error_out'?"


def test_unknown_action_in_a_node_suggests_the_declared_one(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("action: fetch", "action: fecth"))
    assert _where(diag) == ("unknown-action", 35, 17, "workflows.main.nodes[0].action")
    assert diag.message == "action 'fecth' is not declared under actions"
    assert diag.hint == "did you mean 'fetch'?"


def test_unknown_call_is_an_error_listing_the_provided_calls(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("call: get", "call: gett"))
    assert _where(diag) == ("unknown-call", 19, 11, "actions.fetch.call")
    assert diag.message == "component 'http' has no call 'gett'"
    assert diag.expected == "delete, get, head, health, patch, post, put"
    assert diag.hint == "did you mean 'get'?"


def test_provided_call_missing_from_capabilities_is_only_a_warning(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("call: get", "call: post"))
    assert (diag.severity, *_where(diag)) == (
        "warning",
        "capability-not-declared",
        19,
        11,
        "actions.fetch.call",
    )
    assert diag.hint == "add 'post' to the capabilities of component 'http'"


def test_action_component_must_be_built_in_or_declared(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("    component: http\n", "    component: htp\n"))
    assert _where(diag) == ("unknown-component", 18, 16, "actions.fetch.component")
    assert diag.message == (
        "component 'htp' is neither built in (http, logger, resource-manager) "
        "nor declared under components"
    )
    assert diag.hint == "did you mean 'http'?"


def test_component_without_an_implementation_is_unknown(tmp_path: Path) -> None:
    # The monitoring exit's `logger.warn` stays valid: logger is built in, declared or not.
    found = _check(tmp_path, ("  - name: logger\n", "  - name: loger\n"))
    assert [_where(d) for d in found] == [("unknown-component", 8, 11, "components[1].name")]
    assert found[0].message == (
        "component 'loger' has no registered implementation (known: http, logger, resource-manager)"
    )
    assert found[0].hint == "did you mean 'logger'?"


@pytest.mark.parametrize(
    "action", ["log.warn", "logger.info", "fetch", "progress.rollback", "resource.release"]
)
def test_handler_actions_accept_names_component_calls_and_built_ins(
    tmp_path: Path, action: str
) -> None:
    assert _check(tmp_path, ("- action: logger.warn", f"- action: {action}")) == []


def test_unknown_handler_action_suggests_a_close_name(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("- action: logger.warn", "- action: loger.warn"))
    assert _where(diag) == ("unknown-action", 60, 17, "monitoring.error_out.actions[0].action")
    assert diag.hint == "did you mean 'logger.warn'?"


def test_milestone_edge_must_be_a_transition_of_its_node(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("node: first, edge: ok", "node: first, edge: okay"))
    assert _where(diag) == ("unknown-edge", 56, 44, "load.scenarios[0].milestones[0].edge")
    assert diag.message == "edge 'okay' is not a transition of node 'first'"
    assert diag.expected == "ok"


def test_milestone_node_must_exist_in_the_scenario_workflow(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("node: first, edge: ok", "node: frist, edge: ok"))
    assert _where(diag) == ("unknown-node", 56, 31, "load.scenarios[0].milestones[0].node")
    assert diag.message == "node of workflow 'main' 'frist' is not defined"
    assert diag.hint == "did you mean 'first'?"


def test_scenario_names_must_resolve(tmp_path: Path) -> None:
    found = _check(
        tmp_path,
        ("workflow: main", "workflow: mian"),
        ("inherit: [pool]", "inherit: [pol]"),
        ("exits: {error: error_out}", "exits: {error: err_out}"),
        ("      user-count: 2\n", "      user-count: 2\n      profile: ramp\n"),
    )
    assert [(d.code, d.line, d.column, d.message) for d in found] == [
        ("unknown-workflow", 49, 17, "workflow 'mian' is not defined"),
        ("unknown-profile", 51, 16, "profile 'ramp' is not defined"),
        ("unknown-resource", 54, 19, "resource 'pol' is not defined"),
        ("unknown-exit", 55, 22, "monitoring exit 'err_out' is not defined"),
    ]


def test_duplicate_node_ids_are_reported_at_the_second(tmp_path: Path) -> None:
    found = _check(tmp_path, ("      - id: done\n", "      - id: first\n"))
    assert [_where(d) for d in found] == [
        ("unknown-target", 41, 21, "workflows.main.nodes[0].controls.exec.transitions[0].to"),
        ("duplicate-node", 43, 13, "workflows.main.nodes[1].id"),
    ]
    assert found[1].message == "node id 'first' is used twice in this workflow (first at line 33)"


def test_terminus_state_must_be_a_closing_state(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("state: closing.success", "state: closing.sucess"))
    assert _where(diag) == ("bad-state", 45, 16, "workflows.main.nodes[1].state")
    assert diag.hint == "did you mean 'closing.success'?"


def test_error_classification_catalogue_must_be_progress_errors(tmp_path: Path) -> None:
    diag = _only(
        tmp_path,
        ("    actions:\n", "    classification: {catalog: errors}\n    actions:\n"),
    )
    assert _where(diag) == (
        "unknown-catalog",
        59,
        31,
        "monitoring.error_out.classification.catalog",
    )


def test_zero_rate_passes_the_schema_but_not_the_reference_check(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("spawn-rate: 1/s", "spawn-rate: 0/s"))
    assert _where(diag) == ("bad-rate", 51, 19, "load.scenarios[0].spawn-rate")
    assert diag.message == "invalid rate '0/s': must be greater than zero"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("../x.csv", "path '../x.csv' leaves the bundle directory through '..'"),
        ("/etc/passwd", "absolute path '/etc/passwd' is not allowed"),
    ],
)
def test_manifest_paths_outside_the_bundle_are_errors(
    tmp_path: Path, manifest: str, message: str
) -> None:
    diag = _only(tmp_path, ("manifest: items.csv", f"manifest: {manifest}"))
    assert _where(diag) == ("path-outside-bundle", 14, 17, "resources.pool.config.manifest")
    assert message in diag.message
    assert diag.value == manifest


def test_manifest_reached_through_a_symlink_out_of_the_bundle_is_an_error(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "items.csv").write_text("ip,port\n", encoding="utf-8")
    bundle = _bundle(tmp_path, MINIMAL.replace("manifest: items.csv", "manifest: link/items.csv"))
    (bundle / "link").symlink_to(outside, target_is_directory=True)
    (diag,) = _diagnose(bundle)
    assert _where(diag) == ("path-outside-bundle", 14, 17, "resources.pool.config.manifest")
    assert "resolves outside the bundle directory (through a symbolic link)" in diag.message


def test_missing_manifest_file_is_an_error(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("manifest: items.csv", "manifest: missing.csv"))
    assert _where(diag) == ("file-not-found", 14, 17, "resources.pool.config.manifest")
    assert diag.message.startswith("file 'missing.csv' not found in the bundle directory")


def test_persist_filename_static_parts_must_stay_inside(tmp_path: Path) -> None:
    diag = _only(
        tmp_path, ('filename: "{{workbook.user_id}}.json"', 'filename: "../../{{x}}.json"')
    )
    assert _where(diag) == (
        "path-outside-bundle",
        24,
        37,
        "actions.fetch.save-as.persist.filename",
    )
    assert diag.message == "path '../../{{x}}.json' leaves the bundle directory through '..'"


def test_persist_dir_must_not_be_absolute(tmp_path: Path) -> None:
    diag = _only(tmp_path, ("persist: {dir: out,", "persist: {dir: /tmp/out,"))
    assert _where(diag) == ("path-outside-bundle", 24, 22, "actions.fetch.save-as.persist.dir")


def test_unknown_expose_target_is_a_warning(tmp_path: Path) -> None:
    extra = "workbook:\n  expose:\n    state: timeline.phase\n    oops: execution.nothing\n"
    diag = _only(tmp_path, ("actions:\n", extra + "actions:\n"))
    assert (diag.severity, *_where(diag)) == (
        "warning",
        "unknown-workbook-path",
        19,
        11,
        "workbook.expose.oops",
    )


def test_linear_workflow_steps_must_name_declared_actions(tmp_path: Path) -> None:
    linear = "  lin:\n    steps:\n      - ref: fetch\n      - ref: fetsh\n"
    diag = _only(tmp_path, ("workflows:\n", "workflows:\n" + linear))
    assert _where(diag) == ("unknown-action", 29, 14, "workflows.lin.steps[1].ref")


def test_all_problems_are_reported_in_one_pass(tmp_path: Path) -> None:
    found = _check(
        tmp_path,
        ("call: get", "call: gett"),
        ("action: fetch", "action: fecth"),
        ("to: done", "to: dnoe"),
        ("manifest: items.csv", "manifest: ../items.csv"),
        ("spawn-rate: 1/s", "spawn-rate: 0/s"),
    )
    assert [(d.code, d.line) for d in found] == [
        ("path-outside-bundle", 14),
        ("unknown-call", 19),
        ("unknown-action", 35),
        ("unknown-target", 41),
        ("bad-rate", 51),
    ]


_KEYS = [
    "components",
    "name",
    "capabilities",
    "actions",
    "component",
    "call",
    "workflows",
    "nodes",
    "id",
    "type",
    "action",
    "controls",
    "exec",
    "flow",
    "transitions",
    "to",
    "edge",
    "branches",
    "join",
    "state",
    "steps",
    "ref",
    "load",
    "scenarios",
    "workflow",
    "milestones",
    "node",
    "user",
    "inherit",
    "exits",
    "monitoring",
    "classification",
    "catalog",
    "resources",
    "config",
    "manifest",
    "file",
    "save-as",
    "persist",
    "dir",
    "filename",
    "timeout",
    "rate-limit",
    "on-error",
    "goto",
    "workbook",
    "sections",
    "expose",
    "fields",
    "description",
    "defaults",
    "health-check",
    "probe",
    "provider",
    "calls",
    "spawn-rate",
    "progress-aggregation",
    "sources",
]
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["x", "../y", "1s", "a.b"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner),
    max_leaves=25,
)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=8))
def test_malformed_documents_never_raise_from_the_checks(data: dict[str, object]) -> None:
    doc = parse_source(json.dumps(data), "fuzz.yaml")
    for diag in [*validate_schema(doc), *check_references(doc, Path("."), BUILTIN_PROVIDES)]:
        assert diag.code
        assert diag.line >= 1
