"""Scheduling by progress, end to end: two scenarios share one exclusive item over loopback
HTTP against the embedded target, run as `wbsrun run` wires a run (cli/session.py `wire`);
and the error impact analysis of a run whose passes fail."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from wbsrun.cli.session import wire
from wbsrun.core.log import RunLog
from wbsrun.core.runner import RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.errors import ScenarioError
from wbsrun.protocols.registry import provides
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetKnobs, TargetProcess
from wbsrun.telemetry.html.page import render_report

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json").read_text()
)
URL = "http://{{resource.ip}}:{{resource.port}}/asset"


def _flow(n: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {
            "id": f"r{i}",
            "type": "action",
            "action": "get",
            "controls": {"exec": {"transitions": [{"to": f"r{i + 1}" if i + 1 < n else "done"}]}},
        }
        for i in range(n)
    ]
    nodes.append({"id": "done", "type": "terminus", "state": "closing.success"})
    return {"type": "graph", "controls": {"timeout": "10s"}, "nodes": nodes}


def _doc(scheduling: str | None, values: dict[str, float], requests: int = 1) -> dict[str, Any]:
    leasing: dict[str, Any] = {"strategy": "round-robin"}
    if scheduling is not None:
        leasing["scheduling"] = scheduling
    return {
        "version": "1.0",
        "name": "sched",
        "components": [
            {"name": "http", "version": "1.0.0", "kind": "native", "capabilities": ["get"]}
        ],
        "resources": {
            "slot": {
                "type": "pair_pool",
                "config": {"manifest": "./resource.yaml", "parser": {"format": "csv"}},
                "capacity": {"size": 1, "guard": "exclusive"},
                "provider": {"component": "resource-manager", "leasing": leasing},
            }
        },
        "actions": {"get": {"component": "http", "call": "get", "with": {"url": URL}}},
        "workflows": {"wf": _flow(requests)},
        "load": {
            "scenarios": [
                {
                    "name": name,
                    "workflow": "wf",
                    "user-count": 3,
                    "business-value": value,
                    "user": {"inherit": ["slot"]},
                }
                for name, value in values.items()
            ]
        },
    }


def _run(
    tmp_path: Path, doc: dict[str, Any], target: TargetProcess, seconds: float
) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "resource.yaml").write_text(f"ip,port\n127.0.0.1,{target.port}\n", "utf-8")
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    plan = load_plan(tmp_path, provides())
    pools = PoolManager(plan)
    wired = wire(plan, RunOptions(duration=seconds), pools, RunLog(None))
    asyncio.run(wired.runner.run())
    result = wired.result()
    jsonschema.validate(result, SCHEMA)
    return result


def _closed(result: dict[str, Any], name: str) -> int:
    closed: int = result["progress"]["scenarios"][name]["tasks"]["closed"]
    return closed


def test_a_priority_pool_serves_the_high_value_scenario_and_never_starves_the_other(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=5))
    values = {"value": 10.0, "bulk": 1.0}
    fcfs = _run(tmp_path / "fcfs", _doc(None, values), target, 2.0)
    prio = _run(tmp_path / "prio", _doc("priority", values), target, 2.0)
    # FCFS: the same users and passes, so about the same share each.
    assert _closed(fcfs, "value") < 2 * _closed(fcfs, "bulk")
    assert "scheduling" not in fcfs
    # Priority: the value scenario takes most grants; bulk still gets the guarded ones.
    assert _closed(prio, "value") > 4 * _closed(prio, "bulk")
    assert _closed(prio, "bulk") >= 3
    pool = prio["scheduling"]["pools"]["slot"]
    assert pool["reordered"] > 0
    assert pool["starvation_guard"] > 0
    assert pool["max_bypassed"] <= 16
    assert pool["lease_s"] > 0
    assert prio["scheduling"]["priorities"]["value"] >= 10.0
    assert 1.0 <= prio["scheduling"]["priorities"]["bulk"] <= 2.0
    # Recomputed from health while the run went (before the first update: no health).
    health = prio["scheduling"]["health"]
    assert set(health) == {"value", "bulk"}
    assert all(0.0 < h <= 1.0 for h in health.values())
    assert prio["scheduling"]["priorities"]["bulk"] == pytest.approx(2.0 - health["bulk"], abs=1e-3)
    html = render_report(prio)
    assert 'id="scheduling"' in html
    assert "starvation_guard" in html


def test_business_value_must_be_a_positive_number(tmp_path: Path) -> None:
    doc = _doc("priority", {"value": 0.0})
    (tmp_path / "resource.yaml").write_text("ip,port\n127.0.0.1,1\n", "utf-8")
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    with pytest.raises(ScenarioError) as info:
        load_plan(tmp_path, provides())
    text = info.value.format()
    # Where (file, line, the key), the value and what was expected.
    assert "script.yaml:" in text
    assert "business-value" in text
    assert "found: 0.0" in text


def test_error_impact_counts_the_progress_and_time_each_code_cost(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    """Passes of 4 requests against a target that fails a third of its answers: the failed
    passes are counted under their code, with the progress they did not deliver."""
    target = target_factory(knobs=TargetKnobs(latency_ms=2, error_rate=0.35), seed=7)
    result = _run(tmp_path, _doc(None, {"only": 1.0}, requests=4), target, 1.5)
    impact = result["impact"]
    failed = result["tasks"]["failed"] + result["tasks"]["timed_out"]
    assert failed > 0
    assert impact["passes_failed"] == failed == sum(c["passes"] for c in impact["codes"].values())
    assert set(impact["codes"]) <= set(result["errors"])
    for c in impact["codes"].values():
        # Each failed pass lost between nothing and all of a pass, and took some time.
        assert 0 < c["progress_lost"] <= c["passes"]
        assert c["seconds"] > 0
    assert 0 < impact["time_share"] < 1
    assert impact["seconds"] <= impact["pass_seconds"]
    html = render_report(result)
    assert 'id="impact"' in html
