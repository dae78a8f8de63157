"""Latency histograms and run counters: exact percentiles from the bucket formula.

A value of `ms` milliseconds lands in bucket ⌊log(1 + 1000·ms) / log 1.01⌋; a percentile is
the upper edge of the bucket where the running count first reaches rank q·count, capped at
the exact maximum. `_edge` below is that formula, written out independently of the module.
"""

from __future__ import annotations

import math

import pytest

from wbsrun.core.stats import (
    MAX_MESSAGES,
    MAX_MESSAGES_PER_CODE,
    MESSAGE_CHARS,
    Histogram,
    RunStats,
)


def _edge(ms: float) -> float:
    """The upper edge (ms) of the 1 %-wide bucket that holds `ms`."""
    idx = math.floor(math.log(1.0 + ms * 1000.0) / math.log(1.01))
    return math.expm1((idx + 1) * math.log(1.01)) / 1000.0


def _histogram(*values: float) -> Histogram:
    h = Histogram()
    for v in values:
        h.record(v)
    return h


def test_an_empty_histogram_reports_zeros() -> None:
    h = Histogram()
    assert h.quantile(0.5) == 0.0
    assert h.summary() == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}


def test_the_median_of_two_values_is_the_lower_ones_bucket() -> None:
    # Rank 0.5 · 2 = 1 is reached by the first value: p50 of [10, 20] ms is 10's bucket.
    h = _histogram(20.0, 10.0)
    assert h.quantile(0.5) == pytest.approx(_edge(10.0), rel=1e-12)
    assert 10.0 <= h.quantile(0.5) < 10.0 * 1.01


def test_a_percentile_is_its_buckets_upper_edge_within_one_percent_above_the_value() -> None:
    values = [0.001 * 1.37**k for k in range(40)]  # 1 µs to ~200 s
    for v in values:
        h = _histogram(v, v * 3.0)  # the max is elsewhere, so no cap applies
        got = h.quantile(0.5)
        assert got == pytest.approx(_edge(v), rel=1e-12)
        # Buckets are 1 % of (1 µs + value) wide: 1 % above the value, plus 0.01 µs.
        assert v <= got <= v * 1.01 + 1e-5


def test_a_percentile_never_exceeds_the_exact_maximum() -> None:
    h = _histogram(10.0)
    assert h.quantile(0.99) == 10.0
    assert h.quantile(1.0) == 10.0


def test_a_zero_latency_lands_in_the_first_bucket() -> None:
    h = _histogram(0.0, 0.0, 5.0)
    assert h.buckets[0] == 2
    assert h.quantile(0.5) == pytest.approx(_edge(0.0), rel=1e-12)  # 0.01 µs


def test_the_summary_reports_p50_p90_p99_max_and_mean_in_ms() -> None:
    h = _histogram(*(float(v) for v in range(1, 101)))  # 1 .. 100 ms
    assert h.summary() == {
        "p50": round(_edge(50.0), 3),
        "p90": round(_edge(90.0), 3),
        "p99": round(_edge(99.0), 3),
        "max": 100.0,
        "mean": 50.5,
    }


def test_merging_adds_counts_and_totals_and_keeps_the_larger_maximum() -> None:
    small = _histogram(1.0, 2.0)
    large = _histogram(3000.0)  # a longer bucket list than `small`
    small.merge(large)
    assert (small.count, small.total, small.max) == (3, 3003.0, 3000.0)
    assert small.quantile(1.0 / 3.0) == pytest.approx(_edge(1.0), rel=1e-12)
    assert small.quantile(2.0 / 3.0) == pytest.approx(_edge(2.0), rel=1e-12)
    assert small.quantile(1.0) == 3000.0
    # The other way round: a shorter list merges into a longer one, the max stays.
    large.merge(_histogram(1.0, 2.0))
    assert (large.count, large.total, large.max) == (3, 3003.0, 3000.0)
    assert large.summary() == small.summary()


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
    assert h.summary() == {
        "p50": round(_edge(2.34567), 3),
        "p90": round(min(_edge(7.65432), 7.65432), 3),
        "p99": 7.654,
        "max": 7.654,
        "mean": round((1.23456 + 2.34567 + 3.45678 + 7.65432) / 4, 3),
    }
    assert round(_edge(2.34567), 3) != round(_edge(2.34567), 4)


def test_merging_adds_the_counts_of_buckets_both_histograms_hold() -> None:
    ours = _histogram(1.0, 1.0)
    ours.merge(_histogram(1.0, 3000.0))
    # Three of four values at 1 ms: the median and the 75th percentile are 1 ms's bucket.
    assert ours.quantile(0.5) == pytest.approx(_edge(1.0), rel=1e-12)
    assert ours.quantile(0.75) == pytest.approx(_edge(1.0), rel=1e-12)
    assert ours.quantile(0.76) == 3000.0


def test_a_negative_latency_from_a_clock_step_counts_in_the_first_bucket() -> None:
    h = _histogram(-1.0, 4.0)
    assert h.buckets[0] == 1
    assert (h.count, h.total, h.max) == (2, 3.0, 4.0)


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
