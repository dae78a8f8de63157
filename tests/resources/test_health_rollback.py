"""Health checks against real loopback servers with injected faults: an item whose health fails
mid-run, one that hangs, one that answers 401. Every lease comes back exactly once, rollbacks
show in the workbook and in the progress events, and the runner's counts equal the server's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resource_kit import RecordingSink, health_doc, lease_of
from scenario_kit import Ran, phases, run
from wbsrun.core.runner import Runner
from wbsrun.target import TargetProcess, loopback_hosts


def _items(target: TargetProcess) -> list[tuple[str, int]]:
    return [(h, target.port) for h in target.hosts]


def _pool_is_full_again(ran: Ran, items: int) -> dict[str, Any]:
    pool: dict[str, Any] = ran.result["resources"]["pool"]
    assert pool["active"] == 0
    assert pool["held_at_end"] == 0
    assert pool["leases"] == pool["released"]
    assert pool["release_errors"] == 0
    assert pool["release_failures"] == 0
    p = ran.pools.pools["pool"]
    assert sum(p.holders) == 0
    healthy = [i for i in range(items) if p.healthy[i]]
    assert sorted(p.free) == healthy
    return pool


def _server_counts_match(ran: Ran, target: TargetProcess) -> None:
    served = target.stats()
    req = ran.result["requests"]
    assert served["received"] == req["total"]
    assert served["by_route"].get("GET /health", 0) == req["health_probes"]


def test_an_item_failing_health_mid_run_rolls_its_holder_back_onto_a_healthy_item(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(hosts=loopback_hosts(3))
    target.control(latency_ms=120)
    first = target.hosts[0]
    sink = RecordingSink()

    async def fault(runner: Runner) -> None:
        await asyncio.sleep(0.2)  # both users are on their first pass
        target.control(host=first, fail_health=True)
        await asyncio.sleep(0.6)
        target.control(host=first, fail_health=False)

    ran = run(
        tmp_path,
        health_doc(2, iterations=3),
        _items(target),
        during=fault,
        events=sink,
    )

    tasks = ran.result["tasks"]
    assert tasks["started"] == tasks["succeeded"] == 6
    assert tasks["rollbacks"] >= 1
    pool = _pool_is_full_again(ran, 3)
    assert pool["items_failed"] == 1
    assert pool["items_recovered"] == 1
    assert pool["healthy"] == 3
    assert pool["health_failures"] >= 1
    assert pool["leases"] == pool["released"] == 6 + tasks["rollbacks"]
    rolled = [e for e in ran.entries if "progress.rollback" in {t for *_, t in e.trace}]
    assert rolled
    for entry in rolled:
        # The holder left the failed item and finished on another one.
        assert first not in lease_of(ran.book, entry)
        assert phases(entry)[-1] == "closing.success"
        assert "executing.waiting_resource" in phases(entry)[2:]
        done = ran.actions_done(entry)
        assert done[0] == "get"
        assert done.count("post") >= 2
        # Progress events show the regression: a rollback event at or below earlier progress.
        seen = sink.of(entry.task_id)
        back = [i for i, r in enumerate(seen) if r.field == "rollback"]
        assert back
        assert seen[-1].field == "closed"
    assert ran.log.counts.get("warn", 0) >= 1
    _server_counts_match(ran, target)


def test_rollback_without_a_checkpoint_returns_to_the_pass_start_and_progress_regresses(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(hosts=loopback_hosts(2))
    target.control(latency_ms=150)
    first = target.hosts[0]
    sink = RecordingSink()
    flow = health_doc(1)["workflows"]["wf"]
    flow["nodes"] = [n for n in flow["nodes"] if n["id"] != "cp"]
    flow["nodes"][0]["controls"]["exec"]["transitions"] = [{"to": "push", "condition": "always"}]
    doc = health_doc(
        1,
        flow=flow,
        milestones=[
            {"name": "got", "node": "get", "edge": "get_to_push", "weight": 1},
            {"name": "pushed", "node": "push", "edge": "push_to_push2", "weight": 1},
        ],
    )
    edges = {"get": "get_to_push", "push": "push_to_push2"}
    for node in doc["workflows"]["wf"]["nodes"]:
        if node["id"] in edges:
            node["controls"]["exec"]["transitions"][0]["edge"] = edges[node["id"]]

    async def fault(runner: Runner) -> None:
        await asyncio.sleep(0.33)  # past the first milestone, in the first post
        target.control(host=first, fail_health=True)

    ran = run(tmp_path, doc, _items(target), during=fault, events=sink)

    assert ran.result["tasks"]["succeeded"] == 1
    assert ran.result["tasks"]["rollbacks"] == 1
    (entry,) = ran.entries
    seen = sink.of(entry.task_id)
    rollback = next(i for i, r in enumerate(seen) if r.field == "rollback")
    before = max(r.progress for r in seen[:rollback])
    assert before > 0
    assert seen[rollback].progress == 0.0  # back to the pass start
    assert ran.actions_done(entry)[:1] == ["get"]
    assert ran.actions_done(entry).count("get") == 2  # the pass ran again from its entry
    # Milestones are counted once per task, whatever the rollback undid.
    assert ran.result["progress"]["milestones"]["got"]["reached"] == 1
    assert ran.book.get(entry, "telemetry.milestones.achieved") == ["got", "pushed"]
    assert target.hosts[1] in lease_of(ran.book, entry)
    _pool_is_full_again(ran, 2)
    _server_counts_match(ran, target)


def test_when_no_healthy_item_is_left_the_holder_closes_as_rolled_back(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=150)

    async def fault(runner: Runner) -> None:
        await asyncio.sleep(0.2)
        target.control(fail_health=True)

    ran = run(tmp_path, health_doc(1), _items(target), during=fault)

    assert ran.result["tasks"]["rolled_back"] == 1
    assert ran.result["tasks"]["rollbacks"] == 1
    (entry,) = ran.entries
    assert phases(entry)[-1] == "closing.rollback"
    pool = _pool_is_full_again(ran, 1)
    assert pool["healthy"] == 0
    assert pool["leases"] == pool["released"] == 1
    _server_counts_match(ran, target)


def test_a_hanging_item_fails_its_probe_and_its_holder_resumes_on_another_item(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(hosts=loopback_hosts(2))
    hung = target.hosts[0]
    target.control(host=hung, hang=True)
    doc = health_doc(1, timeout="150ms")
    for node in doc["workflows"]["wf"]["nodes"]:
        if node["type"] == "action":
            node["controls"]["exec"]["timeout"] = "400ms"

    ran = run(tmp_path, doc, _items(target))

    # The first get hung; the probe gave up on the item at ~250 ms, so when the get timed out
    # at 400 ms the item's failure decided: back to the pass start, on the other item.
    tasks = ran.result["tasks"]
    assert tasks["started"] == tasks["succeeded"] == 1
    assert tasks["rollbacks"] == 1
    assert ran.result["errors"] == {"network-timeout": 1}
    assert ran.result["exits"] == {}
    (entry,) = ran.entries
    assert ran.actions_done(entry) == ["get", "get", "post", "post"]
    log = ran.book.get(entry, "execution.action_log")
    assert log[0]["result"] == "network-timeout"
    assert hung not in lease_of(ran.book, entry)
    pool = _pool_is_full_again(ran, 2)
    assert pool["items_failed"] == 1
    assert pool["healthy"] == 1
    assert pool["leases"] == pool["released"] == 2
    _server_counts_match(ran, target)


def test_an_item_answering_401_ends_in_the_permanent_branch_of_the_classified_exit(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(status=401)
    doc = health_doc(2)
    doc["monitoring"]["error_out"] = {
        "classification": {
            "catalog": "progress.errors",
            "field": "{{workbook.execution.evidence.last_event}}",
            "default": "transient",
        },
        "actions": [
            {"when": "transient", "action": "logger.warn", "with": {"message": "transient"}},
            {"when": "permanent", "action": "logger.error", "with": {"message": "permanent"}},
            {
                "when": "any",
                "action": "resource.release",
                "with": {"handles": ["{{workbook.execution.resource_lease}}"]},
            },
        ],
    }
    doc["progress"] = {"errors": {"transient": ["network-timeout"], "permanent": ["unauthorized"]}}

    ran = run(tmp_path, doc, _items(target))

    assert ran.result["tasks"]["failed"] == 2
    assert ran.result["errors"] == {"unauthorized": 2}
    assert ran.result["exits"] == {"error_out": 2}
    assert ran.log.counts.get("error", 0) == 2
    assert ran.log.counts.get("warn", 0) == 0
    for entry in ran.entries:
        assert ran.book.get(entry, "execution.evidence.last_event") == "unauthorized"
    # The exit released the lease; the close found nothing left to give back.
    pool = _pool_is_full_again(ran, 1)
    assert pool["leases"] == pool["released"] == 2
    assert pool["items_failed"] == 0
    _server_counts_match(ran, target)
