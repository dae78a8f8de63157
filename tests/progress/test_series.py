"""The time series recorder (pure): per-interval deltas of cumulative figures that add up to
the totals exactly, interval percentiles from the difference of two cumulative histograms, and
a bounded number of points however long the run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.core.stats import Histogram
from wbsrun.progress.series import (
    MAX_CODES,
    MAX_HEALTH_SCENARIOS,
    OTHER_CODE,
    Series,
    _merge_knots,
)

QS = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def feed(
    series: Series,
    now: float,
    requests: int,
    failed: int = 0,
    errors: Mapping[str, int] | None = None,
    latency: Histogram | None = None,
    users: int = 0,
) -> None:
    series.sample(
        now,
        requests=requests,
        failed=failed,
        errors=errors or {},
        latency=latency if latency is not None else Histogram(),
        users=users,
        work=min(1.0, now / 100.0),
        time=None,
        planned=None,
        milestones=None,
        eta_s=None,
        health=1.0,
        leases=0,
    )


def columns_agree(ts: Mapping[str, object], size: int) -> None:
    for key, value in ts.items():
        if isinstance(value, list):
            assert len(value) == size, key
    errors = ts["errors"]
    assert isinstance(errors, dict)
    for col in errors.values():
        assert len(col) == size


# One interval: (seconds, requests, failed of them, errors by code).
intervals = st.lists(
    st.tuples(
        st.floats(0.05, 3.0),
        st.integers(0, 1_000),
        st.integers(0, 50),
        st.dictionaries(st.sampled_from([f"code-{i}" for i in range(40)]), st.integers(1, 9)),
    ),
    max_size=300,
)


@settings(max_examples=examples(200))
@given(intervals, st.integers(2, 40))
def test_downsampling_keeps_every_total_exact_and_never_exceeds_the_cap(
    sequence: Sequence[tuple[float, int, int, dict[str, int]]], cap: int
) -> None:
    series = Series(cap=cap)
    now, requests, failed = 0.0, 0, 0
    errors: dict[str, int] = {}
    for dt, n, bad, errs in sequence:
        now += dt
        requests += n
        failed += min(bad, n)
        for code, k in errs.items():
            errors[code] = errors.get(code, 0) + k
        feed(series, now, requests, failed, errors, users=n)
        assert len(series) <= cap
    ts = series.to_json()
    size = len(ts["t"])
    columns_agree(ts, size)
    assert size <= cap
    assert sum(ts["requests"]) == requests
    assert sum(ts["failed"]) == failed
    # Every code has a column up to MAX_CODES; the rest add up under OTHER_CODE.
    got = {code: sum(col) for code, col in ts["errors"].items()}
    assert sum(got.values()) == sum(errors.values())
    assert len(got) <= MAX_CODES + 1
    for code, total in errors.items():
        if code in got:
            assert got[code] == total
        else:
            assert OTHER_CODE in got
    # t increases and ends at the last sample; each point spans its interval (the last at most).
    assert all(a < b for a, b in zip(ts["t"], ts["t"][1:], strict=False))
    if sequence:
        assert ts["t"][-1] == round(now, 3)
        assert ts["users"][-1] == sequence[-1][1]  # a gauge keeps the latest value
        assert size == math.ceil(len(sequence) / series.stride)
        assert ts["interval_s"] == series.stride * 1.0


def test_a_full_series_halves_and_doubles_its_interval() -> None:
    series = Series(cap=4)
    for i in range(1, 5):
        feed(series, float(i), requests=10 * i)
    assert series.to_json()["requests"] == [10, 10, 10, 10]
    feed(series, 5.0, requests=60)  # the fifth point: pairs merge, then it starts a new one
    ts = series.to_json()
    assert ts["interval_s"] == 2.0
    assert ts["t"] == [2.0, 4.0, 5.0]
    assert ts["requests"] == [20, 20, 20]
    assert ts["rps"] == [10.0, 10.0, 20.0]
    feed(series, 6.0, requests=70)  # fills the last point's second half
    ts = series.to_json()
    assert ts["t"] == [2.0, 4.0, 6.0]
    assert ts["requests"] == [20, 20, 30]
    assert series.latest()["requests"] == 10
    assert series.latest()["interval_s"] == 1.0


latencies = st.lists(st.floats(0.1, 5_000.0), max_size=200)


@settings(max_examples=examples(200))
@given(st.lists(latencies, min_size=1, max_size=8))
def test_interval_percentiles_equal_those_of_its_values_recorded_alone(
    per_interval: list[list[float]],
) -> None:
    series = Series(cap=100)
    cumulative = Histogram()
    for i, values in enumerate(per_interval):
        for v in values:
            cumulative.record(v)
        feed(series, float(i + 1), requests=cumulative.count, latency=cumulative)
        alone = Histogram()
        for v in values:
            alone.record(v)
        point = series.latest()
        for key, q in QS:
            if not values:
                assert point[key] is None
                continue
            want = round(alone.quantile(q), 3)
            # The interval's exact min and max are not kept (only the cumulative ones): a
            # quantile in its lowest or top bucket may be off by up to that bucket (1 %).
            assert abs(point[key] - want) <= want * 0.0101 + 0.001, (key, values)
    assert [p is None for p in series.to_json()["p99"]] == [not v for v in per_interval]


knots = st.lists(st.floats(0.1, 10_000.0), min_size=5, max_size=5).map(sorted)


@settings(max_examples=examples(300))
@given(st.integers(1, 10_000), knots, st.integers(1, 10_000), knots)
def test_a_merged_percentile_lies_between_the_parts_own(
    na: int, ka: list[float], nb: int, kb: list[float]
) -> None:
    a, b = (float(na), *ka), (float(nb), *kb)
    merged = _merge_knots(a, b)
    assert merged[0] == na + nb
    assert merged[1] == min(ka[0], kb[0])
    assert merged[5] == max(ka[4], kb[4])
    for i in (2, 3, 4):
        lo, hi = min(a[i], b[i]), max(a[i], b[i])
        assert lo - 1e-9 * hi <= merged[i] <= hi + 1e-9 * hi


def test_merging_two_intervals_of_the_same_distribution_keeps_its_percentiles() -> None:
    part = (500.0, 1.0, 10.0, 40.0, 90.0, 120.0)
    merged = _merge_knots(part, (1500.0, *part[1:]))
    assert merged == pytest.approx((2000.0, *part[1:]))


def test_a_spike_keeps_its_tail_when_merged_with_a_calm_interval() -> None:
    calm = (1000.0, 1.0, 10.0, 15.0, 20.0, 25.0)
    spike = (1000.0, 1.0, 10.0, 300.0, 500.0, 600.0)
    merged = _merge_knots(calm, spike)
    # All of the calm interval is below 25 ms, so the merged p99 is the spike's 98th
    # percentile: between its p95 and p99, far above the mean of the two p99s (260).
    assert 300.0 < merged[4] < 500.0
    assert merged[4] > 400.0
    assert merged[2] == pytest.approx(10.0)


def test_a_series_refuses_a_cap_below_two_and_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="cap"):
        Series(cap=1)
    with pytest.raises(ValueError, match="interval"):
        Series(interval=0.0)


def test_latest_is_empty_before_the_first_sample_and_the_series_too() -> None:
    series = Series()
    assert series.latest() == {}
    ts = series.to_json()
    assert ts["t"] == []
    assert ts["requests"] == []
    assert ts["errors"] == {}
    assert ts["interval_s"] == 1.0
    assert ts["cap"] == 3_600


def _health_sample(series: Series, now: float, trend: float | None, per: dict[str, float]) -> None:
    series.sample(
        now,
        requests=0,
        failed=0,
        errors={},
        latency=Histogram(),
        users=0,
        work=None,
        time=None,
        planned=None,
        milestones=None,
        eta_s=None,
        health=0.5,
        leases=0,
        health_trend=trend,
        health_scenarios=per,
    )


@given(st.integers(1, 40), st.integers(1, 12), st.integers(2, 6))
def test_scenario_health_columns_are_bounded_and_downsample_with_the_series(
    points: int, scenarios: int, cap: int
) -> None:
    series = Series(cap=cap)
    for i in range(points):
        # A scenario joins at each point until all have: earlier points are null for it.
        per = {f"s{k}": (i + k) / 100.0 for k in range(min(scenarios, i + 1))}
        _health_sample(series, float(i + 1), None if i < 3 else 0.25, per)
    ts = series.to_json()
    columns_agree(ts, len(ts["t"]))
    per_col = ts["health_scenarios"]
    assert len(per_col) == min(scenarios, MAX_HEALTH_SCENARIOS, points)
    for k, (name, col) in enumerate(per_col.items()):
        assert name == f"s{k}"
        assert len(col) == len(ts["t"])
        # A gauge: the last sample's value, as every gauge of a merged point.
        assert col[-1] == pytest.approx((points - 1 + k) / 100.0)
    assert ts["health_trend"][-1] == (None if points <= 3 else 0.25)
    assert series.latest()["health_scenarios"]["s0"] == pytest.approx((points - 1) / 100.0)


def test_a_scenario_sampled_late_is_null_before_its_first_sample() -> None:
    series = Series()
    _health_sample(series, 1.0, None, {"a": 0.9})
    _health_sample(series, 2.0, None, {"a": 0.8, "b": 0.4})
    assert series.to_json()["health_scenarios"] == {"a": [0.9, 0.8], "b": [None, 0.4]}
