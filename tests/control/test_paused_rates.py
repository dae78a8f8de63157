"""Paused seconds are left out of the rates computed over time: the series' per-interval rps
(live and in the result) and the ETA's pace (progress/series.py, progress/aggregate.py)."""

from __future__ import annotations

import pytest

from wbsrun.core.stats import Histogram
from wbsrun.progress.aggregate import Aggregator, ProgressUpdate
from wbsrun.progress.baseline import ScenarioBaseline
from wbsrun.progress.series import Series


def sample(series: Series, now: float, requests: int, paused_s: float) -> None:
    series.sample(
        now,
        requests=requests,
        failed=0,
        errors={},
        latency=Histogram(),
        users=1,
        work=None,
        time=None,
        planned=None,
        milestones=None,
        eta_s=None,
        health=None,
        leases=0,
        paused_s=paused_s,
    )


def test_the_series_rps_divides_by_the_seconds_not_paused() -> None:
    series = Series(cap=4)
    sample(series, 1.0, 10, 0.0)  # 10 in a second
    sample(series, 2.0, 15, 0.5)  # 5 in the half second not paused
    assert series.latest()["rps"] == 10.0
    assert series.latest()["paused_s"] == 0.5
    sample(series, 3.0, 15, 1.5)  # paused the whole second
    assert series.latest()["rps"] == 0.0
    ts = series.to_json()
    assert ts["rps"] == [10.0, 10.0, 0.0]
    assert ts["paused_s"] == [0.0, 0.5, 1.0]
    for t in (4.0, 5.0, 6.0):  # past the cap: pairs merge, their paused seconds add up
        sample(series, t, 15 + 10 * int(t - 3), 1.5)
    ts = series.to_json()
    assert sum(ts["paused_s"]) == pytest.approx(1.5)
    assert sum(ts["requests"]) == 45
    assert ts["rps"][0] == pytest.approx(15 / 1.5)  # t 0-2: 15 requests in 1.5 s not paused


def test_a_run_never_paused_has_no_paused_column() -> None:
    series = Series()
    sample(series, 1.0, 10, 0.0)
    assert "paused_s" not in series.to_json()
    assert "paused_s" not in series.latest()


def _closing(agg: Aggregator, second: int) -> None:
    """Two users close one pass each."""
    for user in ("u1", "u2"):
        task = f"{user}-t{second}"
        agg.apply(ProgressUpdate(task, user, "a", 1.0, frozenset(), True))


def _run(pause: float) -> float | None:
    """10 s of two passes a second with a pause of `pause` seconds after the fifth: the ETA."""
    base = ScenarioBaseline(
        name="a",
        users=2,
        planned_tasks=100,
        passes_per_user=50,
        duration=None,
        last_start=0.0,
        milestones=(),
    )
    agg = Aggregator([base])
    t = 0.0
    eta = None
    for second in range(10):
        if second == 5:
            for step in range(int(pause * 2)):  # snapshots while paused: nothing closes
                agg.snapshot(t + 0.5 * (step + 1), paused=0.5 * (step + 1))
            t += pause
        for half in (0.5, 1.0):
            if half == 1.0:
                _closing(agg, second)
            eta = agg.snapshot(t + half, paused=pause if second >= 5 else 0.0).eta_s
        t += 1.0
    return eta


def test_the_eta_pace_leaves_the_paused_seconds_out() -> None:
    steady, paused = _run(0.0), _run(6.0)
    assert steady is not None
    assert paused is not None
    # 80 passes left at two a second: the pause changes nothing (it would add ~40 %).
    assert steady == pytest.approx(40.0, rel=0.1)
    assert paused == pytest.approx(steady, rel=0.02)
