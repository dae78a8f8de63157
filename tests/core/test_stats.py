"""Latency histograms and run counters: percentiles from the bucket formula.

A value of `ms` milliseconds lands in bucket ⌊log(1 + 1000·ms) / log 1.01⌋, which holds
[lo, hi) = [(1.01^i − 1) / 1000, (1.01^(i+1) − 1) / 1000); a percentile is the one of nearest
rank (the smallest value with at least ⌈q·count⌉ values at or below it), estimated by
2·lo·hi / (lo + hi) of its bucket (the point with the least relative error to any value in
[lo, hi)), clamped to [min, max]; rank 1 is the exact minimum, the last rank the exact
maximum. `_point` below is that formula, written out independently
of the module.
"""

from __future__ import annotations

import math

import pytest

from wbsrun.core.stats import (
    MAX_MESSAGES,
    MAX_MESSAGES_PER_CODE,
    MESSAGE_CHARS,
    ActionStats,
    Histogram,
    RunStats,
)


def _bounds(ms: float) -> tuple[float, float]:
    """The bounds (ms) of the 1 %-wide bucket that holds `ms`."""
    idx = math.floor(math.log(1.0 + ms * 1000.0) / math.log(1.01)) if ms > 0 else 0
    return (
        math.expm1(idx * math.log(1.01)) / 1000.0,
        math.expm1((idx + 1) * math.log(1.01)) / 1000.0,
    )


def _point(ms: float) -> float:
    """What a percentile that falls in the bucket of `ms` reports (before clamping)."""
    lo, hi = _bounds(ms)
    return 2.0 * lo * hi / (lo + hi) if lo > 0 else 0.0


def _histogram(*values: float) -> Histogram:
    h = Histogram()
    for v in values:
        h.record(v)
    return h


_ZEROS = {
    "count": 0,
    "min": 0.0,
    "mean": 0.0,
    "p50": 0.0,
    "p90": 0.0,
    "p95": 0.0,
    "p99": 0.0,
    "p99.9": 0.0,
    "max": 0.0,
}


def test_an_empty_histogram_reports_zeros() -> None:
    h = Histogram()
    assert h.quantile(0.5) == 0.0
    assert h.summary() == _ZEROS


def test_the_median_of_two_values_is_the_lower_ones_bucket() -> None:
    # Rank ⌈0.5 · 2⌉ = 1 is the first value: p50 of [10, 20] ms is in 10's bucket.
    h = _histogram(20.0, 10.0, 30.0, 5.0)
    assert h.quantile(0.5) == pytest.approx(_point(10.0), rel=1e-12)
    assert h.quantile(0.5) == pytest.approx(10.0, rel=0.005)


def test_a_percentile_is_within_half_a_percent_from_0_2_ms_and_one_from_1_us() -> None:
    values = [0.001 * 1.37**k for k in range(40)]  # 1 µs to ~200 s
    for v in values:
        h = _histogram(v / 2.0, v, v * 3.0)  # min and max elsewhere, so no clamp applies
        got = h.quantile(0.5)
        assert got == pytest.approx(_point(v), rel=1e-12)
        lo, hi = _bounds(v)
        assert lo <= got < hi
        assert got == pytest.approx(v, rel=0.005 if v >= 0.2 else 0.01)


def test_a_percentile_stays_within_the_exact_minimum_and_maximum() -> None:
    h = _histogram(10.0)
    assert h.quantile(0.01) == 10.0
    assert h.quantile(0.99) == 10.0
    assert h.quantile(1.0) == 10.0


def test_a_zero_latency_lands_in_the_first_bucket() -> None:
    h = _histogram(0.0, 0.0, 5.0)
    assert h.buckets[0] == 2
    assert (h.quantile(0.5), h.min) == (0.0, 0.0)


