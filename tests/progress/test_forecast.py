"""The forecast (progress/forecast.py) on a fake clock: Holt recovers a slope, the band holds the
estimate, an estimate comes from the first look, a slowing run is warned of before its plan's
end, a steady one never is, earlier runs give the first estimate and the profile."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wbsrun.progress.forecast import Forecast, Forecaster, Holt, Prior, Season

PLANNED = 3000.0


def test_holt_on_a_linear_series_recovers_its_slope_and_level() -> None:
    holt = Holt()
    for k in range(400):
        holt.update(5.0 + 0.25 * (k * 0.5), 0.5, 0.3, 0.2, 1.0)
    assert holt.trend == pytest.approx(0.25, rel=1e-6)
    assert holt.level == pytest.approx(5.0 + 0.25 * 399 * 0.5, rel=1e-9)
    assert holt.var == pytest.approx(0.0, abs=1e-9)  # no error left to predict
    # Undamped, it extrapolates the line; damped, the trend carries tau at most.
    assert holt.forecast(10.0, math.inf) == pytest.approx(holt.level + 2.5)
    assert holt.forecast(1e9, 4.0) == pytest.approx(holt.level + 0.25 * 4.0)


def test_holt_on_a_constant_series_has_no_trend() -> None:
    holt = Holt()
    for _ in range(50):
        holt.update(3.0, 0.5, 0.4, 0.3, 0.9)
    assert holt.level == pytest.approx(3.0)
    assert holt.trend == pytest.approx(0.0)


def feed(
    fc: Forecaster,
    pace: list[float],
    users: int = 50,
    step: float = 0.5,
    deadline: float | None = None,
) -> list[tuple[float, Forecast]]:
    """A run whose users progress at `pace[i]` passes per user-second during step i."""
    done, out = 0.0, []
    for i, p in enumerate(pace):
        done = min(PLANNED, done + p * users * step)
        t = (i + 1) * step
        out.append((t, fc.observe(t, done, PLANNED, users, (), 0.0, deadline)))
        if done >= PLANNED:
            break
    return out


def test_an_estimate_comes_from_the_first_look_with_a_band_that_narrows() -> None:
    looks = feed(Forecaster(), [3.0] * 40)
    t, first = looks[0]
    assert t == 0.5
    assert first.eta_s is not None
    assert first.method == "holt"
    # 75 passes at 150 a second: 2925 left → 19.5 s.
    assert first.eta_s == pytest.approx(19.5, rel=0.01)
    # Halfway, 1,500 passes seen: the counting term has shrunk √20-fold (the finish filter lags it).
    half = looks[19][1]
    assert first.eta_high_s is not None
    assert first.eta_low_s is not None
    assert half.eta_high_s is not None
    assert half.eta_low_s is not None
    assert half.eta_s is not None
    wide = (first.eta_high_s - first.eta_low_s) / first.eta_s
    assert wide > 0.3
    assert (half.eta_high_s - half.eta_low_s) / half.eta_s < wide / 2


def test_a_steady_run_counts_down_to_its_end_within_one_percent() -> None:
    looks = feed(Forecaster(), [3.0] * 39)  # ends at 20 s
    for t, f in looks[2:]:
        assert f.eta_s == pytest.approx(20.0 - t, rel=0.01, abs=0.05), t


def test_no_estimate_without_progress_or_history() -> None:
    fc = Forecaster()
    f = fc.observe(1.0, 0.0, PLANNED, 50)
    assert (f.eta_s, f.eta_low_s, f.eta_high_s, f.method) == (None, None, None, "none")


def test_earlier_runs_give_the_estimate_before_the_first_pass() -> None:
    fc = Forecaster(Prior((20.0, 24.0, 30.0)))
    f = fc.observe(2.0, 0.0, PLANNED, 50)
    assert (f.eta_s, f.eta_low_s, f.eta_high_s) == (22.0, 18.0, 28.0)
    assert (f.method, f.history_runs) == ("history", 3)


def test_a_stall_has_no_eta_and_misses_a_plan_end_ahead() -> None:
    fc = Forecaster()
    looks = feed(fc, [3.0] * 4 + [0.0] * 10, deadline=30.0)
    last = looks[-1][1]
    assert (last.eta_s, last.method) == (None, "stalled")
    assert last.will_miss_plan


def test_a_slowing_run_is_warned_of_a_fifth_of_its_run_before_the_end() -> None:
    # The pace falls from 3.3 as the target's latency grows (a pass: 0.3 s + 15 ms per s).
    pace = [1.0 / (0.3 + 0.015 * (i * 0.5)) for i in range(80)]
    fc = Forecaster()
    looks = feed(fc, pace, deadline=24.0)
    warned = fc.warned_at
    assert warned is not None
    assert warned <= 0.8 * 24.0
    after = [f for t, f in looks if t >= warned]
    assert all(f.will_miss_plan and f.warned_at_s == warned for f in after)
    # The progress forecast at the plan's end is short of the work.
    assert after[0].final_progress is not None
    assert after[0].final_progress < 1.0


def test_a_steady_run_with_room_in_its_plan_is_never_warned() -> None:
    looks = feed(Forecaster(), [3.0 + 0.3 * math.sin(i) for i in range(60)], deadline=23.0)
    assert not any(f.will_miss_plan for _, f in looks)
    assert looks[-1][1].final_progress == 1.0


def test_the_plan_end_cuts_the_eta() -> None:
    fc = Forecaster()
    looks = feed(fc, [1.0] * 10, deadline=8.0)
    t, last = looks[-1]
    assert last.eta_s == pytest.approx(8.0 - t)
    assert last.final_progress is not None
    assert last.final_progress < 0.2


def test_an_earlier_runs_profile_makes_it_holt_winters_and_expects_their_slowdown() -> None:
    # Earlier runs went at half their pace over the second half of their work.
    season = Season((1.33,) * 5 + (0.67,) * 5)
    plain, seasonal = Forecaster(), Forecaster(Prior((30.0,), season))
    a = feed(plain, [4.0] * 10)[-1][1]
    b = feed(seasonal, [4.0] * 10)[-1][1]
    assert (a.method, b.method) == ("holt", "holt-winters")
    assert b.eta_s is not None
    assert a.eta_s is not None
    assert b.eta_s > 1.3 * a.eta_s


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(0.01, 5.0),  # seconds since the previous look
            st.floats(0.0, 400.0),  # passes done since
            st.integers(0, 200),  # active users
        ),
        min_size=1,
        max_size=40,
    ),
    planned=st.floats(1.0, 1e6),
    future=st.lists(st.floats(0.0, 100.0), max_size=5),
    floor=st.floats(0.0, 50.0),
    deadline=st.one_of(st.none(), st.floats(1.0, 200.0)),
)
def test_the_band_holds_the_estimate_and_every_figure_is_finite(
    steps: list[tuple[float, float, int]],
    planned: float,
    future: list[float],
    floor: float,
    deadline: float | None,
) -> None:
    fc = Forecaster()
    t = done = 0.0
    for dt, more, users in steps:
        t += dt
        done += more
        later = sorted(x + t for x in future)
        f = fc.observe(t, done, planned, users, later, floor, deadline)
        etas = (f.eta_low_s, f.eta_s, f.eta_high_s)
        if f.eta_s is None:
            assert f.eta_low_s is None or f.eta_high_s is None or f.method == "history"
        else:
            assert all(e is not None and math.isfinite(e) and e >= 0 for e in etas), f
            assert f.eta_low_s <= f.eta_s <= f.eta_high_s  # type: ignore[operator]
        progress = (f.final_progress_low, f.final_progress, f.final_progress_high)
        if f.final_progress is not None:
            assert all(p is not None and 0.0 <= p <= 1.0 for p in progress), f
            assert f.final_progress_low <= f.final_progress <= f.final_progress_high  # type: ignore[operator]


def test_a_gap_between_paced_passes_is_no_stall() -> None:
    # 10 users, a pass each every 5 s (pacing): no progress for 4.5 s between waves.
    fc = Forecaster()
    done = 0.0
    for i in range(1, 31):
        t = i * 0.5
        if i % 10 == 1:
            done += 10.0
        f = fc.observe(t, done, 100.0, 10, (), 0.0, None, 0.0, 5.0)
        assert f.method == "holt", (t, f)
        assert f.eta_s is not None
    # Without the pacing known, 3 s without progress is a stall.
    short = Forecaster()
    for i in range(1, 10):
        f = short.observe(i * 0.5, 10.0, 100.0, 10)
    assert (f.method, f.eta_s) == ("stalled", None)
