"""Workflow nodes end to end against the embedded target: linear steps, transitions,
parallel joins, checkpoints and terminus states."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from scenario_kit import (
    WORKBOOK,
    act,
    document,
    edge,
    end,
    graph,
    http,
    on,
    phases,
    routes,
    run,
)
from wbsrun.target import TargetProcess

# -- linear workflows ----------------------------------------------------------------------------


def test_linear_steps_run_once_each_in_declared_order(
    tmp_path: Path, target: TargetProcess
) -> None:
    actions = {"fetch": http("get"), "push": http("post"), "purge": http("delete")}
    workflow = {"steps": [{"ref": "fetch"}, {"ref": "push"}, {"ref": "purge"}]}
    ran = run(tmp_path, document(actions, workflow, users=3), on(target))

    assert routes(target) == {"GET /asset": 3, "POST /asset": 3, "DELETE /asset": 3}
    assert ran.result["tasks"]["succeeded"] == 3
    assert [ran.actions_done(e) for e in ran.entries] == [["fetch", "push", "purge"]] * 3
    assert all(phases(e)[-1] == "closing.success" for e in ran.entries)


# -- transitions ---------------------------------------------------------------------------------


def _branching(first: list[dict[str, Any]]) -> dict[str, Any]:
    """probe, then the given transitions towards `left` (GET /health) or `right` (DELETE)."""
    return graph(
        act("probe", "probe", *first),
        act("left", "left", edge("done")),
        act("right", "right", edge("done")),
        end(),
        on_error=[{"goto": "error_out"}],
    )


BRANCH_ACTIONS = {
    "probe": http("get", save="asset"),
    "left": http("get", "/health"),
    "right": http("delete"),
}


def test_always_transition_is_taken_without_evaluating_later_ones(
    tmp_path: Path, target: TargetProcess
) -> None:
    # Evaluating the second condition would fail the task (the asset has no `missing` key).
    flow = _branching([edge("left", "always"), edge("right", "{{asset.json.missing.x == 1}}")])
    ran = run(tmp_path, document(BRANCH_ACTIONS, flow), on(target))

    assert routes(target) == {"GET /asset": 1, "GET /health": 1}
    assert ran.actions_done(ran.entries[0]) == ["probe", "left"]
    assert ran.result["errors"] == {}


def test_expression_conditions_pick_the_first_true_transition(
    tmp_path: Path, target: TargetProcess
) -> None:
    flow = _branching(
        [
            edge("left", "{{asset.status != 200}}"),
            edge("right", "{{asset.json.id == 'asset-001' and asset.ok}}"),
            edge("left", "always"),
        ]
    )
    ran = run(tmp_path, document(BRANCH_ACTIONS, flow), on(target))

    assert routes(target) == {"GET /asset": 1, "DELETE /asset": 1}
    assert ran.result["tasks"]["succeeded"] == 1


def test_otherwise_listed_first_loses_to_a_later_matching_condition(
    tmp_path: Path, target: TargetProcess
) -> None:
    flow = _branching([edge("left", "otherwise"), edge("right", "{{asset.status == 200}}")])
    ran = run(tmp_path, document(BRANCH_ACTIONS, flow), on(target))

    assert routes(target) == {"GET /asset": 1, "DELETE /asset": 1}
    assert ran.actions_done(ran.entries[0]) == ["probe", "right"]


def test_otherwise_is_taken_when_no_condition_matches(
    tmp_path: Path, target: TargetProcess
) -> None:
    flow = _branching([edge("left", "otherwise"), edge("right", "{{asset.status == 404}}")])
    ran = run(tmp_path, document(BRANCH_ACTIONS, flow), on(target))

    assert routes(target) == {"GET /asset": 1, "GET /health": 1}
    assert ran.actions_done(ran.entries[0]) == ["probe", "left"]


def test_no_matching_transition_fails_the_task_with_no_transition(
    tmp_path: Path, target: TargetProcess
) -> None:
    flow = _branching(
        [edge("left", "{{asset.status == 404}}"), edge("right", "{{asset.status == 500}}")]
    )
    ran = run(tmp_path, document(BRANCH_ACTIONS, flow), on(target))

    assert routes(target) == {"GET /asset": 1}
    entry = ran.entries[0]
    assert ran.book.get(entry, "execution.evidence.last_event") == "no-transition"
    assert ran.result["errors"] == {"no-transition": 1}
    assert ran.result["exits"] == {"error_out": 1}
    assert ran.result["tasks"]["failed"] == 1
    assert phases(entry)[-2:] == ["monitoring.error_detected", "closing.error"]


# -- parallel nodes ------------------------------------------------------------------------------


def fork(policy: str, *branches: str, join: str = "done") -> dict[str, Any]:
    return {
        "id": "fork",
        "type": "parallel",
        "controls": {
            "flow": {
                "type": "parallel",
                "strategy": "fan-out",
                "branches": [{"to": b} for b in branches],
                "join": {"policy": policy, "to": join},
            }
        },
    }


def test_wait_all_runs_every_branch_then_the_join_target(
    tmp_path: Path, target: TargetProcess
) -> None:
    actions = {"fetch": http("get"), "push": http("post"), "purge": http("delete")}
    flow = graph(
        fork("wait-all", "a", "b", join="purge"),
        act("a", "fetch", edge("purge")),
        act("b", "push", edge("purge")),
        act("purge", "purge", edge("done")),
        end(),
    )
    ran = run(tmp_path, document(actions, flow, users=2), on(target))

    assert routes(target) == {"GET /asset": 2, "POST /asset": 2, "DELETE /asset": 2}
    assert ran.result["tasks"]["succeeded"] == 2
    for entry in ran.entries:
        done = ran.actions_done(entry)
        assert sorted(done[:2]) == ["fetch", "push"]
        assert done[2:] == ["purge"]


@pytest.fixture
def two_hosts(target_factory: Callable[..., TargetProcess]) -> TargetProcess:
    """127.0.0.1 answers after 100 ms, 127.0.0.2 after 1.5 s."""
    proc = target_factory(hosts=("127.0.0.1", "127.0.0.2"))
    proc.control(host="127.0.0.1", latency_ms=100)
    proc.control(host="127.0.0.2", latency_ms=1500)
    return proc


def _race(two_hosts: TargetProcess, policy: str, fast_to: str) -> dict[str, Any]:
    slow_url = f"http://127.0.0.2:{two_hosts.port}/asset"
    actions = {
        "fast": http("get"),
        "slow": {"component": "http", "call": "get", "with": {"url": slow_url}},
        "purge": http("delete"),
    }
    flow = graph(
        fork(policy, "quick", "sluggish", join="purge"),
        act("quick", "fast", edge(fast_to)),
        act("sluggish", "slow", edge("purge")),
        act("purge", "purge", edge("done")),
        end(),
    )
    return document(actions, flow)


def test_wait_any_continues_after_the_first_branch_and_cancels_the_slower(
    tmp_path: Path, two_hosts: TargetProcess
) -> None:
    ran = run(tmp_path, _race(two_hosts, "wait-any", "purge"), on(two_hosts))

    assert ran.result["tasks"]["succeeded"] == 1
    assert ran.runner.elapsed < 1.0  # did not wait for the 1.5 s branch
    stats = two_hosts.stats()
    assert stats["by_route"] == {"GET /asset": 2, "DELETE /asset": 1}  # join target ran once
    assert stats["by_host"] == {"127.0.0.1": 2, "127.0.0.2": 1}  # both branches started
    assert stats["responded"] == 2  # the slow request was abandoned, never answered
    assert ran.actions_done(ran.entries[0]) == ["fast", "purge"]
    # The abandoned request was sent: counted, as interrupted, with no latency.
    assert ran.result["requests"]["total"] == stats["received"] == 3
    assert ran.result["requests"]["interrupted"] == 1
    slow = ran.result["actions"]["slow"]
    assert (slow["count"], slow["ok"], slow["failed"], slow["interrupted"]) == (1, 0, 0, 1)
    assert slow["latency_ms"]["max"] == 0.0
    assert (slow["requests"], slow["status"]) == (1, {})
    # The scenario's figures agree: three sent, two answered (200), one interrupted.
    figures = ran.result["scenarios"]["s"]
    assert (figures["requests"]["total"], figures["requests"]["interrupted"]) == (3, 1)
    assert figures["status_codes"] == ran.result["requests"]["status_codes"] == {"200": 2}
    assert figures["latency_ms"]["count"] == 2


def test_branch_taking_an_exit_cancels_its_siblings_and_the_task_takes_the_exit(
    tmp_path: Path, two_hosts: TargetProcess
) -> None:
    ran = run(tmp_path, _race(two_hosts, "wait-all", "error_out"), on(two_hosts))

    assert ran.result["exits"] == {"error_out": 1}
    assert ran.result["tasks"]["failed"] == 1
    assert ran.runner.elapsed < 1.0
    assert two_hosts.stats()["by_route"] == {"GET /asset": 2}  # never reached the join target
    assert two_hosts.stats()["responded"] == 1
    assert ran.actions_done(ran.entries[0]) == ["fast", "logger.warn"]  # + the exit's action
    assert phases(ran.entries[0])[-1] == "closing.error"
    assert ran.log.counts == {"warn": 1}  # error_out's action ran once


def _quiet_fork(policy: str) -> dict[str, Any]:
    """A fork whose first branch is only a checkpoint, the second an HTTP action."""
    checkpoint = {
        "id": "mark",
        "type": "checkpoint",
        "controls": {"flow": {"transitions": [edge("purge")]}},
    }
    flow = graph(
        fork(policy, "mark", "fetch", join="purge"),
        checkpoint,
        act("fetch", "fetch", edge("purge")),
        act("purge", "purge", edge("done")),
        end(),
    )
    return document({"fetch": http("get"), "purge": http("delete")}, flow, users=2)


def test_wait_all_with_a_checkpoint_branch_runs_both_branches_then_the_join(
    tmp_path: Path, target: TargetProcess
) -> None:
    ran = run(tmp_path, _quiet_fork("wait-all"), on(target))

    assert routes(target) == {"GET /asset": 2, "DELETE /asset": 2}
    assert ran.result["tasks"]["succeeded"] == 2
    for entry in ran.entries:
        assert ran.actions_done(entry) == ["fetch", "purge"]
        assert ran.book.get(entry, "execution.evidence.snapshot")["checkpoint"] == "mark"


def test_wait_any_is_won_by_a_checkpoint_branch_before_an_action_branch_starts(
    tmp_path: Path, target: TargetProcess
) -> None:
    # Documented (docs/dsl.md, parallel): branches without actions run first, in the
    # parent task; one that ends first wins a wait-any join before the others start.
    ran = run(tmp_path, _quiet_fork("wait-any"), on(target))

    assert routes(target) == {"DELETE /asset": 2}
    assert ran.result["tasks"]["succeeded"] == 2
    for entry in ran.entries:
        assert ran.actions_done(entry) == ["purge"]


# -- checkpoint and terminus ---------------------------------------------------------------------


def _checkpointed(workbook: Mapping[str, Any] | None) -> dict[str, Any]:
    checkpoint = {
        "id": "check",
        "type": "checkpoint",
        "metrics": ["http.status", "http.latency"],
        "controls": {"flow": {"transitions": [edge("done")]}},
    }
    doc = document(
        {"fetch": http("get")}, graph(act("probe", "fetch", edge("check")), checkpoint, end())
    )
    if workbook is None:
        del doc["workbook"]
    return doc


@pytest.mark.parametrize("workbook", [WORKBOOK, None], ids=["with-defaults", "no-workbook"])
def test_checkpoint_records_its_metrics_in_the_evidence_snapshot(
    tmp_path: Path, target: TargetProcess, workbook: Mapping[str, Any] | None
) -> None:
    ran = run(tmp_path, _checkpointed(workbook), on(target))

    snapshot = ran.book.get(ran.entries[0], "execution.evidence.snapshot")
    assert snapshot["checkpoint"] == "check"
    assert snapshot["metrics"]["http.status"] == 200
    assert 0 < snapshot["metrics"]["http.latency"] < 1000
    assert ran.book.export(ran.entries[0])["execution"]["evidence"]["snapshot"] == snapshot


@pytest.mark.parametrize(
    ("state", "counter"),
    [
        ("closing.success", "succeeded"),
        ("closing.error", "failed"),
        ("closing.timeout", "timed_out"),
        ("closing.rollback", "rolled_back"),
    ],
)
def test_terminus_ends_the_task_in_its_state(
    tmp_path: Path, target: TargetProcess, state: str, counter: str
) -> None:
    flow = graph(act("probe", "fetch", edge("stop")), end("stop", state))
    ran = run(tmp_path, document({"fetch": http("get")}, flow, users=2), on(target))

    tasks = ran.result["tasks"]
    assert tasks[counter] == 2
    assert sum(tasks[k] for k in ("succeeded", "failed", "timed_out", "rolled_back")) == 2
    assert all(ran.book.get(e, "state") == state for e in ran.entries)
    assert ran.result["exits"] == {}
