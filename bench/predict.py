"""Prediction accuracy: recorded runs replayed through the ETA estimators.

    .venv/bin/python bench/predict.py                          # replay bench/data/predict/*.json
    .venv/bin/python bench/predict.py record --runs 3          # record them again (~5 min)
    .venv/bin/python bench/predict.py record --profile stepped --runs 1

Recording: each profile runs in-process (the `Runner` with the `AggregatingSink`, as `wbsrun
run` wires it) against the embedded target (`wbsrun.target.TargetProcess`) whose latency knob
follows the profile's schedule (`TargetProcess.control`, at run time). 50 users × 60 passes of
one GET with a 200 ms think time; the target answers after 100 ms:
  steady     all users at once, 100 ms throughout                              (~18 s)
  ramping    users spawned at 4/s (the last at 12.25 s), 100 ms throughout     (~30 s)
  stepped    all at once; the target slows to 200 ms at 6 s                     (~22 s)
  degrading  all at once; the latency grows 15 ms a second from 100 ms, and the plan ends at
             24 s (`max-duration`), which the run misses                       (~24 s, cut)
Every half second the scenario's aggregator sums (`Aggregator.sums()`) are stored with the
knob schedule, the scenario document and the run's end: `bench/data/predict/PROFILE-N.json`
(a few kB; each also carries `duration_s` and a per-second `timeseries` of work and users, so
the files are `--history` material).

Replay: each recording's sums are loaded into a fresh `Aggregator` (`load()`) and snapshot at
the recorded time, as the live line would, giving the new forecast (`holt`); the old windowed
estimator (`progress.eta.EtaEstimator`, the aggregator's before this change) is fed the same
inputs (`windowed`); `holt+history` replays with the other recordings of the same profile as
earlier runs (leave one out). Reported per run: when the first estimate came, the ETA error
|ETA − time actually left| / time left at the first sample past 10/25/50/75 % of the work, the
share of samples whose band held the truth, and when the miss warning came (and how far before
the end, as a share of the run). False alarms: every run that is not `degrading`, replayed with
a plan end (`max-duration`) 25 % after its actual end, must never be warned of.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wbsrun.core.log import RunLog
from wbsrun.core.runner import Runner
from wbsrun.dsl.loader import load_plan
from wbsrun.progress.aggregate import AggregatingSink, Aggregator, ScenarioSums
from wbsrun.progress.baseline import ScenarioBaseline, baselines
from wbsrun.progress.eta import EtaEstimator
from wbsrun.progress.forecast import Prior, Season
from wbsrun.progress.history import pace_profile
from wbsrun.protocols.registry import build_components, provides
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetKnobs, TargetProcess

DATA = Path(__file__).resolve().parent / "data" / "predict"
MARKS = (0.10, 0.25, 0.50, 0.75)
SAMPLE_S = 0.5
COLUMNS = ("t", "total", "closed_total", "started", "closed", "users", "users_done", "pass_time")


@dataclass(frozen=True)
class Profile:
    spawn_rate: str | None = None
    knobs: tuple[tuple[float, float], ...] = ((0.0, 100.0),)  # (at s, latency ms)
    max_duration: str | None = None


def _degrading() -> tuple[tuple[float, float], ...]:
    return tuple((t / 2, 100.0 + 15.0 * t / 2) for t in range(80))


PROFILES = {
    "steady": Profile(),
    "ramping": Profile(spawn_rate="4/s"),
    "stepped": Profile(knobs=((0.0, 100.0), (6.0, 200.0))),
    "degrading": Profile(knobs=_degrading(), max_duration="24s"),
}


def document(profile: Profile, port: int) -> dict[str, Any]:
    scenario: dict[str, Any] = {
        "name": "s",
        "workflow": "wf",
        "user-count": 50,
        "iterations": 60,
        "think-time": "200ms",
    }
    if profile.spawn_rate:
        scenario["spawn-rate"] = profile.spawn_rate
    if profile.max_duration:
        scenario["max-duration"] = profile.max_duration
    node: dict[str, Any] = {"id": "get", "type": "action", "action": "get"}
    node["controls"] = {"exec": {"transitions": [{"to": "done", "condition": "always"}]}}
    return {
        "version": "1.0",
        "name": "predict",
        "components": [
            {"name": "http", "version": "1.0.0", "kind": "native", "capabilities": ["get"]}
        ],
        "actions": {
            "get": {
                "component": "http",
                "call": "get",
                "with": {"url": f"http://127.0.0.1:{port}/asset"},
            }
        },
        "workflows": {
            "wf": {
                "type": "graph",
                "nodes": [node, {"id": "done", "type": "terminus", "state": "closing.success"}],
            }
        },
        "load": {"scenarios": [scenario]},
    }


def _plan_dir(doc: dict[str, Any], where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return where


# -- recording -----------------------------------------------------------------------------------
async def _record_run(
    runner: Runner, agg: Aggregator, target: TargetProcess, p: Profile
) -> list[list[float]]:
    rows: list[list[float]] = []

    async def knobs() -> None:
        for at, latency in p.knobs[1:]:
            await asyncio.sleep(max(0.0, at - runner.elapsed))
            if runner.ended_at is not None:
                return
            await asyncio.to_thread(target.control, latency_ms=latency)

    async def sample() -> None:
        while runner.ended_at is None:
            await asyncio.sleep(SAMPLE_S - runner.elapsed % SAMPLE_S)
            s = agg.sums()["s"]
            t = runner.elapsed
            rows.append([round(t, 3), s.total, s.closed_total, s.started, s.closed, s.users])
            rows[-1] += [s.users_done, round(s.pass_time, 4)]

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(knobs()), tg.create_task(sample())]
        await runner.run()
        for task in tasks:
            task.cancel()
    return rows


def record(name: str, index: int) -> Path:
    profile = PROFILES[name]
    with TargetProcess.start(knobs=TargetKnobs(latency_ms=profile.knobs[0][1])) as target:
        doc = document(profile, target.port)
        with tempfile.TemporaryDirectory() as tmp:
            plan = load_plan(_plan_dir(doc, Path(tmp)), provides())
        log = RunLog()
        sink = AggregatingSink.for_run(plan)
        runner = Runner(plan, build_components(plan, log), PoolManager(plan), log, events=sink)
        started = time.time()
        rows = asyncio.run(_record_run(runner, sink.aggregator, target, profile))
    duration = runner.elapsed
    planned = 50 * 60
    per_second = [r for r in rows if abs(r[0] - round(r[0])) < 0.01]
    out = {
        "command": f"python bench/predict.py record --profile {name} --runs N (run {index})",
        "profile": name,
        "knobs": list(profile.knobs),
        "document": doc,
        # result-shaped, so that the recordings can be `--history` material
        "scenario": "predict",
        "status": "completed",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(duration, 3),
        "progress": {"scenarios": {"s": {"planned_tasks": planned}}},
        "timeseries": {
            "t": [r[0] for r in per_second],
            "work": [round(r[1] / planned, 4) for r in per_second],
            "users": [int(r[5] - r[6]) for r in per_second],
        },
        "columns": list(COLUMNS),
        "samples": [[round(x, 4) if isinstance(x, float) else x for x in r] for r in rows],
    }
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"{name}-{index}.json"
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n", encoding="utf-8")
    return path


# -- replay --------------------------------------------------------------------------------------
@dataclass
class Replay:
    first_s: float | None
    errors: dict[float, float | None]
    coverage: float | None
    warned_s: float | None
    duration: float


def _old_eta(est: EtaEstimator, base: ScenarioBaseline, row: Sequence[float]) -> float | None:
    """The aggregator's ETA before the forecast: EtaEstimator with the inputs it was given."""
    t, total, closed_total, _started, closed, users, users_done, pass_time = row
    planned = float(base.planned_tasks or 0)
    mean_pass = pass_time / closed if closed else 0.0
    done = closed + (total - closed_total)
    future = base.starts[bisect_right(base.starts, t) :]
    passes = base.passes_per_user or 1
    gap = max(base.think_time, base.pacing - mean_pass)
    floor = max(0.0, base.last_start + passes * mean_pass + (passes - 1) * gap - t)
    return est.estimate(t, done, planned, int(users - users_done), future, floor)


