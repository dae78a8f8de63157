"""The delta format: figures counted by several workers, reported as deltas at any moments and
merged by the coordinator, equal those of one `RunStats` that counted everything (counters,
per-status and per-action figures, histogram buckets, exact min and max, error samples under
their caps); and `merge_json` adds the per-process sections as documented."""

from __future__ import annotations

import math
import pickle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.cluster import DeltaTaker, merge_delta, merge_json, totals
from wbsrun.cluster.merge import ClusterState
from wbsrun.cluster.protocol import Report
from wbsrun.core.stats import MAX_MESSAGES_PER_CODE, ArrivalStats, Histogram, RunStats
from wbsrun.progress.aggregate import ScenarioSums

ACTIONS = ("get", "post", "put")

# One event: (worker, action, latency ms, HTTP status, error message or None), or a report.
event = st.one_of(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(ACTIONS),
        st.floats(0.0, 5_000.0, allow_nan=False),
        st.sampled_from((200, 201, 404, 500, 0)),
        st.one_of(st.none(), st.sampled_from(("timeout", "refused", "boom")), st.text(max_size=3)),
    ),
    st.tuples(st.just("report"), st.integers(0, 2)),
)


def _record(stats: RunStats, action: str, ms: float, status: int, error: str | None) -> None:
    stats.requests_total += 1
    a = stats.action(action)
    a.count += 1
    a.requests += 1
    a.latency.record(ms)
    a.status[status] = a.status.get(status, 0) + 1
    a.bytes_received += 100
    s = stats.scenario_action("main", action)
    s.count += 1
    s.latency.record(ms)
    if error is None:
        stats.requests_ok += 1
        a.ok += 1
        a.checks.setdefault("ok", [0, 0])[0] += 1
    else:
        stats.requests_failed += 1
        a.failed += 1
        a.checks.setdefault("ok", [0, 0])[1] += 1
        stats.count_error("http", action, error, 1_000.0 + ms)
        stats.exits["failed"] = stats.exits.get("failed", 0) + 1
        # The pass failed on it: the error impact (the latency's last digit as its progress).
        stats.count_impact(error[:1] or "x", (ms % 10) / 10, ms / 1000)
    stats.pass_seconds += ms / 1000


def _hist(h: Histogram) -> tuple[object, ...]:
    buckets = list(h.buckets)
    while buckets and not buckets[-1]:
        buckets.pop()
    return (tuple(buckets), h.count, h.min, h.max)


