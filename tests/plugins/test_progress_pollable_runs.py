"""The progress pollable in real runs: the example plugin (examples/plugins/progress_py)
subscribes at its init, drains the change feed in a `poll` action and at its release, and
sees exactly the changes the run produced; the run's result and metrics carry the feed's
figures; a plugin importing the pollable is refused when the scenario does not offer it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from plugin_kit import Built, plugin_component, put
from scenario_kit import Doc, document, http, on, routes, run, write_bundle
from wbsrun.cli.plugins import wasm_loader
from wbsrun.cli.session import WiredRun, wire
from wbsrun.core.log import RunLog
from wbsrun.core.runner import RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.errors import RunError
from wbsrun.protocols.registry import provides
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetProcess
from wbsrun.telemetry.metrics import RunSources, families, take_sample

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"
PRIORITIES = [
    {"name": "critical", "match": {"timeline.phase": ["monitoring", "closing"]}, "weight": 1.0},
    {"name": "routine", "weight": 0.5},
]


def _doc(entry: str, users: int, iterations: int, **poller: Any) -> Doc:
    actions = {
        "get": http("get"),
        "poll": {"component": "watch", "call": "poll", "save-as": "watch_out"},
    }
    flow = {"steps": [{"ref": "get"}, {"ref": "poll"}]}
    doc = document(actions, flow, users=users, iterations=iterations)
    doc["components"].append(plugin_component("watch", entry, "poll"))
    doc["progress"] = {"poller": {"priorities": PRIORITIES, **poller}}
    return doc


def _wired_run(tmp_path: Path, doc: Doc, items: list[tuple[str, int]]) -> WiredRun:
    bundle = write_bundle(tmp_path, doc, items)
    plan = load_plan(bundle, provides())
    wired = wire(plan, RunOptions(), PoolManager(plan), RunLog())
    asyncio.run(wired.runner.run())
    return wired


def _seen(wired: WiredRun) -> dict[str, Any]:
    lines = [m for m in wired.log.recent if "progress-seen " in m]
    assert len(lines) == 1, wired.log.recent[-10:]
    seen: dict[str, Any] = json.loads(lines[0].split("progress-seen ", 1)[1])
    return seen


def test_plugin_sees_exactly_the_changes_the_run_produced(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    entry = put(tmp_path / "bundle", built_plugins.progress, "watch")
    doc = _doc(entry, users=3, iterations=4, progress_pollable=True)

    wired = _wired_run(tmp_path, doc, on(target))
    result = wired.result()

    assert routes(target) == {"GET /asset": 12}
    assert result["tasks"]["succeeded"] == 12
    seen, stats = _seen(wired), result["engine"]["pollable"]
    book = wired.runner.ctx.workbook
    # Every pass closed once, in its final phase (the workbook's), with progress 1.0 (all its
    # actions done: the scenario has no milestones).
    assert seen["closed"] == {e.task_id: [book.get(e, "timeline.phase"), 1.0] for e in book.entries}
    assert len(seen["closed"]) == 12
    assert {phase for phase, _ in seen["closed"].values()} == {"closing.success"}
    # It got every change the feed made, each once, and the run was over at its release.
    assert sum(seen["by_field"].values()) == stats["changes"] > 12
    assert seen["unique"]
    assert seen["done"]
    assert stats["acked"] == stats["changes"]
    assert stats["dropped"] == 0
    assert stats["queue_depth"] == 0
    assert stats["subscriptions"] == 1
    assert stats["polls"]["ready"] > 0
    assert stats["polls"]["block"] > 0
    assert stats["latency_ms"]["block"]["count"] == stats["polls"]["block"]
    # The poll actions saw the changes so far (none before the bus's first flush).
    saved = [e.vars["watch_out"]["seen"] for e in book.entries]
    assert 0 < max(saved) <= stats["changes"]
    jsonschema.validate(result, json.loads(SCHEMA.read_text("utf-8")))
    _metrics_agree(wired, stats)


def _metrics_agree(wired: WiredRun, stats: dict[str, Any]) -> None:
    """The exporter's pollable families say what the result says."""
    sample = take_sample(RunSources(wired.runner, pollable=wired.feed))
    got = {
        (smp.name, smp.labels.get("call", "")): smp.value
        for fam in families(sample)
        if fam.name.startswith("wbsrun_pollable")
        for smp in fam.samples
    }
    for call in ("ready", "block"):
        polls = stats["polls"][call]
        assert got[("wbsrun_pollable_polls_total", call)] == polls
        assert got[("wbsrun_pollable_poll_latency_seconds_count", call)] == polls
        assert got[("wbsrun_pollable_poll_latency_seconds_sum", call)] > 0
    assert got[("wbsrun_pollable_changes_total", "")] == stats["changes"]
    assert got[("wbsrun_pollable_queue_depth", "")] == 0
    assert got[("wbsrun_pollable_queue_depth_max", "")] == stats["queue_max"] > 0
    assert got[("wbsrun_pollable_polls_per_second", "")] == stats["polls_per_s"] > 0


def test_a_run_without_the_pollable_refuses_a_plugin_that_imports_it(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    entry = put(tmp_path / "bundle", built_plugins.progress, "watch")
    with pytest.raises(RunError, match=r"progress.poller.progress_pollable: true"):
        _wired_run(tmp_path, _doc(entry, users=1, iterations=1), on(target))
    # Through the library API without a feed at all (no bus): refused the same way.
    with pytest.raises(RunError, match=r"imports wbsrun:progress/pollable@0.1.0"):
        run(tmp_path, _doc(entry, users=1, iterations=1), on(target), wasm=wasm_loader())
    assert routes(target) == {}


def test_a_trapped_instance_s_pollables_are_closed_and_the_next_one_subscribes_anew(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    entry = put(tmp_path / "bundle", built_plugins.progress, "watch")
    doc = _doc(entry, users=1, iterations=3, progress_pollable=True)
    doc["actions"]["boom"] = {"component": "watch", "call": "boom"}
    doc["workflows"]["wf"] = {"steps": [{"ref": "get"}, {"ref": "boom"}, {"ref": "poll"}]}
    doc["components"][-1]["capabilities"] = ["poll", "boom"]

    wired = _wired_run(tmp_path, doc, on(target))
    result = wired.result()

    assert result["errors"] == {"plugin-trap": 3}
    assert routes(target) == {"GET /asset": 3}
    stats = result["engine"]["pollable"]
    # The load's instance (pass 1's trap) and one fresh instance for each later pass: one
    # pollable each, each closed when its instance was dropped.
    assert stats["subscriptions"] == 3
    assert stats["queue_depth"] == 0
    assert wired.feed is not None
    assert wired.feed.depth() == 0
