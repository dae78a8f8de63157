"""A scenario gives the same saved http results and the same counts in its JSON result whichever
transport runs it: successes, a 500 routed to the error exit, a timeout, a refused connection."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from scenario_kit import act, document, edge, end, graph, http, on, run
from wbsrun.core.runner import RunOptions
from wbsrun.target import TargetProcess

TIMING = ("latency", "duration", "elapsed", "_at", "rate", "eta", "per_s", "started", "ms")


def counts(value: Any) -> Any:
    """The result without anything that depends on the clock."""
    if isinstance(value, dict):
        return {k: counts(v) for k, v in value.items() if not any(word in k for word in TIMING)}
    if isinstance(value, list):
        return [counts(v) for v in value]
    return value if not isinstance(value, float) else None


def received_only(value: Any) -> Any:
    """The result with each `bytes` figure's `sent` left out: each transport sends its own
    default headers (User-Agent, Accept), so the request bytes differ; the answers do not."""
    if isinstance(value, dict):
        return {
            k: (received_only(v) if k != "bytes" else {"received": v["received"]})
            for k, v in value.items()
        }
    return value


def without_clock(result: Any) -> dict[str, Any]:
    out = {k: v for k, v in result.items() if k != "latency_ms"}
    out["headers"] = {k: v for k, v in out["headers"].items() if k != "date"}
    return out


def scenario(refused_url: str) -> dict[str, Any]:
    actions = {
        "fetch": http("get", "/asset", save="asset"),
        "push": {
            **http("post", "/asset"),
            "with": {
                "url": "http://{{resource.ip}}:{{resource.port}}/asset",
                "body": "{{asset.body}}",
                "headers": {"content-type": "application/json"},
            },
        },
        "slow": {
            **http("get", "/asset"),
            "with": {"url": "http://{{resource.ip}}:{{resource.port}}/asset", "timeout": "50ms"},
        },
        "gone": {**http("get"), "with": {"url": refused_url}},
    }
    flow = graph(
        act("fetch", "fetch", edge("push")),
        act("push", "push", edge("slow")),
        act("slow", "slow", edge("gone"), on_error=[{"goto": "gone"}]),
        act("gone", "gone", edge("done"), on_error=[{"goto": "done"}]),
        end(),
    )
    return document(actions, flow, users=3, iterations=2)


def test_scenario_results_and_counts_do_not_depend_on_the_transport(
    tmp_path: Path, target: TargetProcess
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}/"
        results = {}
        saved = {}
        for transport in ("fast", "aiohttp"):
            where = tmp_path / transport
            where.mkdir()
            # Every GET answers after 120 ms: `slow` (50 ms timeout) always times out.
            target.control(latency_ms=120)
            ran = run(where, scenario(refused), on(target), RunOptions(transport=transport))
            # Error messages are each transport's own words; which errors, where and how
            # often are compared.
            samples = [{**m, "message": None} for m in ran.result["error_messages"]]
            results[transport] = received_only(
                counts({**ran.result, "source": None, "error_messages": samples})
            )
            saved[transport] = [without_clock(e.vars["asset"]) for e in ran.entries]
    assert results["fast"] == results["aiohttp"]
    assert saved["fast"] == saved["aiohttp"]
    # 3 users x 2 passes: 6 timeouts (`slow`) and 6 refused connections (`gone`).
    assert results["fast"]["errors"] == {"network-timeout": 6, "resource-unavailable": 6}
    assert results["fast"]["requests"]["total"] == 24
    # Status and bytes of the requests, whichever transport (a timeout or a refused
    # connection has no status: `none`).
    assert results["fast"]["requests"]["status"] == {"2xx": 12, "none": 12}
    assert results["fast"]["requests"]["status_codes"] == {"200": 12}
    assert results["fast"]["requests"]["bytes"]["received"] > 0
