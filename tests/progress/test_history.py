"""`--history DIR` (progress/history.py): which earlier results count, what they give (durations,
the pace profile over the fraction done), and the aggregator's program forecast built from its
scenarios' forecasts (will-miss, the warning handed out once)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from wbsrun.progress.aggregate import Aggregator, ProgressUpdate
from wbsrun.progress.baseline import ScenarioBaseline
from wbsrun.progress.forecast import Prior
from wbsrun.progress.history import BINS, load_history, pace_profile

NOW = time.time()


def result(
    duration: float,
    *,
    plan: str = "shop",
    status: str = "completed",
    planned: int = 100,
    age_s: float = 3600.0,
    series: dict[str, Any] | None = None,
) -> dict[str, Any]:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - age_s))
    return {
        "scenario": plan,
        "status": status,
        "started_at": started,
        "duration_s": duration,
        "progress": {"scenarios": {"buy": {"planned_tasks": planned}}},
        "timeseries": series or {},
    }


def write(directory: Path, name: str, doc: object) -> None:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc, encoding="utf-8")


def test_only_recent_completed_runs_of_the_same_plan_and_size_count(tmp_path: Path) -> None:
    write(tmp_path, "a.json", result(20.0))
    write(tmp_path, "out/result.json", result(30.0))  # an --out directory
    write(tmp_path, "other.json", result(5.0, plan="other"))
    write(tmp_path, "bigger.json", result(6.0, planned=200))
    write(tmp_path, "stopped.json", result(7.0, status="interrupted"))
    write(tmp_path, "old.json", result(8.0, age_s=8 * 86_400))
    write(tmp_path, "junk.json", "{not json")
    write(tmp_path, "list.json", [1, 2])
    write(tmp_path, "deep/er/result.json", result(9.0))  # not searched
    found = load_history(tmp_path, "shop", {"buy": 100}, now=NOW)
    assert found.used == 2
    assert sorted(found.priors["buy"].durations) == [20.0, 30.0]
    assert found.skipped == {
        "another plan": 1,
        "another plan size": 1,
        "not completed": 1,
        "older than 7 days": 1,
        "not a JSON result": 2,
    }


def test_time_boxed_scenarios_and_an_empty_directory_get_no_prior(tmp_path: Path) -> None:
    assert load_history(tmp_path, "shop", {"buy": 100}, now=NOW).priors == {}
    write(tmp_path, "a.json", result(20.0))
    assert load_history(tmp_path, "shop", {"buy": None}, now=NOW).priors == {}


def test_the_pace_profile_is_relative_to_the_runs_mean_pace_by_fraction_done() -> None:
    # 10 users; work 0 → 0.5 in 5 s, then 0.5 → 1.0 in 10 s: the second half at half the pace.
    ts = [float(t) for t in range(1, 16)]
    work = [min(0.1 * t, 0.5) if t <= 5 else 0.5 + 0.05 * (t - 5) for t in range(1, 16)]
    profile = pace_profile({"t": ts, "work": work, "users": [10] * 15}, 100.0)
    assert profile is not None
    assert len(profile) == BINS
    fast, slow = profile[:5], profile[5:]
    # Mean pace over the run (time-weighted): 100 passes / (10 users × 15 s) = 2/3.
    assert all(p == pytest.approx(1.0 / (2 / 3)) for p in fast)
    assert all(p == pytest.approx(0.5 / (2 / 3)) for p in slow)
    assert pace_profile({"t": [1.0], "work": [0.0], "users": [0]}, 100.0) is None
    assert pace_profile({}, 100.0) is None


def test_the_season_comes_from_a_one_scenario_plans_series(tmp_path: Path) -> None:
    ts = [1.0, 2.0, 3.0, 4.0]
    series = {"t": ts, "work": [0.25, 0.5, 0.75, 1.0], "users": [5, 5, 5, 5]}
    write(tmp_path, "a.json", result(4.0, series=series))
    prior = load_history(tmp_path, "shop", {"buy": 100}, now=NOW).priors["buy"]
    assert prior.season is not None
    assert prior.season.index == pytest.approx((1.0,) * BINS)


def two_scenarios() -> Aggregator:
    return Aggregator(
        [
            ScenarioBaseline("a", 10, 100, 10, 12.0, 0.0, starts=(0.0,) * 10),
            ScenarioBaseline("b", 10, 100, 10, None, 0.0, starts=(0.0,) * 10),
        ]
    )


def progress(agg: Aggregator, scenario: str, passes: int, t: float) -> None:
    for i in range(passes):
        tid = f"{scenario}-{t}-{i}"
        agg.apply(ProgressUpdate(tid, f"{scenario}-u{i % 10}", scenario, 1.0, frozenset(), True))


def test_the_program_misses_when_a_scenario_does_and_the_warning_is_handed_out_once() -> None:
    agg = two_scenarios()
    misses: list[str] = []
    for step in range(1, 21):
        t = step * 0.5
        progress(agg, "a", 1, t)  # 2 passes/s: 100 passes need 50 s, the plan ends at 12 s
        progress(agg, "b", 4, t)  # 8 passes/s, no plan end
        detail = agg.snapshot(t)
        misses += agg.new_misses(detail)
    assert misses == ["a"]
    fc = detail.forecast
    assert fc is not None
    a, b = detail.scenario("a").forecast, detail.scenario("b").forecast
    assert a is not None
    assert b is not None
    assert (a.will_miss_plan, b.will_miss_plan, fc.will_miss_plan) == (True, False, True)
    assert fc.warned_at_s == a.warned_at_s
    # The program's ETA is its latest scenario's; `a` is cut at its plan's end.
    assert fc.eta_s == max(a.eta_s or 0.0, b.eta_s or 0.0)
    assert a.eta_s == pytest.approx(12.0 - 10.0, abs=0.01)  # + a mean pass (~0 here)
    assert a.final_progress is not None
    assert a.final_progress < 0.5
    assert fc.method == "holt"


def test_history_reaches_the_scenarios_forecasters() -> None:
    agg = two_scenarios()
    agg.use_history({"b": Prior((40.0, 50.0, 60.0)), "unknown": Prior((1.0,))})
    f = agg.snapshot(2.0).scenario("b").forecast
    assert f is not None
    assert (f.method, f.eta_s, f.history_runs) == ("history", 48.0, 3)


def test_plans_that_fix_their_end_are_scheduled_and_never_missed() -> None:
    arrivals = ScenarioBaseline("arr", 5, 20, None, 10.0, 0.0, schedule_end=10.0)
    boxed = ScenarioBaseline("box", 1, None, None, 10.0, 0.0, starts=(0.0,), ends=(10.0,))
    agg = Aggregator([arrivals, boxed])
    progress(agg, "arr", 5, 1.0)
    during = agg.snapshot(2.0)
    for name in ("arr", "box"):
        f = during.scenario(name).forecast
        assert f is not None
        assert (f.method, f.final_progress, f.will_miss_plan) == ("schedule", None, False)
        assert f.eta_low_s == f.eta_s == f.eta_high_s
    # Ended late (a slow last pass) with a quarter of the iterations: still not a miss here.
    end = agg.snapshot(12.0, finished=True)
    assert end.forecast is not None
    assert (end.forecast.method, end.forecast.will_miss_plan) == ("done", False)
