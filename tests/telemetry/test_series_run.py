"""The time series on real runs against the embedded target, wired as `wbsrun run` wires it:
its per-interval figures add up to the run's totals exactly, one point a second, the final
point at the end of the run, and the ticker never holds a run up."""

from __future__ import annotations

import io
import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from rich.console import Console

from scenario_kit import Doc, act, document, edge, end, graph, http, on
from wbsrun.cli.session import execute
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetKnobs, TargetProcess
from wbsrun.telemetry.ticker import SeriesTicker

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"


def fetch_then_missing(users: int, **scenario: Any) -> Doc:
    """GET /asset (the target fails some with 500), then GET /missing (always 404)."""
    flow = graph(
        act("fetch", "fetch", edge("miss")),
        act("miss", "miss", edge("done")),
        end(),
        on_error=[{"goto": "error_out"}],
    )
    return document(
        {"fetch": http("get"), "miss": http("get", "/missing")}, flow, users=users, **scenario
    )


def run_cli(
    tmp_path: Path,
    target: TargetProcess,
    doc: Doc,
    options: RunOptions,
    prepare: Callable[[Runner], None] | None = None,
) -> Doc:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    host, port = on(target)[0]
    (bundle / "resource.yaml").write_text(f"ip,port\n{host},{port}\n", encoding="utf-8")
    (bundle / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    out = tmp_path / "result.json"
    execute(
        load_plan(bundle, provides()),
        options,
        json_out=out,
        log_file=None,
        console=Console(file=io.StringIO()),
        live=False,
        summary=False,
        prepare=prepare,
    )
    result: Doc = json.loads(out.read_text("utf-8"))
    jsonschema.validate(result, json.loads(SCHEMA.read_text("utf-8")))
    return result


def test_a_run_of_n_seconds_has_a_point_a_second_adding_up_to_its_totals(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = target_factory(knobs=TargetKnobs(error_rate=0.3))
    seen: list[dict[str, Any]] = []

    def listen(runner: Runner) -> None:
        # The series' listeners see each sample as it is taken (live thresholds, exporters).
        (ticker,) = (s for s in runner.services if isinstance(s, SeriesTicker))
        ticker.listeners.append(lambda series: seen.append(series.latest()))

    result = run_cli(
        tmp_path, target, fetch_then_missing(users=4), RunOptions(duration=3.0), listen
    )

    ts = result["timeseries"]
    req = result["requests"]
    assert req["failed"] > 0
    assert set(result["errors"]) == {"http-4xx", "http-5xx"}
    # Exact: the intervals' deltas add up to the run's totals.
    assert sum(ts["requests"]) == req["total"]
    assert sum(ts["failed"]) == req["failed"]
    assert {code: sum(col) for code, col in ts["errors"].items()} == result["errors"]
    # One point a second (the tick at 3 s may come after the end), the last at the end.
    t = ts["t"]
    duration = result["duration_s"]
    assert math.floor(duration) <= len(t) <= math.floor(duration) + 1
    assert all(a < b for a, b in itertools.pairwise(t))
    assert t[-1] == duration
    for i, x in enumerate(t[:-1]):
        assert abs(x - (i + 1)) < 0.5, t
    assert ts["interval_s"] == 1.0
    assert ts["cap"] == 3_600
    for key in ("rps", "p50", "p95", "p99", "users", "work", "time", "planned", "health"):
        assert len(ts[key]) == len(t), key
    # An interval's p95 is there when it had requests, and only then (on a loaded machine
    # the short last interval, after the tick at 3 s, may have none).
    for p95, n in zip(ts["p95"], ts["requests"], strict=True):
        assert (p95 is not None and p95 > 0) if n else p95 is None, (ts["p95"], ts["requests"])
    assert sum(1 for n in ts["requests"] if n) >= math.floor(duration)
    assert ts["users"][0] == 4
    assert ts["users"][-1] == 0
    assert ts["work"][-1] == result["progress"]["work"]
    assert ts["time"][-1] == 1.0
    assert ts["eta_s"][-1] == 0.0
    # A time-boxed plan: the share due follows its window, and all of it is due at the end.
    assert ts["planned"][0] is not None
    assert ts["planned"][0] < 0.5
    assert ts["planned"][-1] == 1.0
    # The listener saw every sample, the final one too (no point merged in 3 s).
    assert [p["t"] for p in seen] == t
    assert [p["requests"] for p in seen] == ts["requests"]
    assert all(p["interval_s"] <= 1.5 for p in seen)
    # Every pass holds one item of the pool while it runs; none once the run is over.
    assert max(ts["leases"]) >= 1
    assert ts["leases"][-1] == 0


def test_a_run_shorter_than_a_tick_ends_at_once_with_its_one_point(
    tmp_path: Path, target: TargetProcess
) -> None:
    result = run_cli(tmp_path, target, fetch_then_missing(users=2, iterations=1), RunOptions())

    ts = result["timeseries"]
    # The ticker waits on the run's end, not on its next tick: the run does not last 1 s.
    assert result["duration_s"] < 0.8
    assert ts["t"] == [result["duration_s"]]
    assert ts["requests"] == [result["requests"]["total"]]
    assert ts["requests"][0] == 4
    assert ts["errors"] == {"http-4xx": [2]}
    assert ts["work"] == [result["progress"]["work"]]
    assert ts["eta_s"] == [0.0]
    # Count-bounded without a planned duration: no time line, so nothing is due by a time.
    assert ts["time"] == [None]
    assert ts["planned"] == [None]
