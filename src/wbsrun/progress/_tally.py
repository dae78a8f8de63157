"""The aggregator's running tallies and the views built from them at a snapshot.

`ScenarioTally`, `UserTally` and `TaskTally` are the sums `progress.aggregate.Aggregator`
moves on every update (compiled with it: their fields are native slots); the functions below
turn a scenario's tally into what a snapshot reports (its `ScenarioProgress`, the forecast,
the milestones) and score a user's health. Nothing here runs per request.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence

from wbsrun.progress.baseline import ScenarioBaseline
from wbsrun.progress.forecast import Forecast, Forecaster, known
from wbsrun.progress.views import MilestoneProgress, ScenarioProgress

__all__ = [
    "ScenarioTally",
    "TaskTally",
    "UserTally",
    "expected_passes",
    "merge_milestones",
    "milestone_counts",
    "program_forecast",
    "rank",
    "scenario_forecast",
    "scenario_view",
    "user_score",
]


class ScenarioTally:
    __slots__ = (
        "base",
        "closed",
        "closed_total",
        "counts",
        "forecaster",
        "pass_time",
        "planned",
        "planned_order",
        "started",
        "total",
        "users",
        "users_done",
    )

    def __init__(self, base: ScenarioBaseline) -> None:
        self.base = base
        self.total = 0.0  # Σ progress of every task seen, open or closed
        self.closed_total = 0.0  # Σ progress of the closed ones
        self.started = 0
        self.closed = 0
        self.users = 0
        self.users_done = 0  # users that closed all their planned passes
        self.pass_time = 0.0
        self.counts: dict[str, int] = {name: 0 for name, _ in base.milestones}
        self.planned = frozenset(self.counts)
        self.planned_order = tuple(self.counts)
        self.forecaster = Forecaster()


class UserTally:
    __slots__ = ("closed", "closed_total", "failed", "scenario", "started", "total")

    def __init__(self, scenario: ScenarioTally) -> None:
        self.scenario = scenario
        self.total = 0.0
        self.started = 0
        self.closed = 0
        # The health's inputs: Σ progress of the closed passes, and those closed with an error.
        self.closed_total = 0.0
        self.failed = 0


class TaskTally:
    __slots__ = ("milestones", "opened", "progress", "scenario", "user")

    def __init__(self, scenario: ScenarioTally, user: UserTally, opened: float) -> None:
        self.scenario = scenario
        self.user = user
        self.opened = opened
        self.progress = 0.0
        self.milestones: frozenset[str] = frozenset()


def rank(q: float, n: int) -> int:
    """The nearest-rank index of the q-quantile of n sorted values."""
    return min(n - 1, max(0, math.ceil(q * n) - 1))


def user_score(u: UserTally) -> float:
    """progress: Σ task progress over the planned passes (those started, without a plan);
    error rate: the closed passes that failed; deviation: the work the closed passes left
    undone (1 − their mean progress)."""
    passes = u.scenario.base.passes_per_user
    denominator = passes if passes is not None else u.started
    p = u.total / denominator if denominator else 0.0
    p = 0.0 if p < 0.0 else 1.0 if p > 1.0 else p
    rate = 0.0
    dev = 0.0
    if u.closed:
        rate = u.failed / u.closed
        rate = 1.0 if rate > 1.0 else rate
        dev = 1.0 - u.closed_total / u.closed
        dev = 0.0 if dev < 0.0 else 1.0 if dev > 1.0 else dev
    return p * 0.6 + (1.0 - rate) * 0.3 + (1.0 - dev) * 0.1


def expected_passes(sc: ScenarioTally, elapsed: float, finished: bool) -> float | None:
    """The denominator: planned passes, or those the elapsed share of the profile projects."""
    base = sc.base
    if base.planned_tasks is not None:
        return float(base.planned_tasks)
    share = base.profile_share(elapsed)
    if share >= 1.0 or (finished and share <= 0.0):
        return float(sc.started)
    if not sc.started:
        return None
    projected = sc.started / share if share > 0.0 else math.inf
    # Too early to project (or a share so small the projection overflows): unknown.
    return max(float(sc.started), projected) if math.isfinite(projected) else None


def scenario_forecast(
    sc: ScenarioTally, elapsed: float, finished: bool, paused: float = 0.0
) -> Forecast:
    base = sc.base
    open_tasks = sc.started - sc.closed
    mean_pass = sc.pass_time / sc.closed if sc.closed else 0.0
    if base.planned_tasks is not None:
        planned = float(base.planned_tasks)
        # Time is spent by passes, failed or not: closed passes plus the open ones' progress.
        done = sc.closed + (sc.total - sc.closed_total)
        # The estimator's clock stops while paused: its pace is of the time users could run.
        t = max(0.0, elapsed - paused)
        over = finished or (sc.closed >= base.planned_tasks and not open_tasks)
        if base.schedule_end is not None:
            # Open model: iterations start on schedule; the last ends about a pass later.
            if over:
                return known(0.0, None, "done")
            return known(max(0.0, base.schedule_end + mean_pass - elapsed), None, "schedule")
        if over:
            share = min(1.0, sc.total / planned) if planned else 1.0
            return sc.forecaster.final(t, share, base.duration)
        future = base.starts[bisect_right(base.starts, elapsed) :]
        passes = base.passes_per_user or 1
        # The last user to spawn still owes all its passes (and think times) after its start;
        # under pacing (no think time then) each gap is what a pass leaves of the interval.
        gap = max(base.think_time, base.pacing - mean_pass)
        last_user = passes * mean_pass + (passes - 1) * gap
        floor = max(0.0, base.last_start + last_user - elapsed)
        active = sc.users - sc.users_done
        cycle = max(base.pacing, mean_pass + base.think_time)
        return sc.forecaster.observe(
            t, done, planned, active, future, floor, base.duration, mean_pass, cycle
        )
    if finished:
        return known(0.0, None, "done")
    end = base.window_end
    if end is None:
        return known(None, None, "none")
    if elapsed >= end and not open_tasks:
        return known(0.0, None, "schedule")
    # No pass starts after the window; the last ones end about one pass after it.
    return known(max(0.0, end + mean_pass - elapsed), None, "schedule")


def program_forecast(views: Sequence[ScenarioProgress], finished: bool) -> Forecast:
    """The program's: the latest scenario's end (unknown while any is), the progress at the
    plans' ends weighted by expected passes, a miss when any scenario misses."""
    fcs = [v.forecast for v in views if v.forecast is not None]
    if not fcs:
        return known(0.0 if finished else None, None, "done" if finished else "none")
    etas = [f.eta_s for f in fcs]
    lows = [f.eta_low_s for f in fcs]
    highs = [f.eta_high_s for f in fcs]
    eta = None if None in etas else max(e for e in etas if e is not None)
    low = None if None in lows else max(e for e in lows if e is not None)
    high = None if None in highs else max(e for e in highs if e is not None)
    if finished:
        eta = low = high = 0.0
    weighted = [
        (v.forecast, v.expected_tasks or 0.0)
        for v in views
        if v.forecast is not None and v.forecast.final_progress is not None
    ]
    weight = sum(w for _, w in weighted)

    def mean(pick: Callable[[Forecast], float | None]) -> float | None:
        if not weight:
            return None
        return sum((pick(f) or 0.0) * w for f, w in weighted) / weight

    methods = {f.method for f in fcs}
    warned = [f.warned_at_s for f in fcs if f.warned_at_s is not None]
    return Forecast(
        eta,
        low,
        high,
        mean(lambda f: f.final_progress),
        mean(lambda f: f.final_progress_low),
        mean(lambda f: f.final_progress_high),
        methods.pop() if len(methods) == 1 else "mixed",
        max(f.history_runs for f in fcs),
        any(f.will_miss_plan for f in fcs),
        min(warned) if warned else None,
    )


