"""The poller in real runs against the embedded target: health breaches escalate the risk
register, healthy runs stay clear, pass deadlines are watched, and the CLI's JSON result
carries the bus and poller statistics (validated against result-schema.json)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from rich.console import Console

from bus_kit import run_with_bus
from scenario_kit import Doc, act, document, edge, end, graph, http, on
from wbsrun.cli.session import execute
from wbsrun.core.runner import RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"
HEALTH = {"telemetry_field": "telemetry.health.score", "min_score": 0.85, "consecutive_breach": 3}
PRIORITIES = {
    "priorities": [
        {"name": "critical", "match": {"timeline.phase": ["monitoring", "closing"]}, "weight": 1.0},
        {"name": "routine", "match": {"timeline.phase": ["planning", "executing"]}, "weight": 0.6},
        {"name": "backlog", "weight": 0.2},
    ]
}


def two_steps(users: int, **scenario: Any) -> Doc:
    flow = graph(
        act("fetch", "fetch", edge("push")),
        act("push", "push", edge("done")),
        end(),
        on_error=[{"goto": "error_out"}],
        on_timeout=[{"goto": "timeout_out"}],
        **({"timeout": scenario.pop("timeout")} if "timeout" in scenario else {}),
    )
    doc = document(
        {"fetch": http("get"), "push": http("post")},
        flow,
        users=users,
        **scenario,
    )
    doc["load"]["scenarios"][0]["health_threshold"] = HEALTH
    doc["progress"] = {"poller": PRIORITIES}
    return doc


def test_consecutive_unhealthy_closes_escalate_the_risk_register(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(status=500)
    ran = run_with_bus(tmp_path, two_steps(users=6), on(target), poller=True)

    stats = ran.result["engine"]["poller"]
    assert ran.result["tasks"]["failed"] == 6
    assert (stats["breaches"], stats["identified"], stats["escalations"]) == (6, 2, 4)
    flags = sorted(ran.book.get(e, "registers.risk.flag") for e in ran.entries)
    assert flags == ["escalated"] * 4 + ["identified"] * 2
    for entry in ran.entries:
        assert ran.book.get(entry, "telemetry.health.score") < 0.85
        risks = ran.book.get(entry, "registers.risk.entries")
        escalated = ran.book.get(entry, "registers.risk.flag") == "escalated"
        assert len(risks) == (1 if escalated else 0)
    assert stats["served"]["critical"] > 0
    assert stats["live"] == 0


def test_a_healthy_run_scores_every_closed_task_and_raises_no_risk(
    tmp_path: Path, target: TargetProcess
) -> None:
    ran = run_with_bus(tmp_path, two_steps(users=5, iterations=2), on(target), poller=True)

    stats = ran.result["engine"]["poller"]
    assert ran.result["tasks"]["succeeded"] == 10
    assert stats["breaches"] == 0
    assert stats["checks"]["close"] == 10
    assert all(ran.book.get(e, "telemetry.health.score") == 1.0 for e in ran.entries)
    assert all(ran.book.get(e, "registers.risk.flag") == "none" for e in ran.entries)
    # Every check came from a publish here (no deadline passed): each one's delay is recorded.
    assert stats["latency_ms"]["count"] == sum(stats["served"].values())
    assert stats["latency_ms"]["p99"] < 5_000


def test_pass_deadlines_are_watched_and_a_timed_out_pass_is_not_overdue(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=1500)
    ran = run_with_bus(tmp_path, two_steps(users=3, timeout="300ms"), on(target), poller=True)

    stats = ran.result["engine"]["poller"]
    assert ran.result["tasks"]["timed_out"] == 3
    # The executor moved each pass to monitoring.timeout at its deadline: seen, not overdue.
    assert stats["overdue"] == 0
    assert stats["breaches"] == 3  # a timed-out pass closes unhealthy


def test_the_cli_result_carries_bus_and_poller_statistics_and_validates(
    tmp_path: Path, target: TargetProcess
) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    host, port = on(target)[0]
    (bundle / "resource.yaml").write_text(f"ip,port\n{host},{port}\n", encoding="utf-8")
    doc = two_steps(users=4, iterations=2)
    (bundle / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    plan = load_plan(bundle, provides())
    out = tmp_path / "result.json"

    result = execute(
        plan,
        RunOptions(),
        json_out=out,
        log_file=None,
        console=Console(file=io.StringIO()),
        live=False,
        summary=False,
    )

    jsonschema.validate(json.loads(out.read_text("utf-8")), json.loads(SCHEMA.read_text("utf-8")))
    bus, poller = result["engine"]["bus"], result["engine"]["poller"]
    assert bus["published"] >= bus["events"] > 0
    assert bus["delivered"] >= bus["events"]  # one subscriber: the poller
    assert bus["dropped"] == 0
    assert bus["flushes"].get("priority", 0) >= 8  # every close goes at once
    assert poller["checks"]["close"] == 8
    assert poller["breaches"] == 0
    assert poller["latency_ms"]["count"] > 0
