"""The result's request figures on a real run of two scenarios against the embedded target:
per action, per scenario and over all requests, the counts, status codes, bytes and latency
summaries agree with each other and with what the target served, and match the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from scenario_kit import act, document, edge, end, graph, http, on, routes, run
from wbsrun.core.stats import ActionStats, Histogram, RunStats
from wbsrun.progress import run_health
from wbsrun.target import TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"
NINE = ["count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"]


def two_scenarios() -> dict[str, Any]:
    """`s`: 2 users × 2 passes fetching /asset (200); `t`: 1 user × 3 passes asking for
    /nothing (404, so each pass ends by the error exit, whose logger call sends nothing)."""
    doc = document(
        {"fetch": http("get", "/asset"), "missing": http("get", "/nothing")},
        graph(act("fetch", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}]),
        users=2,
        iterations=2,
    )
    doc["workflows"]["wf2"] = graph(
        act("missing", "missing", edge("done")), end(), on_error=[{"goto": "error_out"}]
    )
    first = doc["load"]["scenarios"][0]
    doc["load"]["scenarios"].append(
        {**first, "name": "t", "workflow": "wf2", "user-count": 1, "iterations": 3}
    )
    return doc


def test_two_scenarios_report_their_own_and_the_joint_request_figures(
    tmp_path: Path, target: TargetProcess
) -> None:
    ran = run(tmp_path, two_scenarios(), on(target))
    result = ran.result
    jsonschema.validate(result, json.loads(SCHEMA.read_text()))
    served = routes(target)
    req = result["requests"]
    assert (req["total"], req["ok"], req["failed"]) == (7, 4, 3)
    assert req["total"] == sum(served.values())
    assert req["failed_rate"] == round(3 / 7, 6)
    assert req["status"] == {"2xx": 4, "4xx": 3}
    assert req["status_codes"] == {"200": 4, "404": 3}
    assert list(req["latency_ms"]) == NINE
    assert req["latency_ms"]["count"] == 7
    assert req["bytes"]["sent"] > 0
    assert req["bytes"]["received"] > 0

    s, t = result["scenarios"]["s"], result["scenarios"]["t"]
    assert s["requests"] | {"per_second": 0} == {
        "total": 4,
        "ok": 4,
        "failed": 0,
        "interrupted": 0,
        "failed_rate": 0.0,
        "per_second": 0,
    }
    assert (t["requests"]["total"], t["requests"]["failed"], t["requests"]["failed_rate"]) == (
        3,
        3,
        1.0,
    )
    assert (s["status_codes"], t["status_codes"]) == ({"200": 4}, {"404": 3})
    assert (s["latency_ms"]["count"], t["latency_ms"]["count"]) == (4, 3)
    assert s["latency_ms"]["min"] <= s["latency_ms"]["p50"] <= s["latency_ms"]["max"]
    # The scenarios add up to all requests: the same requests, counted once each.
    for way in ("sent", "received"):
        assert s["bytes"][way] + t["bytes"][way] == req["bytes"][way]
    assert req["latency_ms"]["max"] == max(s["latency_ms"]["max"], t["latency_ms"]["max"])
    assert req["latency_ms"]["min"] == min(s["latency_ms"]["min"], t["latency_ms"]["min"])

    fetch, missing = result["actions"]["fetch"], result["actions"]["missing"]
    assert (fetch["count"], fetch["requests"], fetch["status_codes"]) == (4, 4, {"200": 4})
    assert (missing["failed"], missing["failed_rate"], missing["status"]) == (3, 1.0, {"4xx": 3})
    assert fetch["bytes"] == s["bytes"]
    assert list(fetch["latency_ms"]) == NINE
    # The error exit's logger calls are actions without requests: no status, no bytes.
    logger = result["actions"]["logger.warn"]
    assert (logger["count"], logger["requests"], logger["status"]) == (3, 0, {})
    assert logger["bytes"] == {"sent": 0, "received": 0}

    progress = result["progress"]
    # No time line (count-bounded, no duration): nothing was due by a time, no deviation.
    assert progress["time"] is None
    program = {k: result["health"][k] for k in ("score", "progress", "error_rate", "deviation")}
    assert program == run_health(progress["work"], None, 7, 3).to_json()


def _filled(values: list[float]) -> Histogram:
    h = Histogram()
    for v in values:
        h.record(v)
    return h


latencies = st.lists(
    st.floats(min_value=0.0, max_value=3.6e6, allow_nan=False, allow_infinity=False),
    max_size=60,
)


@given(latencies, latencies)
@settings(max_examples=examples(200))
def test_merging_two_histograms_equals_recording_both_into_one(
    a: list[float], b: list[float]
) -> None:
    merged = _filled(a)
    merged.merge(_filled(b))
    whole = _filled(a + b)
    assert (merged.buckets, merged.count, merged.min, merged.max) == (
        whole.buckets[: len(merged.buckets)] + [0] * (len(merged.buckets) - len(whole.buckets)),
        whole.count,
        whole.min,
        whole.max,
    )
    assert any(merged.buckets) == bool(a + b)
    qs = (0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)
    assert merged.quantiles(qs) == whole.quantiles(qs)
    # The total is a float sum: the same values added in another order.
    assert abs(merged.total - whole.total) <= 1e-9 * max(1.0, abs(whole.total))


@given(latencies, latencies)
@settings(max_examples=examples(100))
def test_a_diff_of_two_copies_holds_exactly_the_values_recorded_between(
    a: list[float], b: list[float]
) -> None:
    h = _filled(a)
    before = h.copy()
    for v in b:
        h.record(v)
    since = h.diff(before)
    alone = _filled(b)
    assert since.count == alone.count
    qs = (0.5, 0.9, 0.99)
    if b:
        lo, hi = since.min, since.max
        # Bucket bounds (to the last bits of a value exactly on an edge).
        assert lo <= min(b) * (1 + 1e-12)
        assert hi >= max(b) * (1 - 1e-12)
        got = since.quantiles(qs)
        exact = alone.quantiles(qs)
        # Same buckets; the estimates may differ only by the clamp to each one's extremes.
        assert all(lo <= g <= hi for g in got)
        assert all(abs(g - e) <= 0.0101 * e + 2e-5 for g, e in zip(got, exact, strict=True))


def test_run_stats_merge_the_actions_that_sent_requests() -> None:
    stats = RunStats()
    one = stats.action("one")
    one.requests, one.status, one.bytes_sent = 2, {200: 1, 0: 1}, 10
    one.latency.record(1.0)
    two = stats.action("two")
    two.requests, two.status, two.bytes_received = 1, {200: 1}, 7
    two.latency.record(3.0)
    stats.action("log").latency.record(0.1)  # no requests: left out
    joint: ActionStats = stats.all_requests()
    assert (joint.requests, joint.status, joint.bytes_sent, joint.bytes_received) == (
        3,
        {200: 2, 0: 1},
        10,
        7,
    )
    assert (joint.latency.count, joint.latency.min, joint.latency.max) == (2, 1.0, 3.0)
    assert stats.action("one").status == {200: 1, 0: 1}  # the parts are left as they were
