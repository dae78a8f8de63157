"""Forms the DSL contract writes that wbsrun refused or ignored before: `progress.rollback`
as a key (`{to: …}`, the target alone, or bare) beside `action: progress.rollback`, `to:`
naming an earlier checkpoint, a `to:` naming nothing refused with its place,
`resource.release` as a key, and `user.context` keys that are no workbook field read as
variables. Real runs against the embedded target."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scenario_kit import act, document, edge, end, graph, http, on, routes, run, write_bundle
from wbsrun.core.runner import Runner
from wbsrun.dsl.loader import load_plan
from wbsrun.errors import ScenarioError
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetKnobs, TargetProcess


def _checkpoint(node_id: str, to: str) -> dict[str, Any]:
    return {"id": node_id, "type": "checkpoint", "controls": {"flow": {"transitions": [edge(to)]}}}


def _doc(step: dict[str, Any]) -> dict[str, Any]:
    """cp1 → GET /asset → cp2 → GET /missing (404: fails) whose on-error runs `step`."""
    flow = graph(
        _checkpoint("cp1", "first"),
        act("first", "fetch", edge("cp2")),
        _checkpoint("cp2", "second"),
        act("second", "miss", edge("done"), on_error=[step]),
        end(),
    )
    return document({"fetch": http("get"), "miss": http("get", "/missing")}, flow)


@pytest.mark.parametrize(
    ("step", "first_runs"),
    [
        ({"progress.rollback": {"to": "cp1"}}, 4),  # back before `first` each time
        ({"action": "progress.rollback", "to": "cp1"}, 4),
        ({"progress.rollback": "cp1"}, 4),
        ({"progress.rollback": {"to": "last-stable-point"}}, 1),  # cp2: `first` runs once
        ({"progress.rollback": None}, 1),
        ({"action": "progress.rollback"}, 1),
    ],
)
def test_a_rollback_goes_to_the_checkpoint_it_names_or_the_last_stable_point(
    tmp_path: Path, target: TargetProcess, step: dict[str, Any], first_runs: int
) -> None:
    target.reset_stats()
    ran = run(tmp_path, _doc(step), on(target))
    served = routes(target)
    # Three rollbacks a pass, then it closes as rolled back: `second` ran 4 times either way
    # (/missing is counted under "other").
    assert served.get("other") == 4
    assert served.get("GET /asset") == first_runs
    assert ran.result["tasks"]["rolled_back"] == 1


def test_a_rollback_target_that_is_no_checkpoint_is_refused_with_its_place(
    tmp_path: Path,
) -> None:
    doc = _doc({"progress.rollback": {"to": "cp3"}})
    bundle = write_bundle(tmp_path, doc, [("127.0.0.1", 9)])
    with pytest.raises(ScenarioError) as refused:
        load_plan(bundle, provides())
    (diag,) = [d for d in refused.value.diagnostics if d.code == "unknown-target"]
    assert "rollback target 'cp3'" in diag.message
    assert diag.line > 0
    assert diag.column > 0
    assert "cp1" in (diag.expected or "")


@pytest.mark.parametrize(("step", "held"), [("release", 0), ("log", 1)])
def test_resource_release_as_a_key_is_the_step_the_contract_lists(
    tmp_path: Path, target_factory: Callable[..., TargetProcess], step: str, held: int
) -> None:
    """GET (500 ms) → GET /missing (404 at once) → on-error releases the lease and goes on to
    a last GET (500 ms): half-way through that one, the pool has the item back."""
    target = target_factory(knobs=TargetKnobs(latency_ms=500))
    handles = ["{{resource.ip}}:{{resource.port}}"]
    first: dict[str, Any] = (
        {"resource.release": {"handles": handles}}
        if step == "release"
        else {"action": "logger.info", "with": {"message": "kept"}}
    )
    flow = graph(
        act("first", "fetch", edge("second")),
        act("second", "miss", edge("done"), on_error=[first, {"goto": "third"}]),
        act("third", "fetch", edge("done")),
        end(),
    )
    doc = document({"fetch": http("get"), "miss": http("get", "/missing")}, flow)
    seen: list[int] = []

    async def watch(runner: Runner) -> None:
        await asyncio.sleep(0.75)  # half-way through `third` (0.5-1.0 s)
        assert runner.provider is not None
        seen.append(runner.provider.statistics()["pool"]["active"])

    ran = run(tmp_path, doc, on(target), during=watch)
    assert seen == [held]
    assert ran.result["tasks"]["succeeded"] == 1


def test_a_user_context_key_that_is_no_field_is_a_variable_templates_read(
    tmp_path: Path, target: TargetProcess
) -> None:
    """The contract's `user.context` keys beyond the workbook's fields are the entry's
    variables: `{{tenant}}` and `{{workbook.tenant}}` validate and read the value."""
    flow = graph(act("first", "fetch", edge("done")), end())
    fetch = http("get", "/asset?t={{tenant}}&w={{workbook.tenant}}")
    doc = document(
        {"fetch": fetch}, flow, user={"inherit": ["pool"], "context": {"tenant": "acme"}}
    )
    target.reset_stats()
    ran = run(tmp_path, doc, on(target))
    assert ran.result["tasks"]["succeeded"] == 1
    (entry,) = ran.entries
    assert ran.book.export(entry)["vars"]["tenant"] == "acme"


def test_a_context_variable_only_some_scenarios_set_stays_undefined_for_the_workflow(
    tmp_path: Path,
) -> None:
    flow = graph(act("first", "fetch", edge("done")), end())
    doc = document({"fetch": http("get", "/asset?t={{tenant}}")}, flow)
    other = dict(doc["load"]["scenarios"][0], name="s2")
    doc["load"]["scenarios"][0]["user"] = {"inherit": ["pool"], "context": {"tenant": "acme"}}
    doc["load"]["scenarios"].append(other)
    bundle = write_bundle(tmp_path, doc, [("127.0.0.1", 9)])
    with pytest.raises(ScenarioError) as refused:
        load_plan(bundle, provides())
    assert [d.code for d in refused.value.diagnostics if d.severity == "error"] == [
        "undefined-variable"
    ]


@pytest.mark.parametrize(("exits", "taken"), [(True, {"error_out": 1}), (False, {})])
def test_a_failure_no_handler_routes_takes_the_scenarios_error_exit(
    tmp_path: Path, target: TargetProcess, exits: bool, taken: dict[str, int]
) -> None:
    """`exits.error`: where an error no handler routed goes (its exit's actions run); without
    it, the pass ends `closing.error` with no exit, as before."""
    flow = graph(act("miss", "miss", edge("done")), end())
    doc = document({"miss": http("get", "/missing")}, flow)
    if not exits:
        del doc["load"]["scenarios"][0]["exits"]
    ran = run(tmp_path, doc, on(target))
    assert ran.result["exits"] == taken
    assert ran.result["tasks"]["failed"] == 1
    assert any("err" in line for line in ran.log.recent) is exits  # error_out's log action
