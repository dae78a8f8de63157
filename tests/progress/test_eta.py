"""The ETA estimator on a fake clock: exact values from the formula in progress/eta.py.

Each test feeds snapshots (elapsed seconds, passes done, active users) in order, as the
aggregator does, and checks the estimate, the rate or the pace against the value worked out
by hand in the comments (docs/progress-model.md has the formula in words).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pytest

from wbsrun.progress.eta import EtaEstimator

Point = tuple[float, float, int]  # (elapsed, passes done, active users)


def _feed(
    est: EtaEstimator,
    points: Iterable[Point],
    planned: float = 1e9,
    future: Sequence[float] = (),
    floor: float = 0.0,
) -> list[float | None]:
    return [est.estimate(t, done, planned, active, future, floor) for t, done, active in points]


def _exact(value: float) -> object:
    return pytest.approx(value, rel=1e-12, abs=1e-12)


def test_no_eta_before_one_second_of_run() -> None:
    # 100 passes at t=0.999 is plenty of evidence; the elapsed minimum still holds.
    early = EtaEstimator()
    assert _feed(early, [(0.0, 0.0, 10), (0.999, 100.0, 10)], planned=1000) == [None, None]
    on_time = EtaEstimator()
    # From t=1.0 on: rate 100/1 passes/s, 900 left → 9 s.
    assert _feed(on_time, [(0.0, 0.0, 10), (1.0, 100.0, 10)], planned=1000) == [None, _exact(9.0)]


@pytest.mark.parametrize(
    ("planned", "needed"),
    [(10_000.0, 10.0), (500.0, 5.0)],  # min(1 % of the plan, 10 passes)
)
def test_no_eta_before_one_percent_of_the_plan_or_ten_passes(planned: float, needed: float) -> None:
    short = EtaEstimator()
    assert _feed(short, [(0.0, 0.0, 1), (2.0, needed - 0.01, 1)], planned=planned)[-1] is None
    enough = EtaEstimator()
    # Rate needed/2 passes/s → (planned - needed) / (needed / 2) seconds.
    got = _feed(enough, [(0.0, 0.0, 1), (2.0, needed, 1)], planned=planned)[-1]
    assert got == _exact((planned - needed) / (needed / 2.0))


def test_a_finished_scenario_has_no_time_left() -> None:
    est = EtaEstimator()
    assert est.estimate(0.5, 100.0, 100.0, 0) == 0.0  # even before any evidence


def test_no_eta_while_nothing_progresses() -> None:
    # 20 passes done at t=0 and still at t=3: the rate over the window is zero, a stall.
    est = EtaEstimator()
    assert _feed(est, [(0.0, 20.0, 5), (3.0, 20.0, 5)], planned=100) == [None, None]
    ramp = EtaEstimator()
    points = [(0.0, 20.0, 5), (3.0, 20.0, 5)]
    assert _feed(ramp, points, planned=100, future=(10.0,)) == [None, None]


def test_the_rate_is_taken_over_the_recent_half_of_the_run_but_at_least_5_s() -> None:
    # done = t², a sample each second. At t=8 the window is max(5, 8/2) = 5 s: base t=3
    # (9 passes) → (64 - 9) / 5 = 11. At t=16 it is 16/2 = 8 s: base t=8 → (256 - 64) / 8 = 24.
    est = EtaEstimator()
    _feed(est, [(float(t), float(t * t), 1) for t in range(9)])
    assert est.rate(8.0, 64.0) == _exact(11.0)
    _feed(est, [(float(t), float(t * t), 1) for t in range(9, 17)])
    assert est.rate(16.0, 256.0) == _exact(24.0)


def test_the_rate_window_is_at_most_60_s_and_older_samples_are_dropped() -> None:
    # done = t² up to t=130: the window is min(60, 65) = 60 s, base t=70 →
    # (16,900 - 4,900) / 60 = 200. Samples older than the window's base are dropped: t=70..130.
    est = EtaEstimator()
    _feed(est, [(float(t), float(t * t), 1) for t in range(131)])
    assert est.rate(130.0, 16_900.0) == _exact(200.0)
    assert len(est._samples) == 61
    # Sparse samples: at t=200 the sample at t=0 is dropped (t=10 is older than the window
    # too, but it is the one kept in front), and with no sample 1 s old in the window the
    # base is the first kept one: (300 - 100) / (200 - 10).
    sparse = EtaEstimator()
    _feed(sparse, [(0.0, 0.0, 1), (10.0, 100.0, 1), (200.0, 300.0, 1)])
    assert sparse.rate(200.0, 300.0) == _exact(200.0 / 190.0)


def test_a_window_base_under_1_s_old_falls_back_to_the_first_sample() -> None:
    # Samples at 0, 10 and then 10.5: the window (5.25 s) holds only t=10 and t=10.5; t=10
    # is 0.5 s old, too close for a rate, so the base is the first sample: 30 / 10.5.
    young = EtaEstimator()
    _feed(young, [(0.0, 0.0, 1), (10.0, 10.0, 1), (10.5, 30.0, 1)])
    assert young.rate(10.5, 30.0) == _exact(30.0 / 10.5)
    # At t=11 the t=10 sample is exactly 1 s old: it is the base, (30 - 10) / 1.
    # Observed from t=2 on: the first sample is t=2 (5 passes), not the start of the run.
    late = EtaEstimator()
    _feed(late, [(2.0, 5.0, 1), (10.0, 10.0, 1), (10.5, 30.0, 1)])
    assert late.rate(10.5, 30.0) == _exact(25.0 / 8.5)
    aged = EtaEstimator()
    _feed(aged, [(0.0, 0.0, 1), (10.0, 10.0, 1), (11.0, 30.0, 1)])
    assert aged.rate(11.0, 30.0) == _exact(20.0)


def test_samples_closer_than_a_quarter_second_are_not_kept() -> None:
    # t=5.1 comes 0.2 s after t=4.9: not kept. At t=10.1 the window starts at 5.05, where
    # the only sample is t=10.1 itself (0 s old): the base is t=0 → 101 / 10.1 = 10 (had
    # t=5.1 been kept, it would be the base: (101 - 61) / 5 = 8).
    est = EtaEstimator()
    _feed(est, [(0.0, 0.0, 1), (4.9, 49.0, 1), (5.1, 61.0, 1), (10.1, 101.0, 1)])
    assert est.rate(10.1, 101.0) == _exact(10.0)
    # Exactly 0.25 s apart is kept: at t=10 the window starts at 5.0, on that sample
    # → (100 - 60) / 5 = 8.
    kept = EtaEstimator()
    _feed(kept, [(0.0, 0.0, 1), (4.75, 47.5, 1), (5.0, 60.0, 1), (10.0, 100.0, 1)])
    assert kept.rate(10.0, 100.0) == _exact(8.0)


def test_the_pace_counts_passes_per_active_user_second() -> None:
    # One user over [0, 1], three over [1, 2] (a snapshot's count covers the interval it
    # closes): 1 + 3 = 4 user-seconds for 4 passes → 1 pass per user-second.
    est = EtaEstimator()
    _feed(est, [(0.0, 0.0, 1), (1.0, 1.0, 1), (2.0, 4.0, 3)])
    assert est.pace(2.0, 4.0) == _exact(1.0)
    assert est.rate(2.0, 4.0) == _exact(2.0)
    # Later the window's base carries user-seconds of its own: two users, 2 passes a second;
    # at t=12 the base is t=6 (12 passes, 12 user-seconds) → (24 - 12) / (24 - 12).
    steady = EtaEstimator()
    _feed(steady, [(float(t), 2.0 * t, 2) for t in range(13)])
    assert steady.pace(12.0, 24.0) == _exact(1.0)
    # Under a user-second so far: half a second of one user, 1 pass → 2 per user-second.
    brief = EtaEstimator()
    _feed(brief, [(0.0, 0.0, 1), (0.5, 1.0, 1)])
    assert brief.pace(0.5, 1.0) == _exact(2.0)


def test_no_rate_or_pace_without_time_or_users_behind_it() -> None:
    # Nothing observed yet: the base is the start of the run, with no user-seconds.
    fresh = EtaEstimator()
    assert (fresh.rate(2.0, 4.0), fresh.pace(2.0, 4.0)) == (2.0, 0.0)
    # One observation: no time has passed since it; no user was active.
    once = EtaEstimator()
    _feed(once, [(0.5, 3.0, 0)])
    assert (once.rate(0.5, 3.0), once.pace(0.5, 3.0)) == (0.0, 0.0)


def test_during_the_ramp_each_future_start_adds_one_user() -> None:
    # Two users at 1 pass per user-second until t=4 (8 done, 92 left), one more at t=5 and
    # one at t=10. [4, 5]: 2 users run 2 → 90 left; [5, 10]: 3 users run 15 → 75 left; from
    # t=10 on 4 users run the rest in 75 / 4 s. Left at t=4: 10 + 18.75 - 4 = 24.75 s.
    est = EtaEstimator()
    points = [(float(t), 2.0 * t, 2) for t in range(5)]
    got = _feed(est, points, planned=100.0, future=(5.0, 10.0))
    assert got[-1] == _exact(24.75)


def test_during_the_ramp_a_remainder_that_fits_before_the_next_start_ignores_it() -> None:
    # 1.5 passes left at t=4, 2 users at 1 pass per user-second: done in 0.75 s, before
    # the user starting at t=5 could help.
    est = EtaEstimator()
    points = [(float(t), 2.0 * t, 2) for t in range(5)]
    got = _feed(est, points, planned=9.5, future=(5.0, 10.0))
    assert got[-1] == _exact(0.75)
    # The same with a single user: 0.5 passes left at 1 per second.
    alone = EtaEstimator()
    got = _feed(alone, [(float(t), float(t), 1) for t in range(5)], planned=4.5, future=(5.0,))
    assert got[-1] == _exact(0.5)


def test_the_eta_is_never_below_the_plans_own_floor() -> None:
    # The rate says 9 s (900 left at 100/s); the plan itself needs 30 s more.
    est = EtaEstimator()
    got = _feed(est, [(0.0, 0.0, 10), (1.0, 100.0, 10)], planned=1000.0, floor=30.0)
    assert got[-1] == _exact(30.0)


def test_the_eta_follows_the_raw_estimate_through_a_3_s_exponential_filter() -> None:
    est = EtaEstimator()
    # t=1: 10 done at 10/s, 990 left → the first estimate is taken as is: finish at 100.
    # t=2: steady, target 2 + 98 = 100 → unchanged: counts down one second per second.
    assert _feed(est, [(0.0, 0.0, 1), (1.0, 10.0, 1), (2.0, 20.0, 1)], planned=1000.0) == [
        None,
        _exact(99.0),
        _exact(98.0),
    ]
    # t=3: 60 done, rate 60/3 = 20/s → target 3 + 940/20 = 50; the finish moves by
    # α = 1 - e^(-1/3) of the way there.
    finish = 100.0 + (1.0 - math.exp(-1.0 / 3.0)) * (50.0 - 100.0)
    assert est.estimate(3.0, 60.0, 1000.0, 1) == _exact(finish - 3.0)
    # t=5: 100 done, rate 100/5 = 20/s → target 5 + 900/20 = 50; α = 1 - e^(-2/3).
    finish += (1.0 - math.exp(-2.0 / 3.0)) * (50.0 - finish)
    assert est.estimate(5.0, 100.0, 1000.0, 1) == _exact(finish - 5.0)
    # t=5.5 (half a second on): the window starts at 0.5, base t=1 (10 passes) → rate
    # 100 / 4.5, target 5.5 + 890 · 4.5 / 100; α = 1 - e^(-0.5/3).
    finish += (1.0 - math.exp(-0.5 / 3.0)) * (5.5 + 890.0 * 4.5 / 100.0 - finish)
    assert est.estimate(5.5, 110.0, 1000.0, 1) == _exact(finish - 5.5)


def test_a_smoothed_finish_already_past_says_zero_not_negative() -> None:
    est = EtaEstimator()
    # t=1: 10 of 11 done at 10/s → 0.1 s left, finish at 1.1 (no floor given: none).
    assert est.estimate(0.0, 0.0, 11.0, 1) is None
    assert est.estimate(1.0, 10.0, 11.0, 1) == _exact(0.1)
    # t=6: 10.99 done, rate (10.99 - 10) / 5 → 0.05 s left, target 6.05; the finish moves
    # to 1.1 + (1 - e^(-5/3)) · 4.95 ≈ 5.11, before now: the ETA is 0.
    assert est.estimate(6.0, 10.99, 11.0, 1) == 0.0
