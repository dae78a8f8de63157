"""Where the run stands: time and work progress, milestones, ETA; and the JSON result."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wbsrun.core.runner import Runner
from wbsrun.core.scheduler import Scheduler
from wbsrun.core.stats import RunStats
from wbsrun.progress.aggregate import Aggregator
from wbsrun.progress.baseline import ScenarioBaseline
from wbsrun.progress.figures import (
    action_figures,
    check_figures,
    request_figures,
    scenario_figures,
)
from wbsrun.progress.health import HealthFigures, RunHealth, run_health
from wbsrun.progress.impact import impact_figures
from wbsrun.progress.pmp import (
    GroupFigures,
    PmpTimeline,
    pmp_plan,
    pmp_section,
    process_groups,
)
from wbsrun.progress.series import Series
from wbsrun.progress.views import ProgramProgress

__all__ = [
    "RESULT_SCHEMA_ID",
    "ProgressSnapshot",
    "build_result",
    "error_messages",
    "group_figures",
    "health_figures",
    "persist_figures",
    "pmp_ticker",
    "progress_snapshot",
    "resource_figures",
    "scenario_due",
    "snap_health",
    "with_pmp",
]

RESULT_SCHEMA_ID = "https://wbsrun.dev/schema/result-v1.json"


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    elapsed: float
    time: float | None
    work: float
    eta_s: float | None
    planned_tasks: int | None
    tasks_done: int
    tasks_inflight: int
    active_users: int
    planned_users: int
    # Per scenario and milestone, from the run's aggregator (None when none watched the run).
    detail: ProgramProgress | None = None
    # The share of the plan due by now (`planned_share`): what the health's deviation is from.
    planned: float | None = None
    # Live control (core/control.py): paused now, and the seconds paused so far; rates divide
    # by `elapsed - paused_s`.
    paused: bool = False
    paused_s: float = 0.0
    # The program's health and each scenario's, with their trends (`health_figures`).
    health: HealthFigures | None = None

    @property
    def active_s(self) -> float:
        return max(0.0, self.elapsed - self.paused_s)


def _planned_tasks(s: Scheduler, t0: float) -> int | None:
    spec = s.scenario
    if s.plan.arrivals is not None:
        stop = _planned_duration(s, t0)
        return s.plan.planned_iterations(stop)
    if spec.iterations is not None:
        return s.plan.users * spec.iterations
    if spec.task_duration is None and s.plan.stop_after is None and s.deadline is None:
        return s.plan.users
    return None


def _planned_duration(s: Scheduler, t0: float) -> float | None:
    candidates = []
    last_start = max(s.plan.starts, default=0.0)
    if s.scenario.task_duration is not None:
        candidates.append(last_start + s.scenario.task_duration)
    if s.plan.stop_after is not None:
        candidates.append(s.plan.stop_after)
    if s.scenario.max_duration is not None:
        candidates.append(s.scenario.max_duration + s.plan.offset)
    if s.deadline is not None:
        candidates.append(s.deadline - t0)
    return min(candidates) if candidates else None


def planned_share(
    elapsed: float,
    time_progress: float | None,
    detail: ProgramProgress | None,
    aggregator: Aggregator | None,
) -> float | None:
    """The share of the plan due at `elapsed`, weighted across scenarios as work is (by
    expected passes). Per scenario: time-boxed, the share of its planned user-time elapsed
    (`ScenarioBaseline.profile_share`: a ramp is due slowly at first); count-bounded with a
    planned duration, the elapsed share of it; count-bounded without one, no time line (None,
    left out). Without an aggregator, or when no scenario has a figure: the time progress."""
    if aggregator is None or detail is None:
        return time_progress
    bases = {b.name: b for b in aggregator.baselines}
    acc = weight = 0.0
    for view in detail.scenarios:
        base = bases.get(view.name)
        w = view.expected_tasks
        if base is None or not w:
            continue
        share = scenario_due(base, elapsed)
        if share is None:
            continue
        acc += share * w
        weight += w
    return acc / weight if weight else time_progress


def scenario_due(base: ScenarioBaseline, elapsed: float) -> float | None:
    """The share of one scenario's plan due at `elapsed`: time-boxed, the share of its planned
    user-time elapsed; count-bounded with a planned duration, the elapsed share of it; else
    None (no time line)."""
    if base.time_boxed and base.ends:
        return base.profile_share(elapsed)
    if base.duration:
        return min(1.0, elapsed / base.duration)
    return None


def health_figures(
    stats: RunStats,
    elapsed: float,
    work: float,
    planned: float | None,
    detail: ProgramProgress | None,
    aggregator: Aggregator | None,
) -> HealthFigures:
    """The program's health (the run's work, due share and requests) and each scenario's
    (its own work, due share and requests: `stats.scenarios`), with their trends when an
    aggregator keeps them (docs/progress-model.md, "Health")."""
    program = run_health(work, planned, stats.requests_total, stats.requests_failed)
    if aggregator is None or detail is None:
        return HealthFigures(program, None)
    bases = {b.name: b for b in aggregator.baselines}
    scenarios: dict[str, RunHealth] = {}
    for view in detail.scenarios:
        total = failed = 0
        for a in stats.scenarios.get(view.name, {}).values():
            total += a.requests
            failed += a.requests_failed
        base = bases.get(view.name)
        due = scenario_due(base, elapsed) if base is not None else None
        scenarios[view.name] = run_health(view.work, due, total, failed)
    return aggregator.health.figures(elapsed, program, scenarios)


def progress_snapshot(runner: Runner, aggregator: Aggregator | None = None) -> ProgressSnapshot:
    """Progress against the plan: users × passes, or the planned time window. With the run's
    aggregator, work, time and ETA are its program figures (see docs/progress-model.md)."""
    ctx = runner.ctx
    st = ctx.stats
    elapsed = runner.elapsed
    paused_s = runner.control.paused_seconds
    active = max(0.0, elapsed - paused_s)
    done = (
        st.tasks_succeeded
        + st.tasks_failed
        + st.tasks_timed_out
        + st.tasks_rolled_back
        + st.tasks_interrupted
    )
    inflight = len(ctx.inflight)
    sum_progress = ctx.progress_done + sum(ctx.inflight.values())
    planned = [_planned_tasks(s, ctx.t0) for s in runner.schedulers]
    durations = [_planned_duration(s, ctx.t0) for s in runner.schedulers]
    finished = runner.ended_at is not None
    time_progress = None
    known = [d for d in durations if d is not None]
    if known and max(known) > 0:
        time_progress = 1.0 if finished else min(1.0, elapsed / max(known))
    planned_tasks = sum(p for p in planned if p is not None) if None not in planned else None
    eta = None
    if planned_tasks is not None:
        work = sum_progress / planned_tasks if planned_tasks else 1.0
        if done and not finished:
            eta = max(0.0, (planned_tasks - done) * active / done)
    else:
        # Time-boxed plan: the work planned so far is what the elapsed share projects.
        share = time_progress or 0.0
        projected = (done + inflight) / share if share > 0 else 0.0
        work = sum_progress / projected if projected else 0.0
        if known and not finished:
            eta = max(0.0, max(known) - elapsed)
    if finished:
        eta = 0.0
        if planned_tasks is None:
            work = sum_progress / done if done else 0.0
    detail = None
    if aggregator is not None:
        detail = aggregator.snapshot(elapsed, finished=finished, paused=paused_s)
        work, time_progress, eta = detail.work, detail.time, detail.eta_s
        for name in aggregator.new_misses(detail):
            _warn_miss(runner, detail, name)
    due = planned_share(elapsed, time_progress, detail, aggregator)
    work = min(1.0, work)
    return ProgressSnapshot(
        elapsed=elapsed,
        time=time_progress,
        work=work,
        eta_s=eta,
        planned_tasks=planned_tasks,
        tasks_done=done,
        tasks_inflight=inflight,
        active_users=runner.active_users(),
        planned_users=runner.planned_users(),
        detail=detail,
        planned=due,
        paused=runner.control.paused,
        paused_s=paused_s,
        health=health_figures(st, elapsed, work, due, detail, aggregator),
    )


def snap_health(snap: ProgressSnapshot, stats: RunStats) -> HealthFigures:
    """The snapshot's health figures (one built by hand may have none: the program's then)."""
    if snap.health is not None:
        return snap.health
    return HealthFigures(
        run_health(snap.work, snap.planned, stats.requests_total, stats.requests_failed), None
    )


def _warn_miss(runner: Runner, detail: ProgramProgress, name: str) -> None:
    """The "will miss its plan" warning, once per scenario: in the run log and the notices
    (the live line prints them above itself)."""
    fc = detail.scenario(name).forecast
    if fc is None:
        return
    parts = [f"scenario '{name}' will miss its plan"]
    if fc.plan_end_s is not None:
        parts[0] += f" (its end: {fc.plan_end_s:.0f}s)"
    if fc.uncut_eta_s is not None:
        parts.append(f"at its pace it needs until {detail.elapsed + fc.uncut_eta_s:.0f}s")
    elif fc.method == "stalled":
        parts.append("nothing has progressed for a while")
    if fc.final_progress is not None and fc.final_progress < 1.0:
        parts.append(f"{fc.final_progress * 100:.0f}% of its work done by its end")
    message = ": ".join(parts[:2]) + "".join(f"; {p}" for p in parts[2:]) + f" ({fc.method})"
    runner.ctx.log.log("warn", message)
    runner.ctx.stats.notices.append(message)


def resource_figures(
    runner: Runner, provider: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    """Per resource: the provider's pool counts, the lease book's (expired, renewed, deferred)
    and the health checks'."""
    book = runner.ctx.leases
    bound = book.statistics() if book is not None else {}
    health = runner.ctx.stats.resource_health
    out: dict[str, dict[str, int]] = {}
    for name in dict.fromkeys([*provider, *bound]):
        figures = {"capacity": 0, "leases": 0, "released": 0, **provider.get(name, {})}
        b = bound.get(name, {})
        figures["expired"] = b.get("expired", 0)
        figures["renewed"] = b.get("renewed", 0)
        figures["deferred_releases"] = b.get("deferred", 0)
        figures["release_failures"] = b.get("release_failures", 0)
        figures["held_at_end"] = b.get("held", 0)
        h = health.get(name, {})
        figures["health_checks"] = h.get("probes", 0)
        figures["health_failures"] = h.get("failures", 0)
        figures["items_failed"] = h.get("items_failed", 0)
        figures["items_recovered"] = h.get("items_recovered", 0)
        out[name] = figures
    return out