def test_the_summary_reports_count_min_mean_percentiles_and_max_in_ms() -> None:
    h = _histogram(*(float(v) for v in range(100, 0, -1)))  # 1 .. 100 ms
    assert h.summary() == {
        "count": 100,
        "min": 1.0,
        "mean": 50.5,
        "p50": round(_point(50.0), 3),
        "p90": round(_point(90.0), 3),
        "p95": round(_point(95.0), 3),
        "p99": round(_point(99.0), 3),
        "p99.9": 100.0,  # rank ⌈99.9⌉ = 100: the maximum's bucket, clamped to it
        "max": 100.0,
    }


def test_merging_adds_counts_and_totals_and_keeps_the_extremes() -> None:
    small = _histogram(1.0, 2.0)
    large = _histogram(3000.0)  # a longer bucket list than `small`
    small.merge(large)
    assert (small.count, small.total, small.min, small.max) == (3, 3003.0, 1.0, 3000.0)
    assert small.quantile(1.0 / 3.0) == 1.0  # rank 1: the exact minimum
    assert small.quantile(2.0 / 3.0) == pytest.approx(_point(2.0), rel=1e-12)
    assert small.quantile(1.0) == 3000.0
    # The other way round: a shorter list merges into a longer one, the extremes stay.
    large.merge(_histogram(1.0, 2.0))
    assert (large.count, large.total, large.min, large.max) == (3, 3003.0, 1.0, 3000.0)
    assert large.summary() == small.summary()


def test_a_copy_is_independent_and_a_diff_holds_what_was_recorded_since() -> None:
    h = _histogram(1.0, 500.0)
    before = h.copy()
    assert (before.buckets, before.count, before.total, before.min, before.max) == (
        h.buckets,
        2,
        501.0,
        1.0,
        500.0,
    )
    for v in (2.0, 20.0, 200.0):
        h.record(v)
    assert before.count == 2
    assert before.buckets is not h.buckets
    since = h.diff(before)
    assert since.count == 3
    assert since.total == pytest.approx(222.0)
    assert since.quantile(0.5) == pytest.approx(_point(20.0), rel=1e-12)
    # The interval's extremes are its lowest and highest buckets' bounds (exact ones not kept).
    assert since.min == pytest.approx(_bounds(2.0)[0], rel=1e-12)
    assert since.max == pytest.approx(_bounds(200.0)[1], rel=1e-12)
    # ... within the whole histogram's extremes.
    h.record(0.5)
    assert h.diff(before).min == 0.5
    assert h.diff(h.copy()).count == 0
    assert h.diff(h.copy()).summary() == _ZEROS
    assert (h.count, h.min, h.max) == (6, 0.5, 500.0)


def test_latency_over_all_or_some_actions_merges_their_histograms() -> None:
    stats = RunStats()
    stats.action("a").latency.record(1.0)
    stats.action("b").latency.record(5.0)
    stats.action("b").latency.record(7.0)
    assert stats.action("b") is stats.actions["b"]
    assert (stats.latency_all().count, stats.latency_all().max) == (3, 7.0)
    only_a = stats.latency_all(["a"])
    assert (only_a.count, only_a.total, only_a.max) == (1, 1.0, 1.0)


def test_errors_and_exits_are_counted_per_name() -> None:
    stats = RunStats()
    for code in ("timeout", "refused", "timeout"):
        stats.count_error(code, "a", f"{code} happened", 0.0)
    stats.count_exit("done")
    stats.count_exit("done")
    assert stats.errors == {"timeout": 2, "refused": 1}
    assert stats.exits == {"done": 2}


def test_the_summary_rounds_each_figure_to_the_microsecond() -> None:
    h = _histogram(1.23456, 2.34567, 3.45678, 7.65432)
    summary = h.summary()
    assert summary["p50"] == round(_point(2.34567), 3)
    assert (summary["min"], summary["max"], summary["p99"]) == (1.235, 7.654, 7.654)
    assert summary["mean"] == round((1.23456 + 2.34567 + 3.45678 + 7.65432) / 4, 3)
    assert round(_point(2.34567), 3) != round(_point(2.34567), 4)


