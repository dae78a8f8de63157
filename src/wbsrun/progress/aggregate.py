"""Incremental roll-up of task progress into user, scenario and program progress (pure, sync).

Task → user → scenario → program, each a weighted average: a user is the mean of its planned
passes, a scenario the mean of its users weighted by their planned passes (so Σ task progress
over the planned passes), the program the mean of its scenarios weighted by their expected
passes. The plan is the denominator (`baseline.py`), so progress means something mid-run.

The aggregator keeps running sums keyed by task and never reads the workbook: an update costs
a dict look-up, a float comparison and a small-set comparison, whatever the run's size. Feed it
`TaskUpdate`s (the bus's events fit that protocol) or plug `AggregatingSink` in as the runner's
`ProgressSink`.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Final, Protocol, final

from wbsrun.core.bus import ProgressBus
from wbsrun.core.events import ProgressSink, ProgressSubject
from wbsrun.core.runner import RunOptions
from wbsrun.core.sinks import Sink
from wbsrun.core.task import Task
from wbsrun.dsl.plan import Plan
from wbsrun.progress.baseline import ScenarioBaseline, baselines, total_planned
from wbsrun.progress.forecast import Forecast, Forecaster, Prior, known
from wbsrun.progress.health import WORST_USERS, HealthBook, UserHealth
from wbsrun.progress.views import (
    MilestoneProgress,
    ProgramProgress,
    ScenarioProgress,
    UserProgress,
)

__all__ = [
    "AggregatingSink",
    "Aggregator",
    "ProgressUpdate",
    "ScenarioSums",
    "SettledState",
    "TaskUpdate",
]

_NO_AGGREGATE: Final = frozenset({"timeline.phase", "error", "lease"})
# Fields whose events only move an open task's progress and milestones: `AggregatingSink`
# notes the task and the aggregator folds its values in before anything is read.
_TOUCH: Final = frozenset({"progress", "milestone", "rollback"})
_OPENING: Final = "planning.ready"
_CLOSED: Final = "closed"

# Closed task ids remembered to drop a late duplicate of a `closed` update (bounded memory).
REMEMBER_CLOSED = 4096


class TaskUpdate(Protocol):
    """What the aggregator needs from one progress event: the task's current values."""

    @property
    def task_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def scenario(self) -> str: ...

    @property
    def progress(self) -> float: ...

    @property
    def milestones(self) -> Set[str]: ...

    @property
    def closed(self) -> bool: ...

    @property
    def error_class(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """A plain `TaskUpdate` (tests, replays, adapters)."""

    task_id: str
    user_id: str
    scenario: str
    progress: float
    milestones: frozenset[str] = frozenset()
    closed: bool = False
    # A pass closed with an error counts against its user's health (docs/progress-model.md).
    error_class: str | None = None


@dataclass(slots=True)
class ScenarioSums:
    """One scenario's running sums (`Aggregator.sums`): what a worker sends its coordinator.
    Not frozen: compiled with mypyc, a frozen dataclass cannot be unpickled (its state is
    restored through the frozen `__setattr__`), and workers pickle these into their reports."""

    total: float
    closed_total: float
    started: int
    closed: int
    users: int
    users_done: int
    pass_time: float
    counts: dict[str, int]


@dataclass(slots=True)  # not frozen: pickled into checkpoints (see ScenarioSums)
class SettledState:
    """The sums of the passes closed (`Aggregator.settled`, a checkpoint): per scenario, and
    per user id (scenario, Σ progress, passes started, passes closed, Σ progress of the closed
    ones, those closed with an error). Passes still open are left out: a second life runs
    them again."""

    scenarios: dict[str, ScenarioSums]
    users: dict[str, tuple[str, float, int, int, float, int]]


class _Scenario:
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


class _User:
    __slots__ = ("closed", "closed_total", "failed", "scenario", "started", "total")

    def __init__(self, scenario: _Scenario) -> None:
        self.scenario = scenario
        self.total = 0.0
        self.started = 0
        self.closed = 0
        # The health's inputs: Σ progress of the closed passes, and those closed with an error.
        self.closed_total = 0.0
        self.failed = 0


class _Task:
    __slots__ = ("milestones", "opened", "progress", "scenario", "user")

    def __init__(self, scenario: _Scenario, user: _User, opened: float) -> None:
        self.scenario = scenario
        self.user = user
        self.opened = opened
        self.progress = 0.0
        self.milestones: frozenset[str] = frozenset()


@final
class Aggregator:
    """Running progress sums of a run; `snapshot()` turns them into the reported dimensions."""

    def __init__(
        self,
        plans: Iterable[ScenarioBaseline] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._scenarios: dict[str, _Scenario] = {b.name: _Scenario(b) for b in plans}
        self._users: dict[str, _User] = {}
        self._open: dict[str, _Task] = {}
        self._recent: deque[str] = deque(maxlen=REMEMBER_CLOSED)
        self._recent_set: set[str] = set()
        # Open tasks whose progress or milestones moved since the last read (`touch()`), by
        # id: their current values are folded in before any read.
        self._touched: dict[str, ProgressSubject] = {}
        # The health's trends, fed by every progress snapshot (`progress_snapshot`).
        self.health = HealthBook()
        # Scenarios whose "will miss its plan" warning was handed out (`new_misses`).
        self._announced: set[str] = set()

    @classmethod
    def for_run(
        cls,
        plan: Plan,
        options: RunOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> Aggregator:
        """An aggregator whose denominators are the plan under the run's options."""
        opts = options or RunOptions()
        return cls(baselines(plan, opts.users, opts.duration, opts.segment), clock=clock)

    # -- updates: O(1) each ---------------------------------------------------------------------
    def apply(self, update: TaskUpdate) -> None:
        self.record(
            update.task_id,
            update.user_id,
            update.scenario,
            update.progress,
            update.milestones,
            update.closed,
            update.error_class,
        )

    def record(
        self,
        task_id: str,
        user_id: str,
        scenario: str,
        progress: float,
        milestones: Set[str],
        closed: bool,
        error_class: str | None = None,
    ) -> None:
        """The task's current values; an update after its `closed` one counts as a new task.
        `error_class`: the task's error, read at its close (None: none)."""
        if self._touched:
            self._fold()  # what was noted before this update comes first
        task = self._open.get(task_id)
        if task is None:
            if task_id in self._recent_set:
                return  # a repeated `closed` (or a straggler) of a task already counted
            task = self._open_task(task_id, user_id, scenario)
        if progress != task.progress:
            p = min(1.0, progress) if progress >= 0.0 else 0.0  # NaN counts as 0
            delta = p - task.progress
            task.progress = p
            task.scenario.total += delta
            task.user.total += delta
        # Identity first: the runner's tasks hand over the frozenset kept here last time.
        if milestones is not task.milestones and milestones != task.milestones:
            self._milestones(task, milestones)
        if closed:
            self._close(task_id, task, error_class is not None)

    def observe(self, subject: ProgressSubject, task_id: str, closed: bool) -> None:
        """`record()` from a live subject whose `task_id` the caller has read (what
        `AggregatingSink` calls for the events it takes at once): the scope (user, scenario)
        is read only when the task opens. The body repeats `record()`'s rather than sharing a
        helper: one call less on the runner's hot path."""
        task = self._open.get(task_id)
        if task is None:
            if task_id in self._recent_set:
                return  # a repeated `closed` (or a straggler) of a task already counted
            task = self._open_task(task_id, subject.user_id, subject.scenario_name)
        milestones: Set[str]
        if type(subject) is Task:
            # The runner's own subject: native reads (see AggregatingSink.publish).
            progress, milestones = subject.progress, subject.milestones
        else:
            progress, milestones = subject.progress, subject.milestones
        if progress != task.progress:
            p = min(1.0, progress) if progress >= 0.0 else 0.0  # NaN counts as 0
            delta = p - task.progress
            task.progress = p
            task.scenario.total += delta
            task.user.total += delta
        # Identity first: the runner's tasks hand over the frozenset kept here last time.
        if milestones is not task.milestones and milestones != task.milestones:
            self._milestones(task, milestones)
        if closed:
            # Whether the pass failed: read once a pass, natively from the runner's task.
            if type(subject) is Task:
                failed = subject.error is not None
            else:
                failed = subject.error_class is not None
            self._close(task_id, task, failed)
            self._touched.pop(task_id, None)

    def touch(self, subject: ProgressSubject, task_id: str) -> None:
        """`observe(subject, task_id, False)` for an update that only moves an open task's
        progress or milestones, deferred: the task is noted, and its values as they are then
        are folded in before the next read (`snapshot()`, `user()`, `tasks_open`, ...) or
        `record()`. Updates carry current values, so every figure is the one observing each
        update gives (the running float sums to within their last bits: fewer, larger deltas);
        a task updated ten times between two reads costs one fold. An update that would open
        the task is observed at once, since its pass time starts there."""
        if task_id in self._open:
            self._touched[task_id] = subject
        else:
            self.observe(subject, task_id, False)

    def _fold(self) -> None:
        touched = list(self._touched.items())
        self._touched.clear()  # cleared, not replaced: `AggregatingSink` writes to it
        for task_id, subject in touched:
            self.observe(subject, task_id, False)

    def _open_task(self, task_id: str, user_id: str, scenario: str) -> _Task:
        sc = self._scenarios.get(scenario)
        if sc is None:
            # Not in the plan: counted against the passes seen (no baseline to project from).
            sc = self._scenarios[scenario] = _Scenario(
                ScenarioBaseline(scenario, 0, None, None, None, 0.0)
            )
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = _User(sc)
            sc.users += 1
        task = self._open[task_id] = _Task(sc, user, self._clock())
        sc.started += 1
        user.started += 1
        return task

    def _milestones(self, task: _Task, now: Set[str]) -> None:
        new = frozenset(now)
        counts = task.scenario.counts
        for name in new - task.milestones:
            counts[name] = counts.get(name, 0) + 1
        for name in task.milestones - new:
            n = counts[name] - 1
            if n or name in task.scenario.planned:
                counts[name] = n
            else:
                # An unplanned milestone no task holds any more (lost to a rollback) is not
                # listed: whether it was ever seen must not depend on when updates were read
                # (touch() folds a reach and its loss into one observation, or none).
                del counts[name]
        task.milestones = new

    def _close(self, task_id: str, task: _Task, failed: bool) -> None:
        del self._open[task_id]
        sc = task.scenario
        sc.closed += 1
        sc.closed_total += task.progress
        user = task.user
        user.closed += 1
        user.closed_total += task.progress
        if failed:
            user.failed += 1
        if user.closed == sc.base.passes_per_user:
            sc.users_done += 1
        sc.pass_time += max(0.0, self._clock() - task.opened)
        recent = self._recent
        if len(recent) == recent.maxlen:
            self._recent_set.discard(recent[0])
        recent.append(task_id)
        self._recent_set.add(task_id)

    # -- reading ----------------------------------------------------------------------------------
    @property
    def tasks_open(self) -> int:
        if self._touched:
            self._fold()
        return len(self._open)

    def user(self, user_id: str) -> UserProgress | None:
        if self._touched:
            self._fold()
        u = self._users.get(user_id)
        if u is None:
            return None
        passes = u.scenario.base.passes_per_user
        denominator = passes if passes is not None else u.started
        return UserProgress(
            user_id=user_id,
            scenario=u.scenario.base.name,
            progress=min(1.0, max(0.0, u.total / denominator)) if denominator else 0.0,
            tasks_started=u.started,
            tasks_closed=u.closed,
        )

    def snapshot(
        self, elapsed: float, *, finished: bool = False, paused: float = 0.0
    ) -> ProgramProgress:
        """The dimensions at `elapsed` seconds into the run, `paused` of them paused (left out
        of the ETA's pace). Also samples the work rate for the ETA, so call it as often as the
        ETA should learn (the live line: every redraw)."""
        if self._touched:
            self._fold()
        views = tuple(
            _scenario_view(sc, elapsed, finished, paused) for sc in self._scenarios.values()
        )
        durations = [b.duration for b in self.baselines if b.duration]
        time_share = None
        if durations:
            time_share = 1.0 if finished else min(1.0, elapsed / max(durations))
        weighted = [(v, v.expected_tasks) for v in views if v.expected_tasks]
        weight = sum(w for _, w in weighted)
        work = sum(v.work * w for v, w in weighted) / weight if weight else 0.0
        if not weighted and views and all(v.planned_tasks == 0 for v in views):
            work = 1.0  # nothing was planned: nothing is left
        with_ms = [
            (v.milestones_weighted, w) for v, w in weighted if v.milestones_weighted is not None
        ]
        ms_weight = sum(w for _, w in with_ms)
        forecast = _program_forecast(views, finished)
        expected = [v.expected_tasks for v in views]
        return ProgramProgress(
            elapsed=elapsed,
            time=time_share,
            work=min(1.0, work),
            milestones_weighted=(sum(m * w for m, w in with_ms) / ms_weight) if ms_weight else None,
            eta_s=forecast.eta_s,
            planned_tasks=total_planned(self.baselines),
            expected_tasks=sum(e for e in expected if e is not None)
            if None not in expected
            else None,
            tasks_started=sum(v.tasks_started for v in views),
            tasks_closed=sum(v.tasks_closed for v in views),
            scenarios=views,
            milestones=_merge_milestones(views),
            forecast=forecast,
        )

    # -- prediction -------------------------------------------------------------------------------
    def use_history(self, priors: Mapping[str, Prior]) -> None:
        """Earlier runs' figures per scenario (`--history`): the forecasts start from them."""
        for name, prior in priors.items():
            sc = self._scenarios.get(name)
            if sc is not None:
                sc.forecaster.prior = prior

    def new_misses(self, detail: ProgramProgress) -> list[str]:
        """The scenarios of `detail` forecast to miss their plan that were not handed out
        before (each once: the caller warns)."""
        out = []
        for view in detail.scenarios:
            fc = view.forecast
            if fc is not None and fc.will_miss_plan and view.name not in self._announced:
                self._announced.add(view.name)
                out.append(view.name)
        return out

    # -- exchange (a cluster run: workers' sums, merged by the coordinator) ----------------------
    def sums(self) -> dict[str, ScenarioSums]:
        """Per scenario, the running sums every figure is computed from (plain, picklable)."""
        if self._touched:
            self._fold()
        return {
            name: ScenarioSums(
                sc.total,
                sc.closed_total,
                sc.started,
                sc.closed,
                sc.users,
                sc.users_done,
                sc.pass_time,
                dict(sc.counts),
            )
            for name, sc in self._scenarios.items()
        }

    def load(self, parts: Iterable[Mapping[str, ScenarioSums]]) -> None:
        """Set every scenario's sums to the total of `parts` (one `sums()` per worker, disjoint
        users): the coordinator's view. Open-task and per-user detail stays in the workers;
        the ETA estimators stay here and learn from the snapshots taken after a load."""
        for sc in self._scenarios.values():
            sc.total = sc.closed_total = sc.pass_time = 0.0
            sc.started = sc.closed = sc.users = sc.users_done = 0
            sc.counts = dict.fromkeys(sc.planned_order, 0)
        for part in parts:
            for name, s in part.items():
                found = self._scenarios.get(name)
                if found is None:
                    found = self._scenarios[name] = _Scenario(
                        ScenarioBaseline(name, 0, None, None, None, 0.0)
                    )
                sc = found
                sc.total += s.total
                sc.closed_total += s.closed_total
                sc.started += s.started
                sc.closed += s.closed
                sc.users += s.users
                sc.users_done += s.users_done
                sc.pass_time += s.pass_time
                for m, n in s.counts.items():
                    sc.counts[m] = sc.counts.get(m, 0) + n

    def settled(self) -> SettledState:
        """`sums()` and the per-user figures without the tasks still open."""
        sums = self.sums()  # folds what was touched
        open_total: dict[str, float] = {}
        open_started: dict[str, int] = {}
        open_marks: dict[str, dict[str, int]] = {}
        user_open: dict[int, tuple[float, int]] = {}
        for task in self._open.values():
            name = task.scenario.base.name
            open_total[name] = open_total.get(name, 0.0) + task.progress
            open_started[name] = open_started.get(name, 0) + 1
            marks = open_marks.setdefault(name, {})
            for m in task.milestones:
                marks[m] = marks.get(m, 0) + 1
            key = id(task.user)
            was = user_open.get(key, (0.0, 0))
            user_open[key] = (was[0] + task.progress, was[1] + 1)
        scenarios: dict[str, ScenarioSums] = {}
        for name, s in sums.items():
            marks = open_marks.get(name, {})
            scenarios[name] = ScenarioSums(
                s.total - open_total.get(name, 0.0),
                s.closed_total,
                s.started - open_started.get(name, 0),
                s.closed,
                s.users,
                s.users_done,
                s.pass_time,
                {m: n - marks.get(m, 0) for m, n in s.counts.items()},
            )
        users: dict[str, tuple[str, float, int, int, float, int]] = {}
        for uid, u in self._users.items():
            less = user_open.get(id(u), (0.0, 0))
            users[uid] = (
                u.scenario.base.name,
                u.total - less[0],
                u.started - less[1],
                u.closed,
                u.closed_total,
                u.failed,
            )
        return SettledState(scenarios, users)

    def load_settled(self, state: SettledState) -> None:
        """A second life starts from a first life's `settled()`."""
        self.load([state.scenarios])
        for uid, (name, total, started, closed, closed_total, failed) in state.users.items():
            sc = self._scenarios.get(name)
            if sc is None:
                continue
            user = self._users[uid] = _User(sc)
            user.total = total
            user.started = started
            user.closed = closed
            user.closed_total = closed_total
            user.failed = failed

    def user_health(self, worst: int = WORST_USERS) -> UserHealth | None:
        """Every user's health, summed up (docs/progress-model.md, "Health"): one pass over the
        users, keeping only the `worst` lowest scores by name and the scores themselves (a
        float each) for the percentiles. None where the users are not known here (a
        coordinator: its workers keep them)."""
        if self._touched:
            self._fold()
        users = self._users
        if not users:
            if any(sc.users for sc in self._scenarios.values()):
                return None
            return UserHealth(0, 0.0, 0.0, 0.0, 0.0, ())
        scores: list[float] = []
        low: list[tuple[float, str, str]] = []  # sorted, at most `worst`
        for uid, u in users.items():
            score = _user_score(u)
            scores.append(score)
            if len(low) < worst:
                insort(low, (score, uid, u.scenario.base.name))
            elif low and score <= low[-1][0] and (score, uid) < (low[-1][0], low[-1][1]):
                insort(low, (score, uid, u.scenario.base.name))
                low.pop()
        scores.sort()
        n = len(scores)
        return UserHealth(
            n,
            scores[0],
            scores[_rank(0.1, n)],
            scores[_rank(0.5, n)],
            sum(scores) / n,
            tuple((uid, name, score) for score, uid, name in low),
        )

    @property
    def baselines(self) -> tuple[ScenarioBaseline, ...]:
        if self._touched:
            self._fold()  # a task of a scenario outside the plan adds one
        return tuple(sc.base for sc in self._scenarios.values())


def _rank(q: float, n: int) -> int:
    """The nearest-rank index of the q-quantile of n sorted values."""
    return min(n - 1, max(0, math.ceil(q * n) - 1))


def _user_score(u: _User) -> float:
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


def _expected(sc: _Scenario, elapsed: float, finished: bool) -> float | None:
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


def _forecast(sc: _Scenario, elapsed: float, finished: bool, paused: float = 0.0) -> Forecast:
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


def _program_forecast(views: Sequence[ScenarioProgress], finished: bool) -> Forecast:
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


def _scenario_view(
    sc: _Scenario, elapsed: float, finished: bool, paused: float = 0.0
) -> ScenarioProgress:
    base = sc.base
    expected = _expected(sc, elapsed, finished)
    forecast = _forecast(sc, elapsed, finished, paused)
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
        for name, n in _milestone_counts(sc)
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


def _milestone_counts(sc: _Scenario) -> list[tuple[str, int]]:
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


def _merge_milestones(views: Iterable[ScenarioProgress]) -> tuple[MilestoneProgress, ...]:
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


@final
class AggregatingSink(Sink):
    """A `ProgressSink` that feeds an `Aggregator` directly, then passes the event on to
    `forward` (e.g. the progress bus) when given: `Runner(..., events=sink)`."""

    __slots__ = ("_bus", "_forward", "_send", "aggregator")

    def __init__(self, aggregator: Aggregator, forward: ProgressSink | None = None) -> None:
        self.aggregator = aggregator
        self.forward = forward

    @property
    def forward(self) -> ProgressSink | None:
        return self._forward

    @forward.setter
    def forward(self, sink: ProgressSink | None) -> None:
        self._forward = sink
        # Bound once: the hot path then makes one call, not an attribute walk and a call. The
        # bus takes the task id this sink has read already.
        self._send = sink.publish if sink is not None else None
        # Typed, so that the compiled hot path calls the bus directly, not through a bound
        # method object.
        self._bus: ProgressBus | None = sink if isinstance(sink, ProgressBus) else None

    @classmethod
    def for_run(
        cls, plan: Plan, options: RunOptions | None = None, forward: ProgressSink | None = None
    ) -> AggregatingSink:
        return cls(Aggregator.for_run(plan, options), forward)

    def publish(self, subject: ProgressSubject, field: str, priority: float) -> None:
        # Progress, milestones and rollbacks are only noted (`Aggregator.touch`): the
        # aggregate is read a few times a second, and a task publishes ~6 of them a pass.
        # Phase, error and lease events change no aggregate, except a pass's first event
        # (planning.ready), which opens it; a close is taken at once (its time counts).
        # The runner's own subject, typed: its attributes are native reads, not lookups by
        # name through the Protocol (one or two a publish, ~11 publishes a pass).
        t = subject if type(subject) is Task else None
        if field in _TOUCH:
            task_id = t.task_id if t is not None else subject.task_id
            agg = self.aggregator
            # `agg.touch()` written out: ~6 of a pass's ~11 events come this way.
            if task_id in agg._open:
                agg._touched[task_id] = subject
            else:
                agg.observe(subject, task_id, False)
        elif field in _NO_AGGREGATE and (t.phase if t is not None else subject.phase) != _OPENING:
            forward = self._bus
            if forward is not None:
                forward.publish(subject, field, priority)
                return
            send = self._send
            if send is not None:
                send(subject, field, priority)
            return
        else:
            task_id = t.task_id if t is not None else subject.task_id
            self.aggregator.observe(subject, task_id, field == _CLOSED)
        bus = self._bus
        if bus is not None:
            bus.publish_task(subject, task_id, field, priority)
            return
        send = self._send
        if send is not None:
            send(subject, field, priority)
