"""The health roll-up's maths: the formula's weights and range at every level, the per-user
figures the aggregator sums up (bounded: a summary and the worst 10), each scenario's own
error rate and deviation, and the trend (least-squares slope over the last 30 s, per minute)."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wbsrun.core.stats import RunStats
from wbsrun.progress.aggregate import Aggregator, ProgressUpdate
from wbsrun.progress.baseline import ScenarioBaseline
from wbsrun.progress.health import (
    TREND_MIN_SPAN_S,
    TREND_WINDOW_S,
    WORST_USERS,
    HealthBook,
    HealthTrend,
    health_score,
    run_health,
)
from wbsrun.progress.report import health_figures

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
SHARE = st.floats(0.0, 1.0)


def counted(name: str, users: int, passes: int, duration: float | None = None) -> ScenarioBaseline:
    return ScenarioBaseline(name, users, users * passes, passes, duration, 0.0)


# -- the formula -------------------------------------------------------------------------------


@given(ANY_FLOAT, ANY_FLOAT, ANY_FLOAT)
def test_the_score_is_in_0_1_whatever_its_inputs(p: float, e: float, d: float) -> None:
    assert 0.0 <= health_score(p, e, d) <= 1.0


@given(SHARE, SHARE, SHARE)
def test_the_score_weighs_progress_0_6_errors_0_3_deviation_0_1(
    p: float, e: float, d: float
) -> None:
    assert health_score(p, e, d) == pytest.approx(p * 0.6 + (1 - e) * 0.3 + (1 - d) * 0.1)
    # Each input moves the score by its weight, and only by it.
    assert health_score(1.0, e, d) - health_score(0.0, e, d) == pytest.approx(0.6)
    assert health_score(p, 0.0, d) - health_score(p, 1.0, d) == pytest.approx(0.3)
    assert health_score(p, e, 0.0) - health_score(p, e, 1.0) == pytest.approx(0.1)


@given(
    ANY_FLOAT,
    st.one_of(st.none(), ANY_FLOAT),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
)
def test_every_figure_of_a_program_or_scenario_is_in_0_1(
    work: float, due: float | None, total: int, failed: int
) -> None:
    h = run_health(work, due, total, failed)
    for x in (h.score, h.progress, h.error_rate, h.deviation):
        assert 0.0 <= x <= 1.0


# -- per user ----------------------------------------------------------------------------------

# One user's passes: (progress at the close, closed with an error).
PASSES = st.lists(st.tuples(SHARE, st.booleans()), max_size=4)


@given(st.lists(PASSES, min_size=1, max_size=25))
def test_user_figures_are_in_0_1_and_summed_up_exactly(
    users: list[list[tuple[float, bool]]],
) -> None:
    agg = Aggregator([counted("s", len(users), 4)])
    expected: dict[str, float] = {}
    for i, passes in enumerate(users):
        uid = f"u{i:03d}"
        agg.record(f"{uid}-open", uid, "s", 0.25, frozenset(), False)  # one pass still open
        for j, (p, failed) in enumerate(passes):
            agg.apply(
                ProgressUpdate(
                    f"{uid}-t{j}", uid, "s", p, frozenset(), True, "e" if failed else None
                )
            )
        closed = len(passes)
        # The definitions (docs/progress-model.md): progress over the planned passes, error
        # rate and deviation over the closed ones.
        progress = min(1.0, (0.25 + sum(p for p, _ in passes)) / 4)
        rate = sum(1 for _, f in passes if f) / closed if closed else 0.0
        deviation = 1 - sum(p for p, _ in passes) / closed if closed else 0.0
        expected[uid] = health_score(progress, rate, deviation)
    summary = agg.user_health()
    assert summary is not None
    scores = sorted(expected.values())
    assert summary.count == len(users)
    assert summary.min == pytest.approx(scores[0])
    assert summary.mean == pytest.approx(sum(scores) / len(scores))
    assert summary.p50 == pytest.approx(scores[math.ceil(0.5 * len(scores)) - 1])
    assert summary.p10 == pytest.approx(scores[math.ceil(0.1 * len(scores)) - 1])
    for x in (summary.min, summary.p10, summary.p50, summary.mean):
        assert 0.0 <= x <= 1.0
    worst = summary.worst
    assert len(worst) == min(WORST_USERS, len(users))
    assert [s for _, _, s in worst] == pytest.approx(scores[: len(worst)])
    # Lowest first, ties by user id; each the user's own score.
    assert [(s, u) for u, _, s in worst] == sorted((s, u) for u, _, s in worst)
    for uid, scenario, score in worst:
        assert scenario == "s"
        assert score == pytest.approx(expected[uid])


def test_a_user_whose_passes_failed_half_done_scores_by_hand() -> None:
    agg = Aggregator([counted("s", 1, 2)])
    agg.apply(ProgressUpdate("t0", "u", "s", 0.5, frozenset(), True, "http-4xx"))
    # progress 0.5 / 2 passes; every closed pass failed; they left half their work undone.
    summary = agg.user_health()
    assert summary is not None
    assert summary.min == pytest.approx(0.25 * 0.6 + 0.0 * 0.3 + 0.5 * 0.1)
    # The runner's own tasks are read natively: the same figure from a live subject.
    assert summary.worst == (("u", "s", summary.min),)


def test_a_hundred_thousand_users_are_summed_up_in_a_bounded_figure() -> None:
    n = 100_000
    agg = Aggregator([counted("s", n, 1)])
    for i in range(n):
        failed = i % 1000 == 7  # 100 users failed their pass
        agg.record(f"t{i}", f"u{i:06d}", "s", 1.0, frozenset(), True, "e" if failed else None)
    began = time.perf_counter()
    summary = agg.user_health()
    spent = time.perf_counter() - began
    assert summary is not None
    assert summary.count == n
    assert len(summary.worst) == WORST_USERS
    # The 10 lowest of the 100 failed users: the first by id.
    assert [u for u, _, _ in summary.worst] == [f"u{i:06d}" for i in range(7, 10_000, 1000)]
    assert summary.min == pytest.approx(0.7)
    assert summary.p10 == summary.p50 == pytest.approx(1.0)
    assert len(summary.to_json()["worst"]) == WORST_USERS
    assert spent < 2.0  # one pass over the users (interpreted; compiled is ~10× faster)


def test_a_coordinator_without_its_workers_users_has_no_user_figure() -> None:
    worker = Aggregator([counted("s", 2, 1)])
    worker.record("t0", "u0", "s", 1.0, frozenset(), True)
    coordinator = Aggregator([counted("s", 2, 1)])
    coordinator.load([worker.sums()])
    assert coordinator.user_health() is None
    empty = Aggregator([counted("s", 2, 1)]).user_health()
    assert empty is not None
    assert empty.count == 0


def test_a_second_life_keeps_its_users_health() -> None:
    agg = Aggregator([counted("s", 1, 2)])
    agg.record("t0", "u", "s", 0.5, frozenset(), True, "e")
    again = Aggregator([counted("s", 1, 2)])
    again.load_settled(agg.settled())
    assert again.user_health() == agg.user_health()


# -- per scenario --------------------------------------------------------------------------------


def test_each_scenario_has_its_own_error_rate_and_deviation() -> None:
    agg = Aggregator([counted("a", 1, 2, duration=10.0), counted("b", 1, 2, duration=40.0)])
    agg.record("a0", "ua", "a", 1.0, frozenset(), True)
    agg.record("b0", "ub", "b", 1.0, frozenset(), True)
    stats = RunStats()
    stats.scenario_action("a", "get").requests = 10
    stats.scenario_action("a", "get").requests_failed = 4
    stats.scenario_action("b", "get").requests = 30
    stats.requests_total, stats.requests_failed = 40, 4
    detail = agg.snapshot(8.0)
    figures = health_figures(stats, 8.0, detail.work, 0.5, detail, agg)
    a, b = figures.scenario("a"), figures.scenario("b")
    assert a is not None
    assert b is not None
    # a: half its passes done, 8 s of its 10 s due; 4 of its 10 requests failed.
    assert (a.progress, a.error_rate, a.deviation) == pytest.approx((0.5, 0.4, 0.3))
    # b: half done, 8 of 40 s due (ahead: no deviation); none of its requests failed.
    assert (b.progress, b.error_rate, b.deviation) == pytest.approx((0.5, 0.0, 0.0))
    assert b.score > a.score
    # The program: the run's own inputs (its requests, its due share), not a mean of scores.
    assert figures.program == run_health(detail.work, 0.5, 40, 4)


# -- the trend -----------------------------------------------------------------------------------


@given(st.floats(-0.01, 0.01), st.floats(0.0, 0.5), st.integers(4, 120))
def test_the_trend_of_a_steady_change_is_its_slope_per_minute(
    slope: float, start: float, seconds: int
) -> None:
    trend = HealthTrend()
    for t in range(seconds + 1):
        trend.add(float(t), start + slope * t)
    assert trend.per_minute() == pytest.approx(slope * 60.0, abs=1e-9)


def test_the_trend_is_unknown_until_its_samples_span_3_s_and_forgets_past_30_s() -> None:
    trend = HealthTrend()
    trend.add(0.0, 0.5)
    trend.add(0.5, 0.9)  # under a second after the last: dropped
    trend.add(TREND_MIN_SPAN_S - 1.0, 0.5)
    assert trend.per_minute() is None
    trend.add(TREND_MIN_SPAN_S, 0.5)
    assert trend.per_minute() == 0.0
    # A fall long ago, then flat for longer than the window: flat again.
    for t in range(4, 100):
        trend.add(float(t), 0.2)
    assert trend.per_minute() == 0.0
    assert len(trend._samples) <= TREND_WINDOW_S + 1


def test_the_book_keeps_a_trend_per_scenario() -> None:
    book = HealthBook()
    for t in range(10):
        figures = book.figures(
            float(t),
            run_health(0.5, None, 0, 0),
            {"up": run_health(t / 10, None, 0, 0), "down": run_health(1 - t / 10, None, 0, 0)},
        )
    assert figures.trend == 0.0
    trends = {name: trend for name, _, trend in figures.scenarios}
    assert trends["up"] == pytest.approx(0.6 * 0.1 * 60)
    assert trends["down"] == pytest.approx(-0.6 * 0.1 * 60)
    as_json = figures.to_json()
    assert set(as_json) == {
        "score",
        "progress",
        "error_rate",
        "deviation",
        "trend",
        "scenarios",
        "users",
    }
    assert set(as_json["scenarios"]["up"]) == {
        "score",
        "progress",
        "error_rate",
        "deviation",
        "trend",
    }
