"""Less ceremony: built-in components need no declaration, a graph node with `action:` needs
no `type: action`, and a linear `steps:` workflow is the short form: a Locust-sized bundle
validates without warnings and runs against the embedded target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from scenario_kit import routes, run
from wbsrun.dsl._stubs import node_type
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.refs import BUILTIN_PROVIDES
from wbsrun.errors import ScenarioError
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetProcess

# The whole bundle: one scenario, a linear workflow with one GET, no components section.
MINIMAL = """\
name: quickstart
actions:
  home:
    component: http
    call: get
    with: {url: "http://HOST:PORT/asset"}
workflows:
  browse:
    steps:
      - ref: home
load:
  scenarios:
    - name: visitors
      workflow: browse
      user-count: 3
      iterations: 2
"""


def _minimal(target: TargetProcess) -> dict[str, Any]:
    text = MINIMAL.replace("HOST", target.hosts[0]).replace("PORT", str(target.port))
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return bundle


def test_a_minimal_bundle_without_components_validates_cleanly_and_runs(
    tmp_path: Path, target: TargetProcess
) -> None:
    assert len(MINIMAL.splitlines()) <= 16
    doc = _minimal(target)
    plan = load_plan(_write(tmp_path, doc), provides())
    assert plan.warnings == ()
    assert dict(plan.components) == {}  # nothing declared: the built-in, as it is

    ran = run(tmp_path, doc, [])

    tasks = ran.result["tasks"]
    assert (tasks["started"], tasks["succeeded"]) == (6, 6)
    assert ran.result["scenarios"]["visitors"]["requests"]["ok"] == 6
    assert routes(target)["GET /asset"] == 6


def test_a_graph_of_action_nodes_without_a_type_runs(tmp_path: Path, target: TargetProcess) -> None:
    doc = _minimal(target)
    doc["actions"]["note"] = {"component": "logger", "call": "info", "with": {"message": "hi"}}
    doc["workflows"]["browse"] = {
        "nodes": [
            {"id": "get", "action": "home", "controls": {"exec": {"transitions": [{"to": "log"}]}}},
            {"id": "log", "action": "note", "controls": {"exec": {"transitions": [{"to": "end"}]}}},
            {"id": "end", "type": "terminus", "state": "closing.success"},
        ]
    }
    plan = load_plan(_write(tmp_path, doc), provides())
    nodes = plan.workflows["browse"].nodes
    assert [(n.id, n.type) for n in nodes.values()] == [
        ("get", "action"),
        ("log", "action"),
        ("end", "terminus"),
    ]
    assert plan.warnings == ()

    ran = run(tmp_path, doc, [])

    assert ran.result["tasks"]["succeeded"] == 6
    assert routes(target)["GET /asset"] == 6
    assert ran.result["logs"]["info"] == 6


def test_undeclared_built_ins_used_in_handlers_draw_no_capability_warning(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = _minimal(target)
    doc["workflows"]["browse"]["on-error"] = [
        {"action": "logger.warn", "with": {"message": "failed"}},
        {"action": "log.error", "with": {"message": "failed"}},
    ]
    plan = load_plan(_write(tmp_path, doc), provides())
    assert [w.code for w in plan.warnings] == []


def test_a_declared_built_in_still_pins_its_capabilities(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = _minimal(target)
    doc["components"] = [{"name": "http", "version": "2.1.0", "capabilities": ["post"]}]
    plan = load_plan(_write(tmp_path, doc), provides())
    assert plan.components["http"].version == "2.1.0"
    assert [(w.code, w.path) for w in plan.warnings] == [
        ("capability-not-declared", "actions.home.call")
    ]


def test_an_undeclared_component_that_is_not_built_in_is_still_refused(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = _minimal(target)
    doc["actions"]["home"]["component"] = "grpc"
    with pytest.raises(ScenarioError) as caught:
        load_plan(_write(tmp_path, doc), provides())
    (found,) = caught.value.diagnostics
    assert (found.code, found.path, found.value) == (
        "unknown-component",
        "actions.home.component",
        "grpc",
    )


def test_a_node_with_neither_type_nor_action_is_refused_with_a_hint(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = _minimal(target)
    doc["workflows"]["browse"] = {"nodes": [{"id": "get"}]}
    with pytest.raises(ScenarioError) as caught:
        load_plan(_write(tmp_path, doc), provides())
    errors = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert [(d.code, d.path, d.expected) for d in errors] == [
        ("missing-key", "workflows.browse.nodes[0]", "type")
    ]
    assert errors[0].hint is not None
    assert "action:" in errors[0].hint


def test_an_explicit_node_type_wins_over_the_inferred_one() -> None:
    assert node_type({"id": "a", "action": "x"}) == "action"
    assert node_type({"id": "a", "type": "checkpoint", "action": "x"}) == "checkpoint"
    assert node_type({"id": "a"}) is None


def test_the_built_ins_the_dsl_knows_are_the_registry_s_with_the_same_calls() -> None:
    registered = provides()
    assert {name: registered[name] for name in BUILTIN_PROVIDES} == dict(BUILTIN_PROVIDES)