def persist_figures(runner: Runner) -> dict[str, Any]:
    """The result's `persist` object: files and bytes the run's `save-as: file` wrote."""
    persist = runner.ctx.persist
    return {
        "files_written": persist.files_written,
        "writes": persist.writes,
        "bytes_written": persist.bytes_written,
        "failed": persist.failed,
        "errors": list(persist.errors),
    }


def _iso(wall: float) -> str:
    """UTC with milliseconds: `2024-05-01T12:00:03.250Z`."""
    ms = round(wall * 1000.0)
    seconds, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{milli:03d}Z"


def error_messages(stats: RunStats, started_wall: float) -> list[dict[str, Any]]:
    """The sampled error messages, most frequent first: per (action, code, message) the count,
    first and last seen (UTC, and seconds since the run started). `message` None: the
    (action, code)'s messages beyond the caps (core/stats.py)."""
    samples = sorted(
        stats.error_samples.values(),
        key=lambda e: (-e.count, e.action or "", e.code, e.message is None, e.message or ""),
    )
    return [
        {
            "action": e.action,
            "code": e.code,
            "message": e.message,
            "count": e.count,
            "first_at": _iso(e.first_at),
            "last_at": _iso(e.last_at),
            "first_s": round(max(0.0, e.first_at - started_wall), 3),
            "last_s": round(max(0.0, e.last_at - started_wall), 3),
        }
        for e in samples
    ]


