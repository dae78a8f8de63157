"""The open model against a real server with a known service time: arrival-rate profiles
start iterations on schedule whether or not earlier ones finished, count the ones no free
user could take (`dropped_iterations`), warn when the rate cannot be held, and report how
late iterations started against their schedule."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
from rich.console import Console

from scenario_kit import Doc, Ran, act, document, edge, end, graph, http, on, run
from wbsrun.dsl.thresholds import PlanNames, parse_metric
from wbsrun.progress.report import progress_snapshot
from wbsrun.progress.thresholds import observe
from wbsrun.target import TargetKnobs, TargetProcess
from wbsrun.telemetry.console import LiveLine, live_fields
from wbsrun.telemetry.metrics._families import families
from wbsrun.telemetry.metrics._sample import RunSources, take_sample
from wbsrun.telemetry.summary import print_summary

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"


def arrival_doc(**profile: Any) -> Doc:
    """One GET of /asset per pass, under a profile `p`."""
    flow = graph(act("probe", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    doc = document({"fetch": http("get")}, flow, 1)
    doc["load"]["profiles"] = {"p": {k.replace("_", "-"): v for k, v in profile.items()}}
    doc["load"]["scenarios"][0]["profile"] = "p"
    return doc


def start_times(ran: Ran) -> list[float]:
    """When each pass started, seconds after the run started, ascending."""
    return sorted(e.trace[0][2] - ran.runner.started_wall for e in ran.entries)


def slow_target(factory: Callable[..., TargetProcess], ms: float = 300) -> TargetProcess:
    return factory(knobs=TargetKnobs(latency_ms=ms))


def test_a_constant_arrival_rate_holds_its_rate_against_a_slow_server(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    # 20 iterations/s of 300 ms each: ~6 run at once, more than any closed loop of the
    # pre-allocated users would start (4 users x 1/0.3 s = 13.3/s).
    target = slow_target(target_factory)
    doc = arrival_doc(
        type="constant-arrival-rate", rate=20, duration="4s", pre_allocated_users=4, max_users=20
    )
    ran = run(tmp_path, doc, on(target))
    starts = start_times(ran)
    assert len(starts) == 80
    # Over the window: 20/s within 2 % (79 intervals between the first and the last start).
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert abs(rate - 20) / 20 < 0.02, rate
    # And every second of it: 20 started (one may slip across a second's edge).
    per_second = Counter(int(t - starts[0]) for t in starts)
    assert all(abs(n - 20) <= 1 for n in per_second.values()), per_second
    result = ran.result
    jsonschema.validate(result, json.loads(SCHEMA.read_text("utf-8")))
    assert result["dropped_iterations"] == 0
    arrival = result["scenarios"]["s"]["arrival"]
    assert arrival["planned"] == arrival["started"] == 80
    assert arrival["dropped"] == 0
    assert abs(arrival["achieved_per_second"] - 20) < 0.01
    # Users were added beyond the 4 pre-allocated, never past max-users.
    assert 6 <= result["users"]["started"] <= 20
    # The pass seen from its scheduled start is at least the service time.
    assert arrival["from_schedule_ms"]["p50"] >= 300
    assert arrival["iteration_delay_ms"]["count"] == 80
    assert arrival["iteration_delay_ms"]["p50"] < 50
    assert result["progress"]["planned_tasks"] == 80


def test_too_few_max_users_drop_iterations_count_them_and_warn(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    # 2 users of 300 ms passes hold at most ~6.7/s of the 20/s asked.
    target = slow_target(target_factory)
    doc = arrival_doc(
        type="constant-arrival-rate", rate=20, duration="3s", pre_allocated_users=1, max_users=2
    )
    ran = run(tmp_path, doc, on(target))
    result = ran.result
    jsonschema.validate(result, json.loads(SCHEMA.read_text("utf-8")))
    arrival = result["scenarios"]["s"]["arrival"]
    started = len(ran.entries)
    assert arrival["planned"] == 60
    assert arrival["started"] == started
    assert arrival["dropped"] == 60 - started
    assert 15 <= started <= 24  # ~6.7/s for 3 s
    assert result["dropped_iterations"] == result["scenarios"]["s"]["dropped_iterations"]
    assert result["dropped_iterations"] == 60 - started
    assert result["users"]["started"] == 2
    # Thresholds read the count, overall and per scenario (k6's dropped_iterations).
    names = PlanNames(scenarios=frozenset({"s"}))
    for metric in ("dropped_iterations", "scenarios.s.dropped_iterations"):
        assert observe(parse_metric(metric, names), result) == 60 - started
    warnings = [line for line in ran.log.recent if "arrival rate cannot be held" in line]
    assert len(warnings) == 1, ran.log.recent
    assert "asked 20 iterations/s" in warnings[0]
    assert "all 2 max-users" in warnings[0]
    # The same warning, once, on the console (above the live line).
    (notice,) = ran.runner.ctx.stats.notices
    assert notice in warnings[0]
    out = io.StringIO()
    line = LiveLine(ran.runner, Console(file=out, width=400))
    line.notices()
    line.notices()
    assert out.getvalue().count("arrival rate cannot be held") == 1
    # The live line says how many were dropped, after the errors.
    fields = live_fields(ran.runner, progress_snapshot(ran.runner), 0.0)
    at = fields.index(f"dropped {60 - started}")
    assert fields[at - 1].startswith("errors ")
    # The end summary gives the scenario's arrivals: started of planned, rates, dropped.
    summary = io.StringIO()
    print_summary(Console(file=summary, width=200), result)
    assert f"arrivals  s: {started} of 60 (" in summary.getvalue()
    assert f"/s of 20/s) · {60 - started} dropped" in summary.getvalue()
    # The exporter counts them per scenario.
    (family,) = (
        f
        for f in families(take_sample(RunSources(ran.runner)))
        if f.name.endswith("dropped_iterations")
    )
    assert [(x.name, x.labels, x.value) for x in family.samples] == [
        ("wbsrun_dropped_iterations_total", {"scenario": "s"}, 60 - started)
    ]


def test_the_live_line_has_no_dropped_field_while_none_were(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory()
    doc = arrival_doc(type="constant-arrival-rate", rate=10, duration="1s", pre_allocated_users=2)
    ran = run(tmp_path, doc, on(target))
    assert ran.result["dropped_iterations"] == 0
    fields = live_fields(ran.runner, progress_snapshot(ran.runner), 0.0)
    assert not [f for f in fields if f.startswith("dropped")]
    assert ran.runner.ctx.stats.notices == []


def test_a_ramping_arrival_rate_follows_its_stages(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    # 0 → 20/s over 2 s (N(t) = 5 t²: 5 in the first second, 15 in the second), then 20/s.
    target = slow_target(target_factory, 100)
    doc = arrival_doc(
        type="ramping-arrival-rate",
        start_rate=0,
        stages=[{"duration": "2s", "target": 20}, {"duration": "1s", "target": 20}],
        pre_allocated_users=2,
        max_users=10,
    )
    ran = run(tmp_path, doc, on(target))
    starts = start_times(ran)
    assert len(starts) == 40
    per_second = Counter(int(t - starts[0] + 0.01) for t in starts)
    assert abs(per_second[0] - 5) <= 1
    assert abs(per_second[1] - 15) <= 1
    assert abs(per_second[2] - 20) <= 1
    assert ran.result["scenarios"]["s"]["arrival"]["dropped"] == 0