def replay(
    rec: dict[str, Any], method: str, prior: Prior | None = None, plan_end: str | None = None
) -> Replay:
    """`plan_end`: replay as if the scenario had that `max-duration` (a false-alarm check)."""
    doc = rec["document"]
    if plan_end is not None:
        doc = json.loads(json.dumps(doc))
        doc["load"]["scenarios"][0]["max-duration"] = plan_end
    with tempfile.TemporaryDirectory() as tmp:
        plan = load_plan(_plan_dir(doc, Path(tmp)), provides())
    (base,) = baselines(plan)
    agg = Aggregator([base])
    if prior is not None:
        agg.use_history({"s": prior})
    old = EtaEstimator()
    end = float(rec["duration_s"])
    planned = float(base.planned_tasks or 1)
    first: float | None = None
    errors: dict[float, float | None] = {}
    inside = counted = 0
    warned: float | None = None
    for row in rec["samples"]:
        t, total, closed_total, started, closed, users, users_done, pass_time = row
        sums = ScenarioSums(total, closed_total, started, closed, users, users_done, pass_time, {})
        agg.load([{"s": sums}])
        view = agg.snapshot(t).scenario("s")
        fc = view.forecast
        assert fc is not None
        eta, low, high = fc.eta_s, fc.eta_low_s, fc.eta_high_s
        if method == "windowed":
            eta = _old_eta(old, base, row)
            low = high = eta
        truth = end - t
        if eta is not None and first is None:
            first = t
        if method != "windowed" and fc.warned_at_s is not None and warned is None:
            warned = fc.warned_at_s
        if eta is not None and low is not None and high is not None and truth > 0.5:
            counted += 1
            inside += low - 0.5 <= truth <= high + 0.5
        for mark in MARKS:
            if mark not in errors and total / planned >= mark:
                errors[mark] = abs(eta - truth) / truth if eta is not None and truth > 0 else None
    return Replay(first, errors, inside / counted if counted else None, warned, end)