def test_merging_adds_the_counts_of_buckets_both_histograms_hold() -> None:
    ours = _histogram(1.0, 1.0)
    ours.merge(_histogram(1.0, 3000.0))
    # Three of four values at 1 ms: the median and the 75th percentile are 1 ms's bucket.
    assert ours.quantile(0.5) == pytest.approx(_point(1.0), rel=1e-12)
    assert ours.quantile(0.75) == pytest.approx(_point(1.0), rel=1e-12)
    assert ours.quantile(0.76) == 3000.0


def test_a_negative_latency_from_a_clock_step_counts_in_the_first_bucket() -> None:
    h = _histogram(-1.0, 4.0)
    assert h.buckets[0] == 1
    assert (h.count, h.total, h.min, h.max) == (2, 3.0, -1.0, 4.0)


# -- error message samples -----------------------------------------------------------------------


def _samples(stats: RunStats) -> dict[tuple[str | None, str, str | None], tuple[object, ...]]:
    """Each sample as (action, code, message, count, first_at, last_at), by its key."""
    return {
        key: (s.action, s.code, s.message, s.count, s.first_at, s.last_at)
        for key, s in stats.error_samples.items()
    }


def test_each_distinct_message_is_a_sample_counted_with_its_first_and_last_time() -> None:
    stats = RunStats()
    stats.count_error("timeout", "fetch", "no answer in 5s", 10.0)
    stats.count_error("refused", "fetch", "connection refused", 11.0)
    stats.count_error("timeout", "fetch", "no answer in 5s", 12.5)
    stats.count_error("timeout", None, "no answer in 5s", 13.0)
    stats.count_error("timeout", "fetch", "no answer in 5s", 14.0)
    assert _samples(stats) == {
        ("fetch", "timeout", "no answer in 5s"): (
            "fetch",
            "timeout",
            "no answer in 5s",
            3,
            10.0,
            14.0,
        ),
        ("fetch", "refused", "connection refused"): (
            "fetch",
            "refused",
            "connection refused",
            1,
            11.0,
            11.0,
        ),
        (None, "timeout", "no answer in 5s"): (None, "timeout", "no answer in 5s", 1, 13.0, 13.0),
    }
    assert stats.errors == {"timeout": 4, "refused": 1}


def test_a_message_is_kept_by_its_first_message_chars_characters() -> None:
    stats = RunStats()
    head = "x" * (MESSAGE_CHARS - 1)
    stats.count_error("e", "a", head + "1", 1.0)  # exactly MESSAGE_CHARS: kept whole
    stats.count_error("e", "a", head + "2 and more", 2.0)  # cut to head + "2"
    stats.count_error("e", "a", head + "2 and other text", 3.0)  # the same cut: the same sample
    assert _samples(stats) == {
        ("a", "e", head + "1"): ("a", "e", head + "1", 1, 1.0, 1.0),
        ("a", "e", head + "2"): ("a", "e", head + "2", 2, 2.0, 3.0),
    }


def test_each_action_and_code_keeps_its_own_max_messages_then_counts_the_rest_as_other() -> None:
    stats = RunStats()
    for pair in (("a", "e"), ("a", "f"), ("b", "e")):
        action, code = pair
        for m in range(MAX_MESSAGES_PER_CODE + 3):
            stats.count_error(code, action, f"message {m}", float(m))
    stats.count_error("e", "a", "message 0", 99.0)  # a kept message still counts in its sample
    samples = _samples(stats)
    for action, code in (("a", "e"), ("a", "f"), ("b", "e")):
        kept = {m for (a, c, m) in samples if (a, c) == (action, code) and m is not None}
        assert kept == {f"message {m}" for m in range(MAX_MESSAGES_PER_CODE)}
        first, last = float(MAX_MESSAGES_PER_CODE), float(MAX_MESSAGES_PER_CODE + 2)
        assert samples[(action, code, None)] == (action, code, None, 3, first, last)
    assert samples[("a", "e", "message 0")] == ("a", "e", "message 0", 2, 0.0, 99.0)
    assert stats.errors == {
        "e": 2 * (MAX_MESSAGES_PER_CODE + 3) + 1,
        "f": MAX_MESSAGES_PER_CODE + 3,
    }


