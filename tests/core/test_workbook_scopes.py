"""The workbook as a run leaves it: update-workbook (aliases and section paths), the
transition trace, save-as scopes and persist files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# -- workbook updates and the transition trace ---------------------------------------------------


def _failing_with(update: Mapping[str, Any]) -> dict[str, Any]:
    """One GET whose error handler writes `update` to the workbook, then exits."""
    handlers = [{"update-workbook": dict(update)}, {"goto": "error_out"}]
    flow = graph(act("probe", "fetch", edge("done"), on_error=handlers), end())
    return document({"fetch": http("get")}, flow)


def test_update_workbook_through_an_expose_alias(tmp_path: Path, target: TargetProcess) -> None:
    target.control(status=500)
    doc = _failing_with({"risk_flag": "escalated", "state": "monitoring.escalated"})
    ran = run(tmp_path, doc, on(target))

    entry = ran.entries[0]
    assert ran.book.get(entry, "registers.risk.flag") == "escalated"
    assert ran.book.get(entry, "risk_flag") == "escalated"
    assert ran.book.export(entry)["registers"]["risk"] == {"flag": "escalated", "entries": []}
    # `state` is timeline.phase: writing it is a phase transition, traced like any other.
    assert ("monitoring.error_detected", "monitoring.escalated", "update-workbook") in [
        (f, t, trig) for f, t, _, trig in entry.trace
    ]
    assert ran.result["exits"] == {"error_out": 1}


def test_update_workbook_through_a_section_path(tmp_path: Path, target: TargetProcess) -> None:
    target.control(status=500)
    doc = _failing_with(
        {"communications.last_synced_at": "{{error.code}}", "execution.evidence.reason": "x"}
    )
    ran = run(tmp_path, doc, on(target))

    entry = ran.entries[0]
    assert ran.book.get(entry, "communications.last_synced_at") == "http-5xx"
    assert ran.book.get(entry, "execution.evidence.reason") == "x"
    assert ran.book.get(entry, "execution.evidence.last_event") == "http-5xx"
    # The shared defaults were copied, not written in place: a fresh entry still sees them.
    fresh = ran.book.open("u9", "u9-t0", "s")
    assert ran.book.get(fresh, "communications.last_synced_at") is None
    assert ran.book.get(fresh, "execution.evidence.reason") is None


def test_transition_trace_appends_from_to_at_trigger_in_order(
    tmp_path: Path, target: TargetProcess
) -> None:
    actions = {"fetch": http("get"), "push": http("post")}
    flow = graph(act("probe", "fetch", edge("send")), act("send", "push", edge("done")), end())
    ran = run(tmp_path, document(actions, flow), on(target))

    trace = ran.book.get(ran.entries[0], "transition_trace")
    assert [(t["from"], t["to"], t["trigger"]) for t in trace] == [
        ("initiating.idle", "planning.ready", "plan"),
        ("planning.ready", "executing.waiting_resource", "lease"),
        ("executing.waiting_resource", "executing.running_action", "probe"),
        ("executing.running_action", "closing.success", "close"),
    ]
    stamps = [t["at"] for t in trace]
    assert stamps == sorted(stamps)
    assert ran.runner.started_wall <= stamps[0] <= stamps[-1] <= ran.runner.started_wall + 5
    assert ran.book.export(ran.entries[0])["timeline"]["transition_trace"] == trace
    assert ran.book.get(ran.entries[0], "state") == "closing.success"


# -- save-as scopes and persist ------------------------------------------------------------------


def saving(var: str, scope: str, message: str = "pass {{env.iteration}}") -> dict[str, Any]:
    return log("info", message, save={"var": var, "scope": scope})


def test_save_as_workbook_scope_lands_in_the_entry_vars(
    tmp_path: Path, target: TargetProcess
) -> None:
    actions = {"fetch": http("get", save="asset")}
    flow = graph(act("probe", "fetch", edge("done")), end())
    ran = run(tmp_path, document(actions, flow, users=2), on(target))

    for entry in ran.entries:
        assert entry.vars["asset"]["status"] == 200
        assert ran.book.export(entry)["vars"]["asset"]["json"]["id"] == "asset-001"


def test_save_as_task_local_is_read_later_in_the_pass_but_not_kept(
    tmp_path: Path, target: TargetProcess
) -> None:
    actions = {
        "fetch": http("get", save={"var": "probe", "scope": "task-local"}),
        "echo": log("info", "status {{probe.status}}"),
    }
    flow = graph(act("get", "fetch", edge("say")), act("say", "echo", edge("done")), end())
    ran = run(tmp_path, document(actions, flow, iterations=2), on(target))

    assert ran.result["tasks"]["succeeded"] == 2
    assert [line.split(" ", 2)[-1] for line in ran.log.recent] == ["u0001 status 200"] * 2
    assert all("probe" not in e.vars for e in ran.entries)


def test_save_as_user_local_is_visible_in_the_users_next_pass(
    tmp_path: Path, target: TargetProcess
) -> None:
    actions = {
        "fetch": http("get"),
        "mark": saving("mark", "user-local"),
        "echo": log("warn", "{{env.user_id}} saw {{mark.message}}"),
    }
    flow = graph(
        act("probe", "fetch", edge("set", "{{env.iteration == 0}}"), edge("say", "otherwise")),
        act("say", "echo", edge("set")),
        act("set", "mark", edge("done")),
        end(),
    )
    ran = run(tmp_path, document(actions, flow, users=2, iterations=3), on(target))

    assert ran.result["tasks"]["succeeded"] == 6
    seen = sorted(line.split(" ", 2)[-1] for line in ran.log.recent if line.startswith("WARN"))
    assert seen == [
        "u0001 u0001 saw pass 0",
        "u0001 u0001 saw pass 1",
        "u0002 u0002 saw pass 0",
        "u0002 u0002 saw pass 1",
    ]
    assert all("mark" not in e.vars for e in ran.entries)


def test_save_as_global_is_visible_to_other_users(tmp_path: Path, target: TargetProcess) -> None:
    actions = {
        "fetch": http("get"),
        "share": saving("shared", "global", "from {{env.user_id}}"),
        "echo": log("warn", "{{env.user_id}} got {{shared.message}}"),
    }
    flow = graph(
        act("probe", "fetch", edge("set", "{{env.user_id == 'u0001'}}"), edge("say", "otherwise")),
        act("say", "echo", edge("done")),
        act("set", "share", edge("done")),
        end(),
    )
    # u0002 starts 200 ms after u0001, which has saved by then.
    doc = document(actions, flow, users=2, spawn_rate="5/s")
    ran = run(tmp_path, doc, on(target))

    assert ran.result["tasks"]["succeeded"] == 2
    assert [line for line in ran.log.recent if line.startswith("WARN")] == [
        "WARN  u0002 u0002 got from u0001"
    ]
    assert ran.runner.ctx.global_vars["shared"]["message"] == "from u0001"
    assert all("shared" not in e.vars for e in ran.entries)


def test_persist_writes_the_last_saved_value_inside_the_bundle(
    tmp_path: Path, target: TargetProcess
) -> None:
    persist = {"type": "file", "dir": "./out/marks", "filename": "{{workbook.user_id}}.json"}
    actions = {"mark": log("info", "pass {{env.iteration}}", save={"var": "m", "persist": persist})}
    flow = graph(act("set", "mark", edge("done")), end())
    ran = run(tmp_path, document(actions, flow, users=2, iterations=3), on(target))

    out = ran.bundle / "out" / "marks"
    assert sorted(p.name for p in out.iterdir()) == ["u0001.json", "u0002.json"]
    for name in ("u0001", "u0002"):
        saved = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        assert saved == {"level": "info", "message": "pass 2"}
    assert ran.result["persist"]["errors"] == []