def _status(runner: Runner) -> str:
    """`paused` only in a live result, while paused; then interrupted (drained) or completed."""
    if runner.control.paused and runner.ended_at is None:
        return "paused"
    return "interrupted" if runner.interrupted else "completed"


def build_result(
    runner: Runner,
    resources: Mapping[str, Mapping[str, int]],
    logs: Mapping[str, int],
    aggregator: Aggregator | None = None,
    *,
    events: Mapping[str, Any] | None = None,
    timeseries: Mapping[str, Any] | None = None,
    users: bool = True,
    pmp_timeline: PmpTimeline | None = None,
) -> dict[str, Any]:
    """The `--json` result; its shape is documented by `result-schema.json`. The run's
    aggregator adds the per-scenario and milestone dimensions to `progress`; `events` (the
    progress bus's and the poller's statistics: the engine's own counters, apart from what
    users read) becomes `engine`; `timeseries` (a `Series.to_json()`, progress/series.py)
    is included as given. `users` False leaves the per-user health out (null): one pass over
    every user, which the live result thresholds read each second does without;
    `pmp_timeline` (the run's, see `pmp_ticker`) dates the `pmp` process groups."""
    ctx = runner.ctx
    st = ctx.stats
    elapsed = runner.elapsed
    # Rates leave the paused seconds out (core/control.py).
    active = runner.active_elapsed
    snap = progress_snapshot(runner, aggregator)
    detail = snap.detail
    milestone_weights = {m.name: m.weight for s in runner.plan.scenarios for m in s.milestones}
    result = {
        "$schema": RESULT_SCHEMA_ID,
        "scenario": runner.plan.name,
        "version": runner.plan.version,
        "source": runner.plan.source,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(runner.started_wall)),
        "duration_s": round(elapsed, 3),
        "status": _status(runner),
        **({"paused_s": round(snap.paused_s, 3)} if snap.paused_s else {}),
        "users": {
            "planned": runner.planned_users(),
            "started": st.users_started,
            "finished": st.users_finished,
        },
        "requests": request_figures(st, active),
        "tasks": {
            "started": st.tasks_started,
            "succeeded": st.tasks_succeeded,
            "failed": st.tasks_failed,
            "timed_out": st.tasks_timed_out,
            "rolled_back": st.tasks_rolled_back,
            "interrupted": st.tasks_interrupted,
            "rollbacks": st.rollbacks,
        },
        "dropped_iterations": st.dropped_iterations,
        "actions": action_figures(st, active),
        **({"checks": checks} if (checks := check_figures(st)) else {}),
        "scenarios": scenario_figures(st, active),
        "exits": dict(sorted(st.exits.items())),
        "errors": dict(sorted(st.errors.items())),
        "error_messages": error_messages(st, runner.started_wall),
        "progress": {
            "work": round(snap.work, 4),
            "time": round(snap.time, 4) if snap.time is not None else None,
            "planned_tasks": snap.planned_tasks,
            "milestones": {
                name: {
                    "reached": st.milestones.get(name, 0),
                    "weight": weight,
                    **(detail.milestone_json(name) if detail is not None else {}),
                }
                for name, weight in milestone_weights.items()
            },
            **(detail.to_json() if detail is not None else {}),
        },
        **(
            {"forecast": forecast}
            if detail is not None and (forecast := detail.forecast_json()) is not None
            else {}
        ),
        "health": snap_health(snap, st).to_json(
            aggregator.user_health() if aggregator is not None and users else None
        ),
        "resources": resource_figures(runner, resources),
        "impact": impact_figures(st),
        "logs": dict(sorted(logs.items())),
        "persist": persist_figures(runner),
        # The workbook's closed entries: the sampling mode, what was kept, dropped or written,
        # and their exact totals (the same in every mode).
        "ledger": ctx.workbook.summary(),
        **({"engine": dict(events)} if events is not None else {}),
        **({"timeseries": dict(timeseries)} if timeseries is not None else {}),
    }
    return with_pmp(result, runner, pmp_timeline)