def test_the_run_keeps_max_messages_in_all_then_counts_new_ones_as_other() -> None:
    stats = RunStats()
    pairs, rest = divmod(MAX_MESSAGES, MAX_MESSAGES_PER_CODE)
    assert rest == 0  # every pair below fills its own cap, and together they fill the run's
    for p in range(pairs):
        for m in range(MAX_MESSAGES_PER_CODE):
            stats.count_error("e", f"act{p}", f"message {m}", 1.0)
    assert len(stats.error_samples) == MAX_MESSAGES
    stats.count_error("e", "new", "first message", 2.0)
    stats.count_error("e", "new", "second message", 3.0)
    stats.count_error("e", "act0", "message 0", 4.0)  # kept before: still its own sample
    samples = _samples(stats)
    assert len(samples) == MAX_MESSAGES + 1
    assert samples[("new", "e", None)] == ("new", "e", None, 2, 2.0, 3.0)
    assert samples[("act0", "e", "message 0")] == ("act0", "e", "message 0", 2, 1.0, 4.0)


def _action(seed: int) -> ActionStats:
    """An action's figures with every counter set, distinct per seed."""
    a = ActionStats(
        count=10 + seed,
        ok=7 + seed,
        failed=3 + seed,
        interrupted=1 + seed,
        requests=11 + seed,
        requests_failed=2 + seed,
        requests_interrupted=4 + seed,
        bytes_sent=100 + seed,
        bytes_received=1000 + seed,
    )
    a.status = {200: 5 + seed, 0: seed + 1}
    a.checks = {"status": [3 + seed, 1], f"only-{seed}": [1, seed]}
    for ms in (1.0 + seed, 2.5, 40.0 * (seed + 1)):
        a.latency.record(ms)
    return a


def test_merging_action_figures_adds_every_counter_and_status() -> None:
    merged, other = _action(1), _action(2)
    merged.merge(other)
    one, two = _action(1), _action(2)
    for name in (
        "count",
        "ok",
        "failed",
        "interrupted",
        "requests",
        "requests_failed",
        "requests_interrupted",
        "bytes_sent",
        "bytes_received",
    ):
        assert getattr(merged, name) == getattr(one, name) + getattr(two, name), name
    assert merged.status == {200: 6 + 7, 0: 2 + 3}
    assert merged.checks == {"status": [4 + 5, 2], "only-1": [1, 1], "only-2": [1, 2]}
    merged.checks["only-2"][0] += 1
    assert other.checks == two.checks  # the merged-in figures are copied, not shared
    assert merged.latency.count == 6
    assert (merged.latency.min, merged.latency.max) == (2.0, 120.0)


def test_a_scenarios_action_figures_are_made_once_and_kept() -> None:
    st = RunStats()
    first = st.scenario_action("s", "a")
    first.count = 3
    assert st.scenario_action("s", "a") is first
    assert st.scenario_action("s", "b") is not first
    assert st.scenarios["s"] == {"a": first, "b": st.scenario_action("s", "b")}


def test_summary_rounds_every_latency_to_the_microsecond() -> None:
    h = Histogram()
    for i in range(1, 2001):
        h.record(i * 0.7771)
    summary = h.summary()
    assert summary["count"] == 2000
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p99.9", 0.999)):
        exact = h.quantile(q)
        assert summary[key] == round(exact, 3), key
        assert round(exact, 4) != round(exact, 3), key  # a fourth decimal would show
    for key, value in summary.items():
        assert value == round(value, 3), key


@pytest.mark.parametrize("ms", [0.0371, 1.0, 1.00995, 12.3456, 199.99, 2_500.0])
def test_percentiles_of_equal_values_are_that_value(ms: float) -> None:
    """Every value in one bucket, at its bottom or top: the bucket's estimate is clamped to
    the exact min and max, so each percentile is the value itself."""
    h = Histogram()
    for _ in range(5):
        h.record(ms)
    assert h.quantiles((0.5, 0.9, 0.95, 0.99, 0.999)) == [ms] * 5
