"""Failures as data, end to end: action and pass timeouts, error classification, refused
connections, monitoring.retry, and the per-user rate limit."""

from __future__ import annotations

import asyncio
import itertools
import socket
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


# -- timeouts ------------------------------------------------------------------------------------

HANDLED = {"on_error": [{"goto": "error_out"}], "on_timeout": [{"goto": "timeout_out"}]}


def test_action_timeout_is_network_timeout_handled_by_the_node_on_error(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=600)
    node_handlers = [{"update-workbook": {"risk_flag": "{{error.code}}"}}, {"goto": "error_out"}]
    probe = act("probe", "fetch", edge("done"), timeout="100ms", on_error=node_handlers)
    # The workflow's own handlers would take the timeout exit: the node's must win.
    ran = run(
        tmp_path, document({"fetch": http("get")}, graph(probe, end(), **HANDLED)), on(target)
    )

    entry = ran.entries[0]
    assert ran.result["errors"] == {"network-timeout": 1}
    assert ran.result["exits"] == {"error_out": 1}
    assert ran.result["tasks"]["failed"] == 1
    assert ran.book.get(entry, "risk_flag") == "network-timeout"
    assert ran.book.get(entry, "execution.evidence.last_event") == "network-timeout"
    assert phases(entry)[-2:] == ["monitoring.timeout", "closing.error"]
    assert ran.runner.elapsed < 0.5  # gave up after 100 ms, did not wait 600
    assert routes(target) == {"GET /asset": 1}


def test_pass_timeout_runs_on_timeout_and_takes_the_timeout_exit(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=1500)
    flow = graph(act("probe", "fetch", edge("done")), end(), timeout="300ms", **HANDLED)
    ran = run(tmp_path, document({"fetch": http("get")}, flow, users=2), on(target))

    assert ran.result["tasks"]["timed_out"] == 2
    assert ran.result["tasks"]["succeeded"] == ran.result["tasks"]["failed"] == 0
    assert ran.result["exits"] == {"timeout_out": 2}
    assert ran.result["errors"] == {"network-timeout": 2}
    assert ran.log.counts == {"warn": 2}
    for entry in ran.entries:
        assert phases(entry)[-2:] == ["monitoring.timeout", "closing.timeout"]
    assert ran.runner.elapsed < 1.0


# -- error classification --------------------------------------------------------------------------


def classified(doc: Doc) -> Doc:
    doc["progress"] = {"errors": {"transient": ["network-timeout"], "permanent": ["unauthorized"]}}
    doc["monitoring"]["error_out"] = {
        "classification": {
            "catalog": "progress.errors",
            "field": "{{workbook.execution.evidence.last_event}}",
            "default": "transient",
        },
        "actions": [
            {"when": "transient", "action": "logger.warn", "with": {"message": "retry later"}},
            {"when": "permanent", "action": "logger.error", "with": {"message": "give up"}},
            {"when": "any", "action": "logger.info", "with": {"message": "{{error.code}}"}},
        ],
    }
    return doc


@pytest.mark.parametrize(
    ("status", "code", "level"),
    [(500, "http-5xx", "warn"), (503, "http-5xx", "warn"), (401, "unauthorized", "error")],
)
def test_exit_classification_picks_transient_or_permanent_actions(
    tmp_path: Path, target: TargetProcess, status: int, code: str, level: str
) -> None:
    target.control(status=status)
    flow = graph(act("probe", "fetch", edge("done")), end(), **HANDLED)
    ran = run(tmp_path, classified(document({"fetch": http("get")}, flow)), on(target))

    assert ran.result["errors"] == {code: 1}
    assert ran.result["exits"] == {"error_out": 1}
    assert ran.log.counts == {level: 1, "info": 1}
    assert list(ran.log.recent)[-1].endswith(f"u0001 {code}")


def test_refused_connection_is_resource_unavailable(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    flow = graph(act("probe", "fetch", edge("done")), end(), **HANDLED)
    ran = run(tmp_path, classified(document({"fetch": http("get")}, flow)), [("127.0.0.1", port)])

    entry = ran.entries[0]
    assert ran.result["errors"] == {"resource-unavailable": 1}
    requests = ran.result["requests"]
    assert (requests["total"], requests["ok"], requests["failed"]) == (1, 0, 1)
    assert ran.book.get(entry, "execution.evidence.last_event") == "resource-unavailable"
    assert ran.result["exits"] == {"error_out": 1}
    assert ran.log.counts == {"warn": 1, "info": 1}  # transient by default


# -- monitoring.retry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "budget"), [({}, 2), ({"retry_left": 0}, 0), ({"retry_budget": 4}, 4)]
)
def test_retry_reruns_the_failed_node_while_the_budget_lasts(
    tmp_path: Path, target: TargetProcess, context: Doc, budget: int
) -> None:
    target.control(status=500)
    probe = act("probe", "fetch", edge("done"), on_error=[{"goto": "monitoring.retry"}])
    doc = document({"fetch": http("get")}, graph(probe, end(), **HANDLED))
    doc["load"]["scenarios"][0]["user"]["context"] = context
    ran = run(tmp_path, doc, on(target))

    entry = ran.entries[0]
    assert routes(target) == {"GET /asset": 1 + budget}
    assert ran.result["errors"] == {"http-5xx": 1 + budget}
    assert ran.book.get(entry, "retry_left") == 0
    assert [t for _, _, _, t in entry.trace].count("monitoring.retry") == budget
    # The budget spent, the node's handlers give way to the workflow's on-error.
    assert ran.result["exits"] == {"error_out": 1}
    assert ran.result["tasks"]["failed"] == 1


# -- rate limit ------------------------------------------------------------------------------------


def test_per_user_rate_limit_throttles_each_user(tmp_path: Path, target: TargetProcess) -> None:
    probe = act("probe", "fetch", edge("done"), rate_limit={"per-user": "5/s"})
    doc = document({"fetch": http("get")}, graph(probe, end()), users=2, task_duration="1s")
    ran = run(tmp_path, doc, on(target))

    per_user: dict[str, int] = {}
    for entry in ran.entries:
        per_user[entry.user_id] = per_user.get(entry.user_id, 0) + 1
    assert sorted(per_user) == ["u0001", "u0002"]
    assert all(4 <= n <= 6 for n in per_user.values()), per_user
    assert routes(target) == {"GET /asset": sum(per_user.values())}
    throttled = [e for e in ran.entries if "executing.throttled" in phases(e)]
    assert len(throttled) >= len(ran.entries) - 2  # all but each user's first pass waited
    assert all(phases(e)[-1] == "closing.success" for e in ran.entries)


def test_global_rate_limit_is_shared_by_all_users(tmp_path: Path, target: TargetProcess) -> None:
    probe = act("probe", "fetch", edge("done"), rate_limit={"global": "5/s"})
    doc = document({"fetch": http("get")}, graph(probe, end()), users=3, task_duration="1s")
    ran = run(tmp_path, doc, on(target))

    # Three users, one shared 5/s schedule: request starts are at least 200 ms apart, so
    # about 5-8 requests (passes reserved before each user's second ran out), not ~15.
    total = routes(target)["GET /asset"]
    assert 4 <= total <= 9, total
    assert total == len(ran.entries)
    book = ran.runner.ctx.workbook
    starts = sorted(book.get(e, "execution.last_action_at") for e in ran.entries)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.18, gaps
    assert sum("executing.throttled" in phases(e) for e in ran.entries) >= total - 1