def with_pmp(
    result: dict[str, Any], runner: Runner, timeline: PmpTimeline | None = None
) -> dict[str, Any]:
    """The result with its `pmp` key (progress/pmp.py) computed from the rest of it: again
    after a `--workers` run merged its workers' sections in. `timeline`: the run's (see
    `pmp_ticker`), fed with this reading too."""
    result["pmp"] = pmp_section(
        result, pmp_plan(runner.plan), finished=runner.ended_at is not None, timeline=timeline
    )
    return result


def group_figures(runner: Runner, snap: ProgressSnapshot) -> GroupFigures:
    """The process groups' inputs from a progress snapshot, as the result would give them."""
    st = runner.ctx.stats
    detail = snap.detail
    return GroupFigures(
        users_started=st.users_started,
        users_planned=float(snap.planned_users),
        tasks_started=st.tasks_started,
        tasks_closed=snap.tasks_done,
        planned_tasks=None if snap.planned_tasks is None else float(snap.planned_tasks),
        expected_tasks=detail.expected_tasks if detail is not None else None,
        work=snap.work,
        time=snap.time,
    )


def pmp_ticker(
    runner: Runner, aggregator: Aggregator | None, timeline: PmpTimeline
) -> Callable[[Series], None]:
    """A series-ticker listener (telemetry/ticker.py) feeding `timeline` every tick: one
    progress snapshot (tens of µs), no result built."""

    def tick(_series: Series) -> None:
        snap = progress_snapshot(runner, aggregator)
        groups = process_groups(group_figures(runner, snap), runner.ended_at is not None)
        timeline.observe(groups, snap.elapsed)

    return tick