@settings(max_examples=examples(150))
@given(st.lists(event, max_size=120))
def test_merged_deltas_equal_one_process_counting_everything(events: list[tuple[Any, ...]]) -> None:
    one = RunStats()
    workers = [RunStats() for _ in range(3)]
    takers = [DeltaTaker() for _ in range(3)]
    merged = RunStats()
    for e in events:
        if e[0] == "report":
            merge_delta(merged, takers[e[1]].take(workers[e[1]]))
            continue
        w, action, ms, status, error = e
        _record(one, action, ms, status, error)
        _record(workers[w], action, ms, status, error)
    for w in range(3):
        merge_delta(merged, takers[w].take(workers[w]))
    assert totals(merged) == totals(one)
    assert merged.exits == one.exits
    assert merged.impact.keys() == one.impact.keys()
    for code, imp in one.impact.items():
        got = merged.impact[code]
        assert got.passes == imp.passes
        assert math.isclose(got.progress_lost, imp.progress_lost, abs_tol=1e-6)
        assert math.isclose(got.seconds, imp.seconds, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(merged.pass_seconds, one.pass_seconds, rel_tol=1e-9, abs_tol=1e-6)
    for name, a in one.actions.items():
        m = merged.actions[name]
        assert (m.count, m.ok, m.failed, m.requests, m.status, m.checks, m.bytes_received) == (
            a.count,
            a.ok,
            a.failed,
            a.requests,
            a.status,
            a.checks,
            a.bytes_received,
        )
        assert _hist(m.latency) == _hist(a.latency)
        assert math.isclose(m.latency.total, a.latency.total, rel_tol=1e-9, abs_tol=1e-6)
        assert {k: v for k, v in m.latency.summary().items() if k != "mean"} == {
            k: v for k, v in a.latency.summary().items() if k != "mean"
        }
        assert _hist(merged.scenarios["main"][name].latency) == _hist(
            one.scenarios["main"][name].latency
        )
    # Every error counted once, in a sample; one worker never sees the run's caps, so the
    # merge applies them: at most MAX_MESSAGES_PER_CODE distinct messages per (action, code).
    assert sum(s.count for s in merged.error_samples.values()) == sum(one.errors.values())
    kept: dict[tuple[str | None, str], int] = {}
    for action, code, message in merged.error_samples:
        if message is not None:
            kept[(action, code)] = kept.get((action, code), 0) + 1
    assert all(n <= MAX_MESSAGES_PER_CODE for n in kept.values())


def test_a_delta_is_empty_when_nothing_was_counted_since_the_last() -> None:
    stats = RunStats()
    _record(stats, "get", 3.0, 200, None)
    taker = DeltaTaker()
    first = taker.take(stats)
    again = taker.take(stats)
    assert first.counters == {"requests_total": 1, "requests_ok": 1}
    assert again.counters == {}
    assert again.actions == {}
    assert again.samples == []


def test_error_messages_beyond_the_cap_go_to_the_other_sample_when_merged() -> None:
    merged = RunStats()
    for w in range(2):
        stats = RunStats()
        for k in range(MAX_MESSAGES_PER_CODE):
            stats.count_error("http", "get", f"w{w} message {k}", 5.0)
        merge_delta(merged, DeltaTaker().take(stats))
    assert merged.errors == {"http": 2 * MAX_MESSAGES_PER_CODE}
    other = merged.error_samples[("get", "http", None)]
    assert other.count == MAX_MESSAGES_PER_CODE


def test_arrival_gauges_are_the_sum_of_each_workers_latest() -> None:
    state = ClusterState(2)
    for w, (rate, planned) in enumerate(((30.0, 300), (20.0, 200))):
        stats = RunStats()
        stats.arrivals["open"] = ArrivalStats(rate, planned, started=5, duration=10.0)
        report = Report(w, 1, DeltaTaker().take(stats), {}, {}, 0, 0.0, 0.0, 1.0, 1, 0, False)
        state.apply(report)
    a = state.stats.arrivals["open"]
    assert (a.asked_per_second, a.planned, a.started, a.duration) == (50.0, 500, 10, 10.0)


def test_merge_json_adds_counts_and_seconds_keeps_peaks_and_joins_lists() -> None:
    a = {
        "n": 2,
        "seconds": 1.5,
        "errors": ["x"],
        "mode": "aggregated",
        "sub": {"k": 1},
        "ok": False,
        "latency_ms": {"p50": 1.5, "p99": 9.0},
        "max_batch": 7,
        "queue_max": 3,
        "status": {200: 4},
    }
    b: dict[str, Any] = {
        "n": 3,
        "seconds": 0.25,
        "errors": ["y"],
        "mode": "aggregated",
        "sub": {"k": 2, "j": 1},
        "latency_ms": {"p50": 2.5, "p99": 4.0},
        "max_batch": 5,
        "queue_max": 4,
        "status": {200: 1, 404: 2},
    }
    assert merge_json(a, b) == {
        "n": 5,
        "seconds": 1.75,
        "errors": ["x", "y"],
        "mode": "aggregated",
        "sub": {"k": 3, "j": 1},
        "ok": False,
        "latency_ms": {"p50": 2.5, "p99": 9.0},
        "max_batch": 7,
        "queue_max": 4,
        "status": {200: 5, 404: 2},
    }
    # The merged document holds copies, not the report's own objects.
    assert merge_json({}, b)["sub"] is not b["sub"]


def _final(worker: int, stats: RunStats, own: RunStats) -> Report:
    return Report(
        worker, 1, DeltaTaker().take(stats), {}, {}, 0, 0.0, 0.0, 1.0, 2, 0, False,
        final=True, totals=totals(own),
    )  # fmt: skip


def test_the_end_check_is_exact_and_names_any_difference() -> None:
    counted = RunStats()
    _record(counted, "get", 2.0, 200, None)
    state = ClusterState(2)
    state.apply(_final(0, counted, counted))
    state.apply(_final(1, counted, counted))
    assert state.check() == []
    # A worker whose own count differs from what its deltas brought (a lost report).
    more = RunStats()
    _record(more, "get", 2.0, 200, None)
    _record(more, "get", 3.0, 200, None)
    lossy = ClusterState(2)
    lossy.apply(_final(0, counted, counted))
    lossy.apply(_final(1, counted, more))
    problems = lossy.check()
    assert "requests_total: merged 2, workers counted 3" in problems
    assert any(p.startswith("actions:") for p in problems)


def test_a_report_crosses_a_process_boundary_intact_on_either_build() -> None:
    # Workers pickle their reports (a pipe, or Ray). On the compiled build the stats and the
    # progress sums are mypyc classes: a frozen one could not be unpickled, and the workers
    # of a compiled `--workers` run then died before their first report.
    stats = RunStats()
    for i, status in enumerate((200, 404, 500)):
        _record(stats, ACTIONS[i], 10.0 * (i + 1), status, None if status == 200 else "boom")
    stats.arrivals["main"] = ArrivalStats(planned=5, started=4, dropped=1, duration=2.0)
    stats.arrivals["main"].delay.record(3.0)
    sums = ScenarioSums(1.5, 1.0, 4, 3, 2, 1, 0.25, {"probe": 3})
    report = Report(
        worker=1,
        seq=7,
        stats=DeltaTaker().take(stats),
        progress={"main": sums},
        active={"main": 2},
        inflight=1,
        inflight_progress=0.5,
        progress_done=2.0,
        elapsed=1.25,
        users=2,
        leases=0,
        interrupted=False,
    )
    back = pickle.loads(pickle.dumps(report))
    assert back.progress == {"main": sums}
    merged, again = RunStats(), RunStats()
    merge_delta(merged, report.stats)
    merge_delta(again, back.stats)
    assert totals(again) == totals(merged) == totals(stats)
    assert _hist(again.actions["get"].latency) == _hist(stats.actions["get"].latency)
    assert again.arrivals["main"].dropped == 1
    assert _hist(again.arrivals["main"].delay) == _hist(stats.arrivals["main"].delay)
