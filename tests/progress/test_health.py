"""The run's health score: the DSL §9 formula over the run's progress, errors and deviation."""

from __future__ import annotations

import pytest

from wbsrun.progress import run_health


def test_a_finished_run_without_errors_scores_one() -> None:
    h = run_health(1.0, 1.0, 100, 0)
    assert h.score == pytest.approx(1.0)
    assert (h.progress, h.error_rate, h.deviation) == (1.0, 0.0, 0.0)


def test_errors_and_lag_behind_the_plan_lower_the_score() -> None:
    h = run_health(0.5, 0.75, 200, 50)
    assert h.error_rate == pytest.approx(0.25)
    assert h.deviation == pytest.approx(0.25)
    assert h.score == pytest.approx(0.5 * 0.6 + 0.75 * 0.3 + 0.75 * 0.1)


def test_ahead_of_plan_no_requests_and_no_time_line_mean_no_penalty() -> None:
    assert run_health(0.8, 0.5, 0, 0).deviation == 0.0
    assert run_health(0.8, None, 0, 0).error_rate == 0.0
    assert run_health(0.8, None, 0, 0).score == pytest.approx(0.8 * 0.6 + 0.3 + 0.1)


def test_inputs_out_of_range_are_clamped() -> None:
    h = run_health(1.7, -1.0, 10, 20)
    assert (h.progress, h.error_rate, h.deviation) == (1.0, 1.0, 0.0)
    assert h.to_json() == {"score": 0.7, "progress": 1.0, "error_rate": 1.0, "deviation": 0.0}
