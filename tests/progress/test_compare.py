"""The comparison of two results (figures by name, ratios B/A, ETA accuracy) and the
`--fail-on` tolerance grammar, on results in the shape SPEC-19 fixes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wbsrun.progress.compare import (
    ACTION_STATS,
    LATENCY_STATS,
    RUN_METRICS,
    compare,
    eta_error_s,
    figures,
    split_action,
)
from wbsrun.progress.health import run_health
from wbsrun.progress.tolerance import (
    OPS,
    Tolerance,
    ToleranceError,
    check,
    number,
    parse_tolerance,
)


def lat(base: float) -> dict[str, float]:
    spread = dict(zip(LATENCY_STATS, (0.5, 1.1, 1.0, 1.8, 2.2, 3.1, 4.0, 5.0), strict=True))
    return {"count": 100, **{k: base * f for k, f in spread.items()}}


def result(base: float, failed: int = 10, total: int = 1000, **extra: Any) -> dict[str, Any]:
    return {
        "scenario": "s",
        "status": "completed",
        "started_at": "2026-01-01T00:00:00Z",
        "duration_s": 10.0,
        "requests": {
            "total": total,
            "ok": total - failed,
            "failed": failed,
            "per_second": total / 10.0,
            "failed_rate": failed / total,
            "latency_ms": lat(base),
            "status_codes": {"200": total - failed, "503": failed},
            "status": {"2xx": total - failed, "5xx": failed},
        },
        "actions": {
            "http.get": {
                "count": total,
                "failed": failed,
                "per_second": total / 10.0,
                "latency_ms": lat(base),
            },
            "login": {"count": 10, "failed": 0, "per_second": 1.0, "latency_ms": lat(2 * base)},
        },
        "errors": {"http-5xx": failed},
        "progress": {"work": 1.0, "time": 1.0, "milestones_weighted": 0.9},
        "health": {"score": 0.97},
        **extra,
    }


def test_figures_read_every_spec_key_by_its_metric_name() -> None:
    fig = figures(result(10.0))
    assert fig["requests"] == 1000
    assert fig["rps"] == 100.0
    assert fig["p95"] == 22.0
    assert fig["p99.9"] == 40.0
    assert fig["failed_rate"] == 0.01
    assert fig["status.503"] == fig["status.5xx"] == fig["errors.http-5xx"] == 10
    assert (fig["work"], fig["milestones"], fig["health"]) == (1.0, 0.9, 0.97)
    assert fig["actions.http.get.p99.9"] == 40.0
    assert fig["actions.login.failed_rate"] == 0.0
    assert fig["actions.http.get.rps"] == 100.0
    assert fig["eta_error_s"] is None  # no timeseries: n/a


def test_older_results_get_failed_rate_and_health_computed_and_the_rest_na() -> None:
    old = result(10.0)
    for key in ("failed_rate", "latency_ms", "status_codes", "status"):
        del old["requests"][key]
    del old["health"]
    fig = figures(old)
    assert fig["failed_rate"] == 0.01
    assert fig["health"] == round(run_health(1.0, 1.0, 1000, 10).score, 4)
    assert fig["p95"] is None


def test_eta_error_is_the_mean_distance_of_the_predicted_end_from_the_actual() -> None:
    # Predicted ends 1+5=6, 2+2=4, 3+1=4, (none), 4+0=4 against the end at 4 s.
    series = {"t": [1.0, 2.0, 3.0, 3.5, 4.0], "eta_s": [5.0, 2.0, 1.0, None, 0.0]}
    assert eta_error_s({"duration_s": 4.0, "timeseries": series}) == 0.5
    assert eta_error_s({"duration_s": 4.0, "timeseries": {"t": [], "eta_s": []}}) is None


def test_rows_give_ratios_b_over_a_and_only_actions_both_ran() -> None:
    a = result(10.0, timeseries={"t": [1.0, 2.0], "eta_s": [3.0, 0.0]}, duration_s=2.0)
    b = result(15.0, failed=0)
    b["actions"]["logout"] = b["actions"].pop("login")
    cmp = compare(a, b)
    rows = {r.metric: r for r in cmp.rows()}
    assert rows["p95"].ratio == pytest.approx(1.5)
    assert rows["actions.http.get.p99"].ratio == pytest.approx(1.5)
    assert not any(m.startswith(("actions.login.", "actions.logout.")) for m in rows)
    assert cmp.actions("only_a") == ["login"]
    assert cmp.actions("only_b") == ["logout"]
    # B saw no 503: it counts 0, not n/a; the ratio of 10 → 0 is 0.
    assert (rows["status.503"].a, rows["status.503"].b, rows["status.503"].ratio) == (10, 0, 0)
    assert rows["eta_error_s"].a == 1.0
    assert rows["eta_error_s"].ratio is None  # B has no time series
    brief = {r.metric for r in cmp.rows(brief=True)}
    assert "actions.http.get.p95" in brief
    assert "actions.http.get.count" not in brief
    doc = cmp.to_json()
    assert doc["metrics"]["p95"] == {
        "section": "latency, all requests (ms)",
        "unit": "ms",
        "better": "lower",
        "a": 22.0,
        "b": 33.0,
        "ratio": 1.5,
    }


@pytest.mark.parametrize(
    ("rule", "tripped"),
    [
        ("p95 > 1.1x", True),  # 33 > 1.1 × 22
        ("p95 > 1.6x", False),
        ("http.latency_ms.p95 >= 1.5x", True),
        ("rps < 0.9x", False),
        ("failed_rate > 0.01", True),  # B: 0.02, absolute
        ("failed_rate > 0.05", False),
        ("actions.http.get.p99 > 1.2x", True),
        ("actions.http.get.latency_ms.p99.9 <= 1.4x", False),
        ("errors.http-5xx > 1.5x", True),  # 20 > 15
        ("status.503 > 25", False),
        ("health < 0.95", False),
    ],
)
def test_tolerances_trip_on_b_against_a_or_an_absolute_limit(rule: str, tripped: bool) -> None:
    cmp = compare(result(10.0), result(15.0, failed=20))
    assert check(parse_tolerance(rule), cmp).tripped is tripped


def test_relative_tolerance_against_zero_trips_on_any_increase() -> None:
    cmp = compare(result(10.0, failed=0), result(10.0, failed=3))
    verdict = check(parse_tolerance("errors.http-5xx > 1.1x"), cmp)
    assert (verdict.a, verdict.b, verdict.limit, verdict.tripped) == (0, 3, 0, True)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("eta_error_s > 1.2x", "eta_error_s is not in A nor B (it needs the result's timeseries"),
        (
            "actions.nope.p99 > 1.2x",
            "actions.nope.p99 is not in A nor B (actions: http.get, login)",
        ),
    ],
)
def test_a_tolerance_on_a_figure_the_files_lack_is_an_error(rule: str, message: str) -> None:
    cmp = compare(result(10.0), result(15.0))
    with pytest.raises(ToleranceError, match=r"^--fail-on") as caught:
        check(parse_tolerance(rule), cmp)
    assert message in str(caught.value)


def test_absolute_tolerance_needs_only_b() -> None:
    old = result(10.0)
    del old["requests"]["latency_ms"]
    verdict = check(parse_tolerance("p95 > 30"), compare(old, result(15.0)))
    assert (verdict.a, verdict.b, verdict.tripped) == (None, 33.0, True)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("p95 >> 1.1x", "expected METRIC OP VALUE[x]"),
        ("p95 1.1x", "expected METRIC OP VALUE[x]"),
        ("p95 > fast", "expected METRIC OP VALUE[x]"),
        ("p95 > 1.1y", "expected METRIC OP VALUE[x]"),
        ("", "expected METRIC OP VALUE[x]"),
        ("rsp < 0.9x", "unknown metric 'rsp' (did you mean 'rps'?)"),
        ("actions.login > 1.1x", "unknown metric 'actions.login'"),
        ("errors. > 3", "unknown metric 'errors.'"),
    ],
)
def test_malformed_tolerances_are_refused_with_the_rule_and_the_form_expected(
    rule: str, message: str
) -> None:
    with pytest.raises(ToleranceError) as caught:
        parse_tolerance(rule)
    assert f"--fail-on {rule!r}: " in str(caught.value)
    assert message in str(caught.value)


names = st.from_regex(r"[a-z][a-z0-9_-]{0,10}(\.[a-z][a-z0-9_-]{0,6})?", fullmatch=True)
metrics = st.one_of(
    st.sampled_from(sorted(RUN_METRICS)),
    st.builds(lambda n, s: f"actions.{n}.{s}", names, st.sampled_from(ACTION_STATS)),
    st.builds(lambda c: f"errors.{c}", names),
    st.builds(lambda c: f"status.{c}", st.sampled_from(["200", "503", "5xx", "none"])),
)
tolerances = st.builds(
    Tolerance,
    metrics,
    st.sampled_from(sorted(OPS)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
blank = st.sampled_from(["", " ", "  ", "\t"])


@given(tolerances)
def test_tolerance_text_reads_back_as_the_same_tolerance(t: Tolerance) -> None:
    assert parse_tolerance(str(t)) == t


@given(t=tolerances, pad=st.tuples(blank, blank, blank, blank))
def test_tolerances_read_with_any_spacing(t: Tolerance, pad: tuple[str, ...]) -> None:
    x = "x" if t.relative else ""
    text = f"{pad[0]}{t.metric}{pad[1]}{t.op}{pad[2]}{number(t.value)}{x}{pad[3]}"
    assert parse_tolerance(text) == t


@given(st.text(max_size=40))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    message = ""
    t = None
    try:
        t = parse_tolerance(text)
    except ToleranceError as exc:
        message = str(exc)
    if t is None:
        assert message.startswith("--fail-on ")
    else:
        assert t.op in OPS
        assert t.metric in RUN_METRICS or t.metric.split(".")[0] in ("actions", "errors", "status")


def test_split_action_keeps_dotted_names_and_the_p99_9_stat() -> None:
    assert split_action("actions.http.get.p99.9") == ("http.get", "p99.9")
    assert split_action("actions.http.get.p99") == ("http.get", "p99")
    assert split_action("actions.p99") is None


def test_comparing_a_result_with_itself_gives_ratio_one_everywhere() -> None:
    a = result(10.0)
    cmp = compare(a, copy.deepcopy(a))
    assert {r.ratio for r in cmp.rows() if r.a is not None} == {1.0}
