"""Scenario kit for the workflow tests: build a scenario document, run it against a live
target through the library API, and read the result and the workbook."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wbsrun.core.events import ProgressSink
from wbsrun.core.ledger import Ledger, LedgerEntry
from wbsrun.core.log import RunLog
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.progress.report import build_result
from wbsrun.protocols.registry import WasmLoader, build_components, provides
from wbsrun.resources import attach_health_checks
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetProcess

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
    def book(self) -> Ledger[Any]:
        return self.runner.ctx.workbook

    @property
    def entries(self) -> Sequence[Any]:
        return self.book.entries

    def actions_done(self, entry: LedgerEntry) -> list[str]:
        return [item["action"] for item in self.book.get(entry, "execution.action_log")]


def phases(entry: LedgerEntry) -> list[str]:
    return [to for _, to, _, _ in entry.trace]


def write_bundle(tmp_path: Path, doc: Doc, items: Sequence[tuple[str, int]]) -> Path:
    """`tmp_path/bundle` with the scenario as script.yaml and `items` as the csv manifest."""
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    manifest = "".join(f"{host},{port}\n" for host, port in items)
    (bundle / "resource.yaml").write_text("ip,port\n" + manifest, encoding="utf-8")
    (bundle / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return bundle


def run(
    tmp_path: Path,
    doc: Doc,
    items: Sequence[tuple[str, int]],
    options: RunOptions | None = None,
    during: Callable[[Runner], Coroutine[Any, Any, None]] | None = None,
    events: ProgressSink | None = None,
    factories: Mapping[str, Any] | None = None,
    wasm: WasmLoader | None = None,
) -> Ran:
    """Write the bundle (script.yaml + resource.yaml), run it to the end, collect the result
    (`wasm`: the WebAssembly loader, tests/plugin_kit.py)."""
    bundle = write_bundle(tmp_path, doc, items)
    plan = load_plan(bundle, provides(factories))
    # The transport tests/conftest.py chose (WBSRUN_TRANSPORT), unless the test set one.
    options = options or RunOptions()
    if options.transport is None and os.environ.get("WBSRUN_TRANSPORT"):
        options = dataclasses.replace(options, transport=os.environ["WBSRUN_TRANSPORT"])
    pools = PoolManager(plan)
    run_log = RunLog()
    components = build_components(plan, run_log, factories, wasm)
    runner = Runner(plan, components, pools, run_log, options, events=events)
    attach_health_checks(runner, pools)

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
