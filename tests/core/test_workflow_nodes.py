"""Workflow nodes end to end against the embedded target: linear steps, transitions,
parallel joins, checkpoints and terminus states."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from wbsrun.core.log import RunLog
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.core.workbook import Entry, Workbook
from wbsrun.dsl.loader import load_plan
from wbsrun.progress.report import build_result
from wbsrun.protocols.registry import build_components, provides
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetProcess

# -- scenario kit (each test file carries its own copy: test modules import no siblings) ----

BASE = "http://{{resource.ip}}:{{resource.port}}"
WORKBOOK: dict[str, Any] = {
    "sections": {
        "timeline": {"defaults": {"phase": "initiating.idle", "transition_trace": []}},
        "execution": {
            "defaults": {
                "retry_budget": 2,
                "evidence": {"snapshot": None, "last_event": None, "reason": None},
                "action_log": [],
            }
        },
        "registers": {"defaults": {"risk": {"flag": "none", "entries": []}}},
        "communications": {"defaults": {"log": [], "last_synced_at": None}},
    },
    "expose": {
        "state": "timeline.phase",
        "risk_flag": "registers.risk.flag",
        "retry_left": "execution.retry_budget",
        "transition_trace": "timeline.transition_trace",
    },
}
Doc = dict[str, Any]


def http(call: str, path: str = "/asset", save: Any = None) -> Doc:
    out: Doc = {"component": "http", "call": call, "with": {"url": BASE + path}}
    return {**out, "save-as": save} if save else out


def log(level: str, message: str, save: Any = None) -> Doc:
    out: Doc = {"component": "logger", "call": level, "with": {"message": message}}
    return {**out, "save-as": save} if save else out


def edge(to: str, condition: str = "always") -> Doc:
    return {"to": to, "condition": condition}


def act(node_id: str, action: str, *transitions: Doc, **exec_: Any) -> Doc:
    controls = {k.replace("_", "-"): v for k, v in exec_.items()}
    controls["transitions"] = list(transitions)
    return {"id": node_id, "type": "action", "action": action, "controls": {"exec": controls}}


def end(node_id: str = "done", state: str = "closing.success") -> Doc:
    return {"id": node_id, "type": "terminus", "state": state}


def graph(*nodes: Doc, **controls: Any) -> Doc:
    keys = {k.replace("_", "-"): v for k, v in controls.items()}
    return {"type": "graph", "controls": keys, "nodes": list(nodes)}


def document(actions: Mapping[str, Any], workflow: Doc, users: int = 1, **scenario: Any) -> Doc:
    """One scenario `s` running workflow `wf`; each user leases an item of `pool`."""
    settings = {k.replace("_", "-"): v for k, v in scenario.items()}
    return {
        "version": "1.0",
        "name": "t",
        "components": [
            {"name": "http", "version": "1.0.0", "kind": "native", "capabilities": ["get"]},
            {"name": "logger", "version": "1.0.0", "kind": "native", "capabilities": ["info"]},
        ],
        "resources": {
            "pool": {
                "type": "pair_pool",
                "config": {"manifest": "./resource.yaml", "parser": {"format": "csv"}},
                "capacity": {"size": 100},
            }
        },
        "workbook": WORKBOOK,
        "actions": dict(actions),
        "workflows": {"wf": workflow},
        "load": {
            "scenarios": [
                {
                    "name": "s",
                    "workflow": "wf",
                    "user-count": users,
                    "user": {"inherit": ["pool"]},
                    "exits": {"error": "error_out", "timeout": "timeout_out"},
                    **settings,
                }
            ]
        },
        "monitoring": {
            "error_out": {"actions": [{"action": "logger.warn", "with": {"message": "err"}}]},
            "timeout_out": {"actions": [{"action": "logger.warn", "with": {"message": "late"}}]},
        },
    }


@dataclass
class Ran:
    runner: Runner
    pools: PoolManager
    log: RunLog
    result: Doc
    bundle: Path

    @property
    def book(self) -> Workbook:
        return self.runner.ctx.workbook

    @property
    def entries(self) -> list[Entry]:
        return self.book.entries

    def actions_done(self, entry: Entry) -> list[str]:
        return [item["action"] for item in self.book.get(entry, "execution.action_log")]


def phases(entry: Entry) -> list[str]:
    return [to for _, to, _, _ in entry.trace]


def run(
    tmp_path: Path,
    doc: Doc,
    items: Sequence[tuple[str, int]],
    options: RunOptions | None = None,
    during: Callable[[Runner], Coroutine[Any, Any, None]] | None = None,
) -> Ran:
    """Write the bundle (script.yaml + resource.yaml), run it to the end, collect the result."""
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    manifest = "".join(f"{host},{port}\n" for host, port in items)
    (bundle / "resource.yaml").write_text("ip,port\n" + manifest, encoding="utf-8")
    (bundle / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    plan = load_plan(bundle, provides())
    pools = PoolManager(plan)
    run_log = RunLog()
    runner = Runner(plan, build_components(plan, run_log), pools, run_log, options)

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(runner.run())
            if during is not None:
                tg.create_task(during(runner))

    asyncio.run(main())
    result = build_result(runner, pools.statistics(), run_log.counts)
    return Ran(runner, pools, run_log, result, bundle)


def on(target: TargetProcess) -> list[tuple[str, int]]:
    return [(target.hosts[0], target.port)]


def routes(target: TargetProcess) -> dict[str, int]:
    counted: dict[str, int] = target.stats()["by_route"]
    return counted


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
    assert set(ran.result["actions"]) == {"fast", "purge"}


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