def scenario_view(
    sc: ScenarioTally, elapsed: float, finished: bool, paused: float = 0.0
) -> ScenarioProgress:
    base = sc.base
    expected = expected_passes(sc, elapsed, finished)
    forecast = scenario_forecast(sc, elapsed, finished, paused)
    if expected:
        # Running sums of float deltas may drift by an ulp below 0 or above the exact sum.
        work = min(1.0, max(0.0, sc.total / expected))
    else:
        work = 1.0 if expected == 0.0 and base.planned_tasks == 0 else 0.0
    weights = dict(base.milestones)
    milestones = tuple(
        MilestoneProgress(
            name, weights.get(name, 0.0), n, min(1.0, n / expected) if expected else 0.0
        )
        for name, n in milestone_counts(sc)
    )
    total_weight = base.milestone_total
    weighted = None
    if base.milestones and total_weight > 0:
        weighted = sum(m.weight * m.share for m in milestones) / total_weight
    time_share = None
    if base.duration:
        time_share = 1.0 if finished else min(1.0, elapsed / base.duration)
    return ScenarioProgress(
        name=base.name,
        time=time_share,
        work=work,
        milestones_weighted=weighted,
        eta_s=forecast.eta_s,
        planned_tasks=base.planned_tasks,
        expected_tasks=expected,
        tasks_started=sc.started,
        tasks_closed=sc.closed,
        users_planned=base.users,
        users_seen=sc.users,
        mean_pass_s=sc.pass_time / sc.closed if sc.closed else None,
        milestones=milestones,
        forecast=forecast,
    )


def milestone_counts(sc: ScenarioTally) -> list[tuple[str, int]]:
    """The scenario's milestone counts, planned ones in plan order, then the others by name.
    The others are counted in the order they were first observed, and `AggregatingSink` defers
    observations (a noted task is folded in after one observed later): that order must not
    show, or a read would depend on when updates were folded."""
    items = list(sc.counts.items())
    # Planned names are counted from the start and never dropped: they come first.
    planned = len(sc.planned)
    if len(items) > planned + 1:
        items[planned:] = sorted(items[planned:])
    return items


def merge_milestones(views: Iterable[ScenarioProgress]) -> tuple[MilestoneProgress, ...]:
    """Program-level milestones by name: reached summed, share over the expected passes of the
    scenarios that define it (a later scenario's weight wins, as in `progress.milestones`)."""
    reached: dict[str, int] = {}
    planned: dict[str, float] = {}
    weight: dict[str, float] = {}
    for v in views:
        for m in v.milestones:
            reached[m.name] = reached.get(m.name, 0) + m.reached
            planned[m.name] = planned.get(m.name, 0.0) + (v.expected_tasks or 0.0)
            weight[m.name] = m.weight
    return tuple(
        MilestoneProgress(
            name, weight[name], n, min(1.0, n / planned[name]) if planned[name] else 0.0
        )
        for name, n in reached.items()
    )