def _prior(others: Sequence[dict[str, Any]]) -> Prior | None:
    if not others:
        return None
    profiles = [p for o in others if (p := pace_profile(o["timeseries"], 3000.0)) is not None]
    season = None
    if profiles:
        season = Season(tuple(statistics.fmean(p[i] for p in profiles) for i in range(10)))
    return Prior(tuple(float(o["duration_s"]) for o in others), season)


def _pct(x: float | None) -> str:
    return "  -  " if x is None else f"{x * 100:4.1f}%"


def report(paths: Sequence[Path]) -> dict[str, Any]:
    recs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(paths)]
    by_profile: dict[str, list[dict[str, Any]]] = {}
    for rec in recs:
        by_profile.setdefault(rec["profile"], []).append(rec)
    head = "profile    run  end s  estimator      first  @10%   @25%   @50%   @75%   band   warned"
    print(head)
    print("-" * len(head))
    out: dict[str, Any] = {}
    for name in PROFILES:
        runs = by_profile.get(name, [])
        for i, rec in enumerate(runs):
            others = runs[:i] + runs[i + 1 :]
            for method in ("windowed", "holt", "holt+history"):
                if method == "holt+history" and not others:
                    continue
                prior = _prior(others) if method == "holt+history" else None
                r = replay(rec, "windowed" if method == "windowed" else "holt", prior)
                first = "never" if r.first_s is None else f"{r.first_s:.1f}s"
                warned = "-"
                if r.warned_s is not None:
                    lead = (r.duration - r.warned_s) / r.duration
                    warned = f"{r.warned_s:.1f}s ({lead * 100:.0f}% before end)"
                cells = "  ".join(f"{_pct(r.errors.get(m)):>5}" for m in MARKS)
                band = "  -  " if method == "windowed" else _pct(r.coverage)
                print(
                    f"{name:<10} {i + 1:>3} {r.duration:6.1f}  {method:<13} {first:>6}  "
                    f"{cells}  {band:>5}  {warned}"
                )
                out.setdefault(name, []).append(
                    {"run": i + 1, "method": method, "end_s": r.duration, "first_s": r.first_s}
                    | {"errors": {str(m): e for m, e in r.errors.items()}}
                    | {"band_coverage": r.coverage, "warned_s": r.warned_s}
                )
    print()
    print("false alarms: runs that keep their plan, replayed with a plan end 25 % after their end")
    alarms = []
    for rec in recs:
        if rec["profile"] == "degrading":
            continue
        plan_end = f"{float(rec['duration_s']) * 1.25:.1f}s"
        r = replay(rec, "holt", plan_end=plan_end)
        alarms.append(r.warned_s is not None)
        said = "none" if r.warned_s is None else f"WARNED at {r.warned_s:.1f}s"
        print(f"  {rec['profile']:<10} end {r.duration:5.1f}s  plan end {plan_end:>6}  {said}")
    out["false_alarms"] = {"runs": len(alarms), "warned": sum(alarms)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", nargs="?", choices=["replay", "record"], default="replay")
    ap.add_argument("--profile", choices=sorted(PROFILES), action="append")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.action == "record":
        for i in range(1, args.runs + 1):
            for name in args.profile or list(PROFILES):
                print(f"recorded {record(name, i)}", flush=True)
        return 0
    paths = sorted(DATA.glob("*.json"))
    if args.profile:
        paths = [p for p in paths if p.name.split("-")[0] in args.profile]
    if not paths:
        print(f"no recordings in {DATA}: `bench/predict.py record` first", file=sys.stderr)
        return 1
    figures = report(paths)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
